"""Translation between LangChain messages and bitnet_backend's message dicts and results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import tool_call, tool_call_chunk

import bitnet_backend as bb
from bitnet_backend.logprobs import openai_chat_logprobs

# Content blocks that carry no text for the model: provider bookkeeping, or tool calls that
# travel in ``AIMessage.tool_calls`` as well.
_SKIPPED_BLOCKS = frozenset(
    {"tool_use", "tool_call", "tool_call_chunk", "thinking", "reasoning", "redacted_thinking"}
)
_ROLES = {"human": "user", "ai": "assistant", "developer": "system", "function": "tool"}


def text_of(content: str | list[str | dict[str, Any]]) -> str:
    """The text of a message's content; non-text media raise ValueError."""
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
            continue
        kind = block.get("type")
        if kind == "text":
            parts.append(str(block.get("text", "")))
        elif kind not in _SKIPPED_BLOCKS:
            raise ValueError(
                f"BitNet models read text only; a {kind!r} content block cannot be sent"
            )
    return "".join(parts)


def _call_dict(call: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "function",
        "function": {"name": call["name"], "arguments": dict(call.get("args") or {})},
    }
    if call.get("id"):
        out["id"] = call["id"]
    return out


def to_bitnet_messages(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """Message dicts for ``Model.chat``: text, tool calls and tool results."""
    out: list[dict[str, Any]] = []
    tool_names: dict[str, str] = {}  # tool-call id -> tool name, for results that lack a name
    for m in messages:
        message: dict[str, Any] = {"content": text_of(m.content)}
        if isinstance(m, SystemMessage):
            message["role"] = "system"
        elif isinstance(m, HumanMessage):
            message["role"] = "user"
        elif isinstance(m, AIMessage):
            message["role"] = "assistant"
            if m.tool_calls:
                message["tool_calls"] = [_call_dict(c) for c in m.tool_calls]
                tool_names.update({c["id"]: c["name"] for c in m.tool_calls if c["id"]})
        elif isinstance(m, ToolMessage):
            message["role"] = "tool"
            message["tool_call_id"] = m.tool_call_id
            name = m.name or tool_names.get(m.tool_call_id)
            if name:
                message["name"] = name
        elif isinstance(m, FunctionMessage):
            message.update(role="tool", name=m.name)
        elif isinstance(m, ChatMessage):
            message["role"] = _ROLES.get(m.role, m.role)
        else:
            raise ValueError(f"unsupported message type {type(m).__name__}")
        out.append(message)
    return out


def usage_metadata(usage: bb.Usage) -> UsageMetadata:
    return UsageMetadata(
        input_tokens=usage["prompt_tokens"],
        output_tokens=usage["completion_tokens"],
        total_tokens=usage["total_tokens"],
    )


def _lc_tool_calls(calls: Sequence[Mapping[str, Any]]) -> list[Any]:
    return [
        tool_call(name=c["function"]["name"], args=dict(c["function"]["arguments"]), id=c.get("id"))
        for c in calls
    ]


def _logprobs_metadata(entries: list[bb.TokenLogprob] | None) -> dict[str, Any]:
    """``{"logprobs": ...}`` in OpenAI's shape (as ChatOpenAI reports them), or nothing."""
    return {} if entries is None else {"logprobs": openai_chat_logprobs(entries)}


def ai_message(result: bb.ChatCompletion, model_name: str) -> AIMessage:
    """The AIMessage of a finished reply: text or tool calls, usage, finish reason, and the
    tokens' log-probabilities when asked for."""
    return AIMessage(
        content=result.content,
        tool_calls=_lc_tool_calls(result.tool_calls),
        usage_metadata=usage_metadata(result.usage),
        response_metadata={
            "finish_reason": result.finish_reason,
            "model_name": model_name,
            **_logprobs_metadata(result.logprobs),
        },
    )


def ai_chunk(chunk: bb.ChatCompletionChunk, model_name: str) -> AIMessageChunk:
    """The AIMessageChunk of one streamed piece.

    Tool-call pieces become ``tool_call_chunks`` (the arguments' JSON text arrives in fragments
    that LangChain joins by index). Usage, finish reason and model name are set once, on the
    last chunk, so that adding the chunks up counts them once. Each chunk's log-probabilities
    (when asked for) cover its own tokens: adding the chunks up joins them.
    """
    pieces = chunk.delta.get("tool_calls") or []
    call_chunks = [
        tool_call_chunk(
            name=(p.get("function") or {}).get("name"),
            args=(p.get("function") or {}).get("arguments"),
            id=p.get("id"),
            index=p.get("index"),
        )
        for p in pieces
    ]
    logprobs = _logprobs_metadata(chunk.logprobs)
    if chunk.finish_reason is None:
        return AIMessageChunk(
            content=chunk.content, tool_call_chunks=call_chunks, response_metadata=logprobs
        )
    return AIMessageChunk(
        content=chunk.content,
        tool_call_chunks=call_chunks,
        usage_metadata=usage_metadata(chunk.usage) if chunk.usage else None,
        response_metadata={
            "finish_reason": chunk.finish_reason,
            "model_name": model_name,
            **logprobs,
        },
        chunk_position="last",
    )
