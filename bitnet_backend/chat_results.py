"""Chat results from the chunks of a generation: the reply message and its tool calls."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .completion import (
    ChatCompletion,
    ChatCompletionChunk,
    Completion,
    CompletionChunk,
    FinishReason,
)
from .constraints import ToolCallStream


def chat_result(c: Completion, tool_stream: ToolCallStream | None = None) -> ChatCompletion:
    """The ChatCompletion of a finished generation (its tool calls parsed)."""
    message: dict[str, Any] = {"role": "assistant", "content": c.text}
    finish: FinishReason = c.finish_reason
    if tool_stream is not None:
        tool_stream.feed(c.text)
        message, finish = tool_stream.finish(c.finish_reason)
    return ChatCompletion(
        message=message,
        token_ids=c.token_ids,
        finish_reason=finish,
        usage=c.usage,
        timings=c.timings,
        logprobs=c.logprobs,
    )


def chat_chunks(
    chunks: Iterator[CompletionChunk], tool_stream: ToolCallStream | None = None
) -> Iterator[ChatCompletionChunk]:
    chat = ChatChunks(tool_stream)
    try:
        for c in chunks:
            yield chat.convert(c)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


class ChatChunks:
    """Turns the CompletionChunks of one chat reply into ChatCompletionChunks."""

    def __init__(self, tool_stream: ToolCallStream | None) -> None:
        self._tool_stream = tool_stream
        self._first = True

    def convert(self, c: CompletionChunk) -> ChatCompletionChunk:
        delta: dict[str, Any] = {"content": c.text}
        finish: FinishReason | None = c.finish_reason
        tool_calls = None
        tool_stream = self._tool_stream
        if tool_stream is not None:
            delta = _merge_deltas(tool_stream.feed(c.text))
            if finish is not None:
                held = tool_stream.flush()
                delta["content"] = delta.get("content", "") + held
                message, finish = tool_stream.finish(finish)
                tool_calls = message.get("tool_calls")
        if self._first:
            delta = {"role": "assistant", **delta}
            self._first = False
        return ChatCompletionChunk(
            delta, c.token_ids, finish, c.usage, tool_calls, c.timings, c.logprobs
        )


def _merge_deltas(deltas: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One chunk's delta from a ToolCallStream's pieces: content joined, call pieces listed."""
    out: dict[str, Any] = {"content": "".join(d.get("content", "") for d in deltas)}
    calls = [tc for d in deltas for tc in d.get("tool_calls", ())]
    if calls:
        out["tool_calls"] = calls
    return out
