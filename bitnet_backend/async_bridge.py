"""The one bridge between the scheduler thread and its callers: a per-request Channel.

The scheduler thread puts a request's results into its Channel; the caller takes them either
blocking (from any thread) or by awaiting (from an event loop). An awaiting caller parks on
an asyncio future that the scheduler resolves through ``call_soon_threadsafe``, so async
callers need no worker thread, and the event loop never runs model work.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Generic, TypeVar

T = TypeVar("T")


class Channel(Generic[T]):
    """Items from one producer thread to one consumer; ``fail`` ends it with an error."""

    __slots__ = ("_error", "_items", "_ready", "_wake")

    def __init__(self) -> None:
        self._items: deque[T] = deque()
        self._ready = threading.Condition(threading.Lock())
        self._error: BaseException | None = None
        self._wake: Callable[[], bool] | None = None

    # -- producer side (the scheduler thread) --------------------------------------------------

    def put(self, item: T) -> bool:
        """Hand ``item`` over; False when the consumer's event loop is gone."""
        with self._ready:
            if self._error is not None:
                return True  # ended: the consumer takes nothing after the error
            self._items.append(item)
            self._ready.notify()
            wake, self._wake = self._wake, None
        return wake() if wake is not None else True

    def fail(self, error: BaseException) -> None:
        """End the channel: the consumer gets ``error`` once it has taken the items before."""
        with self._ready:
            if self._error is None:
                self._error = error
            self._ready.notify()
            wake, self._wake = self._wake, None
        if wake is not None:
            wake()

    # -- consumer side -------------------------------------------------------------------------

    def get(self) -> T:
        """The next item, blocking until the producer puts or fails."""
        with self._ready:
            while not self._items:
                if self._error is not None:
                    raise self._error
                self._ready.wait()
            return self._items.popleft()

    async def aget(self) -> T:
        """The next item, awaiting the producer without blocking the event loop."""
        while True:
            with self._ready:
                if self._items:
                    return self._items.popleft()
                if self._error is not None:
                    raise self._error
                loop = asyncio.get_running_loop()
                ready = loop.create_future()
                self._wake = partial(_resolve_soon, loop, ready)
            await ready


def _resolve_soon(loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]) -> bool:
    try:
        loop.call_soon_threadsafe(_resolve, future)
    except RuntimeError:  # the event loop is closed: nobody is listening any more
        return False
    return True


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():  # a cancelled await leaves its future behind
        future.set_result(None)
