"""``BitnetLLM``: a LangChain completion model (text in, text out) over a BitNet b1.58 model."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import LLM
from langchain_core.language_models.llms import LangSmithParams
from langchain_core.outputs import GenerationChunk

import bitnet_backend as bb

from ._params import BitnetParams


class BitnetLLM(BitnetParams, LLM):
    """A BitNet b1.58 model as a completion LLM: the prompt is continued as is.

    No chat template is applied (use ``ChatBitnet`` for chat); the prompt starts with the
    model's beginning-of-text token. Loading and sharing work as for ``ChatBitnet``.

    Example:
        ```python
        from langchain_bitnet import BitnetLLM

        llm = BitnetLLM(model="./my-checkpoint", max_tokens=64, stop=["\\n\\n"])
        print(llm.invoke("The three primary colours are"))
        ```
    """

    @property
    def _llm_type(self) -> str:
        return "bitnet"

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "bitnet"
        params["ls_model_name"] = str(kwargs.get("model") or self.model_name)
        return params

    def _request(
        self, stop: list[str] | None, kwargs: dict[str, Any]
    ) -> tuple[bb.Model, dict[str, Any]]:
        kwargs = dict(kwargs)
        model, _ = self._call_model(kwargs)
        return model, self._generation_options(stop, kwargs)

    def _call(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> str:
        if self.streaming:
            return "".join(c.text for c in self._stream(prompt, stop, run_manager, **kwargs))
        model, options = self._request(stop, kwargs)
        return model.generate(prompt, **options).text

    async def _acall(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> str:
        if self.streaming:
            parts = [c.text async for c in self._astream(prompt, stop, run_manager, **kwargs)]
            return "".join(parts)
        model, options = self._request(stop, kwargs)
        return (await model.agenerate(prompt, **options)).text

    def _stream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[GenerationChunk]:
        model, options = self._request(stop, kwargs)
        for piece in model.stream(prompt, **options):
            chunk = _chunk(piece)
            if run_manager is not None:
                run_manager.on_llm_new_token(piece.text, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[GenerationChunk]:
        model, options = self._request(stop, kwargs)
        async for piece in model.astream(prompt, **options):
            chunk = _chunk(piece)
            if run_manager is not None:
                await run_manager.on_llm_new_token(piece.text, chunk=chunk)
            yield chunk


def _chunk(piece: bb.CompletionChunk) -> GenerationChunk:
    """A GenerationChunk; the last one carries the finish reason and token usage."""
    if piece.finish_reason is None:
        return GenerationChunk(text=piece.text)
    info = {"finish_reason": piece.finish_reason, "usage": piece.usage}
    return GenerationChunk(text=piece.text, generation_info=info)
