"""Translation between LlamaIndex chat types and bitnet_backend's message dicts and results."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

from llama_index.core.base.llms.types import (
    CachePoint,
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    LogProb,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)
from llama_index.core.llms.llm import ToolSelection

import bitnet_backend as bb

from .schemas import closed

if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool

# LlamaIndex roles that chat templates do not know, mapped to the ones they do.
_ROLES = {
    MessageRole.DEVELOPER: "system",
    MessageRole.CHATBOT: "assistant",
    MessageRole.MODEL: "assistant",
    MessageRole.FUNCTION: "tool",
}

AnyCompletion: TypeAlias = "bb.Completion | bb.ChatCompletion"
AnyChunk: TypeAlias = "bb.CompletionChunk | bb.ChatCompletionChunk"


def to_bitnet_messages(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """Message dicts for ``Model.chat``: text joined, tool calls and tool results kept."""
    out = []
    for m in messages:
        role = _ROLES.get(m.role, m.role.value)
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        for block in m.blocks:
            if isinstance(block, TextBlock):
                texts.append(block.text)
            elif isinstance(block, ToolCallBlock):
                calls.append(_call_dict(block))
            elif isinstance(block, (ThinkingBlock, CachePoint)):
                continue  # provider bookkeeping, not text the model should read back
            else:
                raise ValueError(
                    f"Bitnet models read text only; a {type(block).__name__} cannot be sent"
                )
        # Chat histories written before ToolCallBlock existed keep calls in additional_kwargs.
        legacy = m.additional_kwargs.get("tool_calls")
        if not calls and isinstance(legacy, list):
            calls = [dict(c) for c in legacy if isinstance(c, Mapping)]
        message: dict[str, Any] = {"role": role, "content": "\n".join(texts)}
        if calls:
            message["tool_calls"] = calls
        if role == "tool":
            for key in ("tool_call_id", "name"):
                if m.additional_kwargs.get(key):
                    message[key] = m.additional_kwargs[key]
        out.append(message)
    return out


def _call_dict(block: ToolCallBlock) -> dict[str, Any]:
    call: dict[str, Any] = {
        "type": "function",
        "function": {"name": block.tool_name, "arguments": block.tool_kwargs},
    }
    if block.tool_call_id:
        call["id"] = block.tool_call_id
    return call


def tool_specs(tools: Sequence[BaseTool]) -> list[dict[str, Any]]:
    """OpenAI-style function dicts, the tool format ``Model.chat`` takes.

    Parameters are closed to undeclared keys (``schemas.closed``): a Python tool would reject
    them.
    """
    specs = []
    for tool in tools:
        spec = tool.metadata.to_openai_tool(skip_length_check=True)
        fn = spec["function"]
        specs.append({**spec, "function": {**fn, "parameters": closed(fn["parameters"])}})
    return specs


def tool_choice(choice: Any, tool_required: bool) -> Any:
    """``Model.chat``'s tool_choice from LlamaIndex's ``tool_required`` / ``tool_choice``.

    A bare tool name (FunctionAgent's ``initial_tool_choice``) becomes ``{"name": ...}``.
    """
    if choice is None:
        return "required" if tool_required else "auto"
    if isinstance(choice, str) and choice not in ("auto", "required", "none"):
        return {"name": choice}
    return choice


def tool_selections(message: ChatMessage) -> list[ToolSelection]:
    """The tool calls of an assistant message."""
    out = []
    for block in message.blocks:
        if not isinstance(block, ToolCallBlock):
            continue
        kwargs = block.tool_kwargs
        if isinstance(kwargs, str):
            kwargs = json.loads(kwargs) if kwargs.strip() else {}
        out.append(
            ToolSelection(
                tool_id=block.tool_call_id or block.tool_name,
                tool_name=block.tool_name,
                tool_kwargs=kwargs,
            )
        )
    return out


def _tool_blocks(calls: Sequence[Mapping[str, Any]] | None) -> list[ToolCallBlock]:
    return [
        ToolCallBlock(
            tool_call_id=c.get("id"),
            tool_name=c["function"]["name"],
            tool_kwargs=c["function"]["arguments"],
        )
        for c in calls or ()
    ]


def _text(result: AnyCompletion | AnyChunk) -> str:
    if isinstance(result, (bb.Completion, bb.CompletionChunk)):
        return result.text
    return result.content


def _extra(result: AnyCompletion | AnyChunk) -> dict[str, Any]:
    """Usage and finish reason, where LlamaIndex's token counters look for them."""
    if result.finish_reason is None:
        return {}
    return {**(result.usage or {}), "finish_reason": result.finish_reason}


def _logprobs(result: AnyCompletion | AnyChunk) -> list[list[LogProb]] | None:
    """The tokens' log-probabilities (when the call asked for them, ``logprobs=N``).

    One list per token: its N likeliest alternatives, as LlamaIndex's OpenAI LLM reports
    them, or the token alone when N is 0.
    """
    if result.logprobs is None:
        return None
    return [[_log_prob(a) for a in e.top_logprobs] or [_log_prob(e)] for e in result.logprobs]


def _log_prob(e: bb.TokenLogprob) -> LogProb:
    return LogProb(token=e.token, logprob=e.logprob, bytes=list(e.bytes))


def _message(text: str, calls: Sequence[Mapping[str, Any]] | None) -> ChatMessage:
    blocks: list[Any] = [TextBlock(text=text), *_tool_blocks(calls)]
    return ChatMessage(role=MessageRole.ASSISTANT, blocks=blocks)


def chat_response(result: AnyCompletion) -> ChatResponse:
    """A ChatResponse of a finished reply (chat, or generate from a custom prompt)."""
    calls = result.tool_calls if isinstance(result, bb.ChatCompletion) else None
    return ChatResponse(
        message=_message(_text(result), calls),
        raw=dataclasses.asdict(result),
        additional_kwargs=_extra(result),
        logprobs=_logprobs(result),
    )


def completion_response(result: AnyCompletion) -> CompletionResponse:
    """A CompletionResponse of a finished reply."""
    return CompletionResponse(
        text=_text(result),
        raw=dataclasses.asdict(result),
        additional_kwargs=_extra(result),
        logprobs=_logprobs(result),
    )


class _Accumulator:
    """Text so far of a stream; every response carries the whole message, as LlamaIndex wants
    (and, like ``delta``, the log-probabilities of its own chunk's tokens)."""

    def __init__(self) -> None:
        self.text = ""

    def chat(self, chunk: AnyChunk) -> ChatResponse:
        delta = _text(chunk)
        self.text += delta
        calls = chunk.tool_calls if isinstance(chunk, bb.ChatCompletionChunk) else None
        return ChatResponse(
            message=_message(self.text, calls),
            delta=delta,
            raw=dataclasses.asdict(chunk),
            additional_kwargs=_extra(chunk),
            logprobs=_logprobs(chunk),
        )

    def completion(self, chunk: AnyChunk) -> CompletionResponse:
        delta = _text(chunk)
        self.text += delta
        return CompletionResponse(
            text=self.text,
            delta=delta,
            raw=dataclasses.asdict(chunk),
            additional_kwargs=_extra(chunk),
            logprobs=_logprobs(chunk),
        )


def chat_stream(chunks: Iterator[AnyChunk]) -> Generator[ChatResponse, None, None]:
    acc = _Accumulator()
    for chunk in chunks:
        yield acc.chat(chunk)


def completion_stream(chunks: Iterator[AnyChunk]) -> Generator[CompletionResponse, None, None]:
    acc = _Accumulator()
    for chunk in chunks:
        yield acc.completion(chunk)


async def achat_stream(chunks: AsyncIterator[AnyChunk]) -> AsyncGenerator[ChatResponse, None]:
    acc = _Accumulator()
    async for chunk in chunks:
        yield acc.chat(chunk)


async def acompletion_stream(
    chunks: AsyncIterator[AnyChunk],
) -> AsyncGenerator[CompletionResponse, None]:
    acc = _Accumulator()
    async for chunk in chunks:
        yield acc.completion(chunk)
