"""``ChatBitnet``: a LangChain chat model over a locally loaded BitNet b1.58 model."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from operator import itemgetter
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.chat_models import (
    BaseChatModel,
    LangSmithParams,
    agenerate_from_stream,
    generate_from_stream,
)
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import Field

import bitnet_backend as bb
from bitnet_backend.schemas import closed

from . import _messages as msg
from ._params import BitnetParams
from ._structured import (
    FinishedJsonOutputKeyToolsParser,
    FinishedJsonOutputParser,
    FinishedPydanticOutputParser,
    FinishedPydanticToolsParser,
)

# Keywords of ``Model.chat`` besides the generation options.
_CHAT_OPTIONS = ("tools", "tool_choice", "parallel_tool_calls", "template_kwargs")

StructuredOutputMethod = Literal["json_schema", "function_calling", "json_mode"]


class ChatBitnet(BitnetParams, BaseChatModel):
    """A BitNet b1.58 chat model running on the CPU, in process, through bitnet-backend.

    Replies go through the model's own chat template. Tool calls and structured output are
    produced by constrained decoding: a call always names a bound tool with arguments valid
    against its schema, and structured output is always JSON of the requested schema (unless
    cut by ``max_tokens``). Models are loaded once per process and shared by every object
    with the same load settings (``ChatBitnet``, ``BitnetLLM``, ``BitnetEmbeddings``), and a
    shared model serves several threads at once.

    Example:
        ```python
        from langchain_bitnet import ChatBitnet

        llm = ChatBitnet()  # the embedded default model
        llm = ChatBitnet(model="microsoft/bitnet-b1.58-2B-4T", temperature=0, max_tokens=256)
        print(llm.invoke("What is the capital of France?").content)
        ```

    ``logprobs=True`` (a field or a call keyword, as on ``ChatOpenAI``) reports each reply
    token's log-probability, and ``top_logprobs`` its likeliest alternatives, in
    ``response_metadata["logprobs"]`` in OpenAI's shape.
    """

    logprobs: bool | None = Field(
        default=None,
        description="Report each reply token's log-probability in "
        "response_metadata['logprobs'] (OpenAI's shape).",
    )
    top_logprobs: int | None = Field(
        default=None,
        ge=0,
        le=20,
        description="With logprobs, also the N likeliest tokens at each position.",
    )

    @property
    def _llm_type(self) -> str:
        return "bitnet-chat"

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="bitnet",
            ls_model_name=str(kwargs.get("model") or self.model_name),
            ls_model_type="chat",
        )
        temperature = kwargs.get("temperature", self.temperature)
        if temperature is not None:
            params["ls_temperature"] = temperature
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        if max_tokens is not None:
            params["ls_max_tokens"] = max_tokens
        stops = stop or kwargs.get("stop") or self.stop
        if stops:
            params["ls_stop"] = list(stops)
        return params

    # -- token counting -------------------------------------------------------------------

    def get_num_tokens_from_messages(
        self,
        messages: list[BaseMessage],
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool] | None = None,
    ) -> int:
        """Prompt tokens of ``messages``: what the model's chat template renders of them.

        With ``tools``, their description in the prompt counts too (as offered by
        ``bind_tools`` with the default ``tool_choice="auto"``). The count equals the reply's
        ``usage_metadata["input_tokens"]``; no messages count 0 (so ``trim_messages`` can
        drop them all).
        """
        if not messages:
            return 0
        specs = [_closed_tool(convert_to_openai_tool(t)) for t in tools or ()]
        ids = self._model.tokenize_chat(msg.to_bitnet_messages(messages), specs or None)
        return len(ids)

    # -- generation -----------------------------------------------------------------------

    def _request(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> tuple[bb.Model, str, list[dict[str, Any]], dict[str, Any]]:
        """The model, its name, the message dicts and the keywords of one ``Model.chat``."""
        kwargs = dict(kwargs)
        kwargs.pop("ls_structured_output_format", None)  # tracing metadata, not an option
        model, name = self._call_model(kwargs)
        chat = {k: kwargs.pop(k) for k in _CHAT_OPTIONS if k in kwargs}
        logprobs = self._logprobs_option(kwargs)
        options = self._generation_options(stop, kwargs)
        return (
            model,
            name,
            msg.to_bitnet_messages(messages),
            {**chat, **options, "logprobs": logprobs},
        )

    def _logprobs_option(self, kwargs: dict[str, Any]) -> int | None:
        """The model's ``logprobs`` option from ChatOpenAI's ``logprobs`` + ``top_logprobs``
        (a call's keywords, taken out of ``kwargs``, override the fields)."""
        wanted = kwargs.pop("logprobs", None)
        top = kwargs.pop("top_logprobs", None)
        wanted = self.logprobs if wanted is None else wanted
        top = self.top_logprobs if top is None else top
        return (top or 0) if wanted else None

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.streaming:
            return generate_from_stream(self._stream(messages, stop, run_manager, **kwargs))
        model, name, messages_, options = self._request(messages, stop, kwargs)
        return _chat_result(model.chat(messages_, **options), name)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.streaming:
            return await agenerate_from_stream(self._astream(messages, stop, run_manager, **kwargs))
        model, name, messages_, options = self._request(messages, stop, kwargs)
        # The native work runs in a worker thread; the event loop stays free.
        return _chat_result(await model.achat(messages_, **options), name)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        model, name, messages_, options = self._request(messages, stop, kwargs)
        for piece in model.stream_chat(messages_, **options):
            chunk = ChatGenerationChunk(message=msg.ai_chunk(piece, name))
            if run_manager is not None:
                run_manager.on_llm_new_token(piece.content, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        model, name, messages_, options = self._request(messages, stop, kwargs)
        async for piece in model.astream_chat(messages_, **options):
            chunk = ChatGenerationChunk(message=msg.ai_chunk(piece, name))
            if run_manager is not None:
                await run_manager.on_llm_new_token(piece.content, chunk=chunk)
            yield chunk

    # -- tools ----------------------------------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: dict[str, Any] | str | bool | None = None,
        parallel_tool_calls: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Offer ``tools`` to the model (LangChain tools, pydantic models, functions, dicts).

        ``tool_choice``: "auto" (default: text or a call), "none", "any"/"required"/True (a
        call to some tool), or a tool's name (a call to that tool). ``parallel_tool_calls``
        lets one reply hold several calls (default: one). Arguments are decoded under each
        tool's parameter schema, closed to undeclared keys.
        """
        specs = [_closed_tool(convert_to_openai_tool(t)) for t in tools]
        if tool_choice is not None:
            names = [s["function"]["name"] for s in specs]
            kwargs["tool_choice"] = _tool_choice(tool_choice, names)
        if parallel_tool_calls is not None:
            kwargs["parallel_tool_calls"] = parallel_tool_calls
        return super().bind(tools=specs, **kwargs)

    # -- structured output ----------------------------------------------------------------

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        include_raw: bool = False,
        method: StructuredOutputMethod = "json_schema",
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | Any]:
        """A runnable whose output is ``schema`` (pydantic model, TypedDict or JSON schema).

        ``method``: "json_schema" (default) decodes the reply under the schema;
        "function_calling" forces a call to a tool made of the schema; "json_mode" decodes any
        JSON object (describe the keys in the prompt). Decoding is always strict, so
        ``strict`` changes nothing. A reply cut by ``max_tokens`` (finish_reason "length") is
        incomplete JSON and raises ``OutputParserException``. With ``include_raw`` the output
        is ``{"raw": AIMessage, "parsed": ..., "parsing_error": ...}`` and nothing raises.
        """
        if kwargs:
            raise ValueError(f"unexpected arguments: {', '.join(sorted(kwargs))}")
        is_pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
        trace = {"kwargs": {"method": method, "strict": strict}, "schema": schema}
        llm: Runnable[LanguageModelInput, BaseMessage]
        parser: Runnable[Any, Any]
        if method == "function_calling":
            name = convert_to_openai_tool(schema)["function"]["name"]
            llm = self.bind_tools([schema], tool_choice=name, ls_structured_output_format=trace)
            parser = (
                FinishedPydanticToolsParser(tools=[schema], first_tool_only=True)  # type: ignore[list-item]
                if is_pydantic
                else FinishedJsonOutputKeyToolsParser(key_name=name, first_tool_only=True)
            )
        elif method in ("json_schema", "json_mode"):
            target = (
                convert_to_json_schema(schema) if method == "json_schema" else {"type": "object"}
            )
            llm = self.bind(json_schema=closed(target), ls_structured_output_format=trace)
            parser = (
                FinishedPydanticOutputParser(pydantic_object=schema)  # type: ignore[arg-type]
                if is_pydantic
                else FinishedJsonOutputParser()
            )
        else:
            raise ValueError(
                f"method must be 'json_schema', 'function_calling' or 'json_mode', not {method!r}"
            )
        if not include_raw:
            return llm | parser
        parse = RunnablePassthrough.assign(
            parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
        )
        no_parse = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parse.with_fallbacks(
            [no_parse], exception_key="parsing_error"
        )


def _chat_result(result: bb.ChatCompletion, model_name: str) -> ChatResult:
    message = msg.ai_message(result, model_name)
    info = {"finish_reason": result.finish_reason}
    return ChatResult(generations=[ChatGeneration(message=message, generation_info=info)])


def _closed_tool(spec: dict[str, Any]) -> dict[str, Any]:
    fn = spec["function"]
    params = fn.get("parameters") or {"type": "object", "properties": {}}
    return {**spec, "function": {**fn, "parameters": closed(params)}}


def _tool_choice(choice: dict[str, Any] | str | bool, names: list[str]) -> str | dict[str, Any]:
    """``Model.chat``'s tool_choice from LangChain's spellings."""
    if choice is True or choice in ("any", "required"):
        return "required"
    if choice is False:
        return "none"
    if choice in ("auto", "none"):
        return str(choice)
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") or choice.get("name")
    else:
        name = choice
    if not isinstance(name, str) or name not in names:
        raise ValueError(f"tool_choice {choice!r} names none of the bound tools {names}")
    return {"name": name}
