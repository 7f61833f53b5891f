"""``Bitnet``: a LlamaIndex FunctionCallingLLM over a locally loaded BitNet b1.58 model."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Generator, Sequence
from typing import TYPE_CHECKING, Any

from llama_index.core.base.llms.generic_utils import (
    messages_to_prompt as generic_messages_to_prompt,
)
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.constants import DEFAULT_NUM_OUTPUTS
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.llm import LLMStructuredPredictStartEvent
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import Model, ToolSelection, default_completion_to_prompt
from llama_index.core.prompts import BasePromptTemplate
from llama_index.core.types import PydanticProgramMode

import bitnet_backend as bb
from bitnet_backend.options import OPTION_SPECS

from . import messages as msg
from . import structured
from .loading import load_shared
from .tokens import tokenizer_of

if TYPE_CHECKING:
    from llama_index.core.program.utils import FlexibleModel
    from llama_index.core.tools.types import BaseTool

dispatcher = get_dispatcher(__name__)

DEFAULT_MODEL_NAME = "bitnet-default"
# LlamaIndex calls the reply budget max_new_tokens (LLMMetadata.num_output reads it).
_FIELD_OF_OPTION = {"max_tokens": "max_new_tokens"}


class Bitnet(FunctionCallingLLM):
    """A BitNet b1.58 model running on the CPU through bitnet-backend.

    Chat goes through the model's own chat template; tool calls and structured output are
    produced by constrained decoding, so a call always names a given tool with valid
    arguments and ``structured_predict`` always yields JSON of the requested schema (unless
    cut by ``max_new_tokens``). Models are loaded once per process and shared (also with
    ``BitnetEmbedding``) by their load settings.

    Examples:
        ```python
        from llama_index.core import Settings
        from llama_index.llms.bitnet import Bitnet

        Settings.llm = Bitnet()  # the embedded default model
        llm = Bitnet(model="microsoft/bitnet-b1.58-2B-4T", n_threads=4, temperature=0.2)
        print(llm.complete("The capital of France is"))
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
        default=None,
        description="Context window in tokens (default: the model's maximum).",
    )
    max_new_tokens: int = Field(
        default=DEFAULT_NUM_OUTPUTS, gt=0, description="Maximum number of tokens to generate."
    )
    temperature: float | None = Field(
        default=None, ge=0.0, description="Sampling temperature; 0 is greedy. None: the model's."
    )
    top_k: int | None = Field(default=None, description="Top-k sampling. None: the model's.")
    top_p: float | None = Field(default=None, description="Nucleus sampling. None: the model's.")
    min_p: float | None = Field(default=None, description="Min-p sampling. None: the model's.")
    repeat_penalty: float | None = Field(
        default=None, description="Repetition penalty. None: the model's."
    )
    seed: int | None = Field(
        default=None, description="Sampling seed: the same seed gives the same text."
    )
    model_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Further options for bitnet_backend.load (preset, lm_head, ...).",
    )
    generate_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Further generation options for every call (stop, repeat_last_n, ...).",
    )

    _model: bb.Model = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        # After validation, so the constructor keeps the fields' typed signature.
        self._model = load_shared(
            self.model, self.backend, self.n_threads, self.n_ctx, self.model_kwargs
        )

    @classmethod
    def class_name(cls) -> str:
        return "Bitnet_llm"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(
            context_window=self._model.n_ctx,
            num_output=self.max_new_tokens,
            is_chat_model=True,
            is_function_calling_model=True,
            model_name=self.model or DEFAULT_MODEL_NAME,
        )

    @property
    def loaded_model(self) -> bb.Model:
        """The shared ``bitnet_backend.Model`` this LLM generates with."""
        return self._model

    @property
    def tokenizer(self) -> Callable[[str], list[int]]:
        """The model's tokenizer as a callable, e.g. for ``Settings.tokenizer``.

        Token counts for chunking and prompt fitting are then the model's own, and LlamaIndex
        does not fall back to tiktoken. Also for ``TokenCountingHandler(tokenizer=...)`` and a
        chat memory's ``tokenizer_fn``.
        """
        return tokenizer_of(self._model)

    # -- options --------------------------------------------------------------------------

    def _options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Generation options: the fields, then ``generate_kwargs``, then the call's kwargs."""
        return {**self._field_options(), **self.generate_kwargs, **kwargs}

    def _field_options(self) -> dict[str, Any]:
        """Every generation option this class has a field for (under its LlamaIndex name)."""
        fields = type(self).model_fields
        return {
            name: getattr(self, field)
            for name in OPTION_SPECS
            if (field := _FIELD_OF_OPTION.get(name, name)) in fields
        }

    def _custom_prompt(self, messages: Sequence[ChatMessage]) -> str | None:
        """The prompt text of a user's ``messages_to_prompt``, or None to use the template."""
        to_prompt = self.messages_to_prompt
        # The base class fills in its generic function when none is given; anything else was
        # chosen by the user and replaces the model's chat template.
        if to_prompt is None or to_prompt is generic_messages_to_prompt:
            return None
        return to_prompt(messages)

    def _prompt_options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Options of a generation from prompt text, where tools have no place."""
        if kwargs.get("tools"):
            raise ValueError(
                "tool calls need the model's chat template; they cannot be combined with a "
                "custom messages_to_prompt"
            )
        for key in ("tools", "tool_choice", "parallel_tool_calls", "template_kwargs"):
            kwargs.pop(key, None)
        return self._options(kwargs)

    def _completion_text(self, prompt: str, formatted: bool) -> str | None:
        """Prompt text to generate from, or None to go through the chat template."""
        if formatted:
            return prompt
        to_prompt = self.completion_to_prompt
        if to_prompt is None or to_prompt is default_completion_to_prompt:
            return None
        return to_prompt(prompt)

    @staticmethod
    def _user(prompt: str) -> list[dict[str, Any]]:
        return [{"role": "user", "content": prompt}]

    # -- chat -----------------------------------------------------------------------------

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        prompt = self._custom_prompt(messages)
        if prompt is not None:
            return msg.chat_response(self._model.generate(prompt, **self._prompt_options(kwargs)))
        result = self._model.chat(msg.to_bitnet_messages(messages), **self._options(kwargs))
        return msg.chat_response(result)

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        # The model checks options and prompt here, so errors surface before iteration.
        prompt = self._custom_prompt(messages)
        if prompt is not None:
            chunks: Any = self._model.stream(prompt, **self._prompt_options(kwargs))
        else:
            chunks = self._model.stream_chat(
                msg.to_bitnet_messages(messages), **self._options(kwargs)
            )
        return msg.chat_stream(chunks)

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        prompt = self._custom_prompt(messages)
        if prompt is not None:
            result: msg.AnyCompletion = await self._model.agenerate(
                prompt, **self._prompt_options(kwargs)
            )
        else:
            result = await self._model.achat(
                msg.to_bitnet_messages(messages), **self._options(kwargs)
            )
        return msg.chat_response(result)

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        prompt = self._custom_prompt(messages)
        if prompt is not None:
            chunks: Any = self._model.astream(prompt, **self._prompt_options(kwargs))
        else:
            chunks = self._model.astream_chat(
                msg.to_bitnet_messages(messages), **self._options(kwargs)
            )
        return msg.achat_stream(chunks)

    # -- completion -----------------------------------------------------------------------

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        text = self._completion_text(prompt, formatted)
        if text is not None:
            result: msg.AnyCompletion = self._model.generate(text, **self._prompt_options(kwargs))
        else:
            result = self._model.chat(self._user(prompt), **self._options(kwargs))
        return msg.completion_response(result)

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        text = self._completion_text(prompt, formatted)
        if text is not None:
            chunks: Any = self._model.stream(text, **self._prompt_options(kwargs))
        else:
            chunks = self._model.stream_chat(self._user(prompt), **self._options(kwargs))
        return msg.completion_stream(chunks)

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        text = self._completion_text(prompt, formatted)
        if text is not None:
            result: msg.AnyCompletion = await self._model.agenerate(
                text, **self._prompt_options(kwargs)
            )
        else:
            result = await self._model.achat(self._user(prompt), **self._options(kwargs))
        return msg.completion_response(result)

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        text = self._completion_text(prompt, formatted)
        if text is not None:
            chunks: Any = self._model.astream(text, **self._prompt_options(kwargs))
        else:
            chunks = self._model.astream_chat(self._user(prompt), **self._options(kwargs))
        return msg.acompletion_stream(chunks)

    # -- tools ----------------------------------------------------------------------------

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        messages = list(chat_history or [])  # the caller's history is not ours to extend
        if isinstance(user_msg, str):
            user_msg = ChatMessage(role=MessageRole.USER, content=user_msg)
        if user_msg is not None:
            messages.append(user_msg)
        choice = msg.tool_choice(kwargs.pop("tool_choice", None), tool_required)
        return {
            "messages": messages,
            "tools": msg.tool_specs(tools) or None,
            "tool_choice": choice,
            "parallel_tool_calls": allow_parallel_tool_calls,
            **kwargs,
        }

    def get_tool_calls_from_response(
        self,
        response: ChatResponse,
        error_on_no_tool_call: bool = True,
        **kwargs: Any,
    ) -> list[ToolSelection]:
        calls = msg.tool_selections(response.message)
        if not calls and error_on_no_tool_call:
            raise ValueError("expected at least one tool call, but the model replied with text")
        return calls

    # -- structured output ----------------------------------------------------------------

    def _structured_messages(
        self,
        output_cls: type[Model],
        prompt: BasePromptTemplate,
        llm_kwargs: dict[str, Any] | None,
        prompt_args: dict[str, Any],
    ) -> tuple[list[ChatMessage], dict[str, Any]]:
        dispatcher.event(
            LLMStructuredPredictStartEvent(
                output_cls=output_cls, template=prompt, template_args=prompt_args
            )
        )
        kwargs = {**(llm_kwargs or {}), "json_schema": structured.json_schema(output_cls)}
        return self._get_messages(prompt, **prompt_args), kwargs

    @dispatcher.span
    def structured_predict(
        self,
        output_cls: type[Model],
        prompt: BasePromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> Model:
        """The reply to ``prompt`` as an ``output_cls``, decoded under its JSON schema."""
        if self.pydantic_program_mode != PydanticProgramMode.DEFAULT:
            return super().structured_predict(output_cls, prompt, llm_kwargs, **prompt_args)  # type: ignore[arg-type]
        messages, kwargs = self._structured_messages(output_cls, prompt, llm_kwargs, prompt_args)
        return structured.finish(output_cls, self.chat(messages, **kwargs))

    @dispatcher.span
    async def astructured_predict(
        self,
        output_cls: type[Model],
        prompt: BasePromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> Model:
        """Async ``structured_predict``."""
        if self.pydantic_program_mode != PydanticProgramMode.DEFAULT:
            return await super().astructured_predict(
                output_cls,
                prompt,  # type: ignore[arg-type]
                llm_kwargs,
                **prompt_args,
            )
        messages, kwargs = self._structured_messages(output_cls, prompt, llm_kwargs, prompt_args)
        return structured.finish(output_cls, await self.achat(messages, **kwargs))

    @dispatcher.span
    def stream_structured_predict(
        self,
        output_cls: type[Model],
        prompt: BasePromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> Generator[Model | FlexibleModel, None, None]:
        """Partial ``output_cls`` objects as the constrained reply streams; the last is whole."""
        if self.pydantic_program_mode != PydanticProgramMode.DEFAULT:
            return super().stream_structured_predict(
                output_cls,
                prompt,  # type: ignore[arg-type]
                llm_kwargs,
                **prompt_args,
            )
        messages, kwargs = self._structured_messages(output_cls, prompt, llm_kwargs, prompt_args)
        return structured.stream_objects(output_cls, self.stream_chat(messages, **kwargs))

    @dispatcher.span
    async def astream_structured_predict(
        self,
        output_cls: type[Model],
        prompt: BasePromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> AsyncGenerator[Model | FlexibleModel, None]:
        """Async ``stream_structured_predict``."""
        if self.pydantic_program_mode != PydanticProgramMode.DEFAULT:
            return await super().astream_structured_predict(
                output_cls,
                prompt,  # type: ignore[arg-type]
                llm_kwargs,
                **prompt_args,
            )
        messages, kwargs = self._structured_messages(output_cls, prompt, llm_kwargs, prompt_args)
        return structured.astream_objects(output_cls, await self.astream_chat(messages, **kwargs))
