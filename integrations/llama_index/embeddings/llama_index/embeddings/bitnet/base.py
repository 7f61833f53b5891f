"""``BitnetEmbedding``: LlamaIndex embeddings from a locally loaded BitNet b1.58 model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr

# The LLM package owns the process-wide model cache, so an LLM and an embedding built with the
# same load settings share one copy of the weights.
from llama_index.llms.bitnet.loading import load_shared
from llama_index.llms.bitnet.tokens import tokenizer_of

import bitnet_backend as bb

DEFAULT_MODEL_NAME = "bitnet-default"


class BitnetEmbedding(BaseEmbedding):
    """Embeddings of a BitNet b1.58 model: mean of its final hidden states, L2-normalised.

    ``embed_batch_size`` texts go to the model per call; the async methods run the model in a
    worker thread, so the event loop stays free.

    Examples:
        ```python
        from llama_index.core import Settings
        from llama_index.embeddings.bitnet import BitnetEmbedding

        Settings.embed_model = BitnetEmbedding()  # the embedded default model
        vector = Settings.embed_model.get_text_embedding("BitNet runs on CPUs.")
        ```
    """

    model: str | None = Field(
        default=None,
        description="Checkpoint directory, Hugging Face hub id, or None for the embedded "
        "default model.",
    )
    backend: str = Field(default="auto", description="bitnet-backend backend name, or 'auto'.")
    n_threads: int | None = Field(
        default=None, description="Worker threads (default: the CPUs this process may use)."
    )
    n_ctx: int | None = Field(
        default=None, description="Context window in tokens: the longest text that can be embedded."
    )
    model_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Further options for bitnet_backend.load (preset, lm_head, ...).",
    )
    query_instruction: str | None = Field(
        default=None, description="Text put before every query before it is embedded."
    )
    text_instruction: str | None = Field(
        default=None, description="Text put before every document text before it is embedded."
    )

    _model: bb.Model = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        # After validation, so the constructor keeps the fields' typed signature.
        if "model_name" not in self.model_fields_set:
            self.model_name = self.model or DEFAULT_MODEL_NAME
        self._model = load_shared(
            self.model, self.backend, self.n_threads, self.n_ctx, self.model_kwargs
        )

    @classmethod
    def class_name(cls) -> str:
        return "BitnetEmbedding"

    @property
    def loaded_model(self) -> bb.Model:
        """The shared ``bitnet_backend.Model`` this embedding runs."""
        return self._model

    @property
    def tokenizer(self) -> Callable[[str], list[int]]:
        """The model's tokenizer as a callable, e.g. for ``Settings.tokenizer``.

        The same as ``Bitnet(...).tokenizer`` for the same checkpoint, so a pipeline with only
        an embedding model can still count the model's tokens (chunk sizes) offline.
        """
        return tokenizer_of(self._model)

    @staticmethod
    def _with(instruction: str | None, text: str) -> str:
        return f"{instruction.strip()} {text}" if instruction else text

    def _embed(self, texts: list[str]) -> list[Embedding]:
        return self._model.embed(texts).tolist()

    async def _aembed(self, texts: list[str]) -> list[Embedding]:
        return (await self._model.aembed(texts)).tolist()

    def _get_query_embedding(self, query: str) -> Embedding:
        return self._embed([self._with(self.query_instruction, query)])[0]

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return (await self._aembed([self._with(self.query_instruction, query)]))[0]

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._embed([self._with(self.text_instruction, text)])[0]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return (await self._aembed([self._with(self.text_instruction, text)]))[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._embed([self._with(self.text_instruction, t) for t in texts])

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await self._aembed([self._with(self.text_instruction, t) for t in texts])
