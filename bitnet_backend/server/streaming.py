"""Server-sent events in OpenAI's chunk format, fed by the Model API's async streams.

A stream's first chunk is awaited before the response starts (``prime``), so a bad request
still gets a proper error status; after that, errors arrive as an ``{"error": ...}`` event,
which openai-python raises as APIError. Every chunk of a response carries the same id and the
stream ends with ``data: [DONE]``. When the client goes away, closing the response closes the
Model API's iterators, which stops their generation after the current token and frees the slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ..completion import ChatCompletionChunk, CompletionChunk, TokenLogprob
from ..logprobs import openai_chat_logprobs, openai_completion_logprobs
from .errors import as_api_error
from .translate import wire_usage

T = TypeVar("T")
DONE = b"data: [DONE]\n\n"


def sse(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


class SSEResponse(StreamingResponse):
    """A text/event-stream response that always runs ``on_close`` once it is over.

    Starlette leaves an interrupted body iterator to the garbage collector (and never starts
    it when the client left before the first byte); closing it here makes freeing the
    request's slot immediate and certain.
    """

    media_type = "text/event-stream"

    def __init__(self, content: AsyncIterator[bytes], on_close: Callable[[], None]) -> None:
        super().__init__(content, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._content = content
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            try:
                aclose = getattr(self._content, "aclose", None)
                if aclose is not None:
                    await aclose()
            finally:
                self._on_close()


class Primed(AsyncIterator[T]):
    """An async iterator whose first item was already fetched."""

    def __init__(self, first: T, rest: AsyncIterator[T]) -> None:
        self._first: list[T] = [first]
        self._rest = rest

    def __aiter__(self) -> Primed[T]:
        return self

    async def __anext__(self) -> T:
        if self._first:
            return self._first.pop()
        return await self._rest.__anext__()

    async def aclose(self) -> None:
        aclose = getattr(self._rest, "aclose", None)
        if aclose is not None:
            await aclose()


async def prime(streams: Sequence[AsyncIterator[T]]) -> list[Primed[T]]:
    """Fetch every stream's first item, all at once (raising the first error, after closing
    every stream)."""
    firsts = await asyncio.gather(*(s.__anext__() for s in streams), return_exceptions=True)
    for item in firsts:
        if isinstance(item, BaseException):
            await close_all(streams)
            raise item
    return [Primed(first, s) for first, s in zip(firsts, streams, strict=True)]  # type: ignore[arg-type]


async def close_all(streams: Sequence[AsyncIterator[Any]]) -> None:
    for s in streams:
        aclose = getattr(s, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()


async def merge(streams: Sequence[AsyncIterator[T]]) -> AsyncGenerator[tuple[int, T], None]:
    """Items of several streams as they come, tagged with the stream's index."""
    if len(streams) == 1:
        async for item in streams[0]:
            yield 0, item
        return
    queue: asyncio.Queue[tuple[int, Any, BaseException | None]] = asyncio.Queue()
    end = object()

    async def pump(i: int, s: AsyncIterator[T]) -> None:
        try:
            async for item in s:
                await queue.put((i, item, None))
        except Exception as exc:
            await queue.put((i, end, exc))
        else:
            await queue.put((i, end, None))

    tasks = [asyncio.ensure_future(pump(i, s)) for i, s in enumerate(streams)]
    try:
        left = len(tasks)
        while left:
            i, item, exc = await queue.get()
            if exc is not None:
                raise exc
            if item is end:
                left -= 1
                continue
            yield i, item
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await close_all(streams)


def _delta(chunk: ChatCompletionChunk) -> dict[str, Any]:
    d = chunk.delta
    out: dict[str, Any] = {}
    if "role" in d:
        out["role"] = d["role"]
    if d.get("content") or "role" in d:
        out["content"] = d.get("content") or ""
    if d.get("tool_calls"):
        out["tool_calls"] = d["tool_calls"]
    return out


async def chat_events(
    streams: Sequence[AsyncIterator[ChatCompletionChunk]],
    head: dict[str, Any],
    include_usage: bool,
    on_usage: Callable[[dict[str, Any]], None],
) -> AsyncIterator[bytes]:
    """The SSE body of a streamed chat completion with ``len(streams)`` choices.

    Each chunk carries the log-probabilities (when asked for) of the tokens since the last
    chunk sent: those of a skipped chunk go with the next one.
    """
    usages: list[Any] = [None] * len(streams)
    held: list[list[TokenLogprob]] = [[] for _ in streams]
    extra = {"usage": None} if include_usage else {}
    merged = merge(streams)
    try:
        async for i, chunk in merged:
            delta = _delta(chunk)
            if chunk.logprobs:
                held[i].extend(chunk.logprobs)
            if not delta and chunk.finish_reason is None:
                continue  # nothing to say yet (e.g. the tool-call JSON before its name)
            if chunk.usage is not None:
                usages[i] = chunk.usage
            logprobs = None
            if chunk.logprobs is not None:
                logprobs, held[i] = openai_chat_logprobs(held[i]), []
            choice = {
                "index": i,
                "delta": delta,
                "logprobs": logprobs,
                "finish_reason": chunk.finish_reason,
            }
            yield sse({**head, "choices": [choice], **extra})
        usage = wire_usage([u for u in usages if u is not None])
        on_usage(usage)
        if include_usage:
            yield sse({**head, "choices": [], "usage": usage})
        yield DONE
    except Exception as exc:
        yield sse(as_api_error(exc).body())
    finally:
        await merged.aclose()
        await close_all(streams)


async def completion_events(
    streams: Sequence[AsyncIterator[CompletionChunk]],
    per_prompt: int,
    text_offsets: Sequence[int],
    head: dict[str, Any],
    include_usage: bool,
    on_usage: Callable[[dict[str, Any]], None],
) -> AsyncIterator[bytes]:
    """The SSE body of a streamed text completion (``per_prompt`` choices per prompt).

    ``text_offsets[i]``: where choice i's text starts (its logprobs' ``text_offset``).
    """
    usages: list[Any] = [None] * len(streams)
    offsets = list(text_offsets)
    extra = {"usage": None} if include_usage else {}
    merged = merge(streams)
    try:
        async for i, chunk in merged:
            if not chunk.text and not chunk.logprobs and chunk.finish_reason is None:
                continue
            if chunk.usage is not None:
                usages[i] = chunk.usage
            logprobs = None
            if chunk.logprobs is not None:
                logprobs = openai_completion_logprobs(chunk.logprobs, offsets[i])
                offsets[i] += sum(len(e.token) for e in chunk.logprobs)
            choice = {
                "index": i,
                "text": chunk.text,
                "logprobs": logprobs,
                "finish_reason": chunk.finish_reason,
            }
            yield sse({**head, "choices": [choice], **extra})
        usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        for k in range(0, len(usages), per_prompt):
            u = wire_usage([x for x in usages[k : k + per_prompt] if x is not None])
            for key in usage:
                usage[key] += u[key]
        on_usage(usage)
        if include_usage:
            yield sse({**head, "choices": [], "usage": usage})
        yield DONE
    except Exception as exc:
        yield sse(as_api_error(exc).body())
    finally:
        await merged.aclose()
        await close_all(streams)


async def gather_all(calls: Sequence[Awaitable[T]]) -> list[T]:
    """Await several model calls at once; on the first failure, cancel the others."""
    tasks = [asyncio.ensure_future(c) for c in calls]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
