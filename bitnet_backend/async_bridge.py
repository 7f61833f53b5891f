"""The one bridge between the scheduler thread and its callers: a per-request Channel.

The scheduler thread puts a request's results into its Channel; the caller takes them either
blocking (from any thread) or by awaiting (from an event loop). An awaiting caller parks on
an asyncio future that the scheduler resolves through ``call_soon_threadsafe``, so async
callers need no worker thread, and the event loop never runs model work.

A blocked caller waits in a C-level queue: waking it costs the producer one call and the
caller no Python-level lock hand-over, so a step that wakes many callers keeps the GIL and
the cores for the model. asyncio (several MB of modules) is imported where a caller awaits,
which has it loaded already: a process of threads only never loads it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    import asyncio

T = TypeVar("T")


class _Failure:
    """The end of a channel with an error; it stays in the queue for every later take."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class Channel(Generic[T]):
    """Items from one producer thread to one consumer; ``fail`` ends it with an error."""

    __slots__ = ("_error", "_items", "_lock", "_wake")

    def __init__(self) -> None:
        self._items: queue.SimpleQueue[T | _Failure] = queue.SimpleQueue()
        # Orders the producer against an awaiting consumer registering its wake-up.
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self._wake: Callable[[], bool] | None = None

    # -- producer side (the scheduler thread) --------------------------------------------------

    def put_many(self, items: Iterable[T]) -> bool:
        """Hand ``items`` over in order with one wake-up of an awaiting consumer; False when
        the consumer's event loop is gone."""
        with self._lock:
            if self._error is not None:
                return True  # ended: the consumer takes nothing after the error
            for item in items:
                self._items.put(item)
            wake, self._wake = self._wake, None
        return wake() if wake is not None else True

    def fail(self, error: BaseException) -> None:
        """End the channel: the consumer gets ``error`` once it has taken the items before."""
        with self._lock:
            if self._error is None:
                self._error = error
                self._items.put(_Failure(error))
            wake, self._wake = self._wake, None
        if wake is not None:
            wake()

    # -- consumer side -------------------------------------------------------------------------

    def get(self) -> T:
        """The next item, blocking until the producer puts or fails."""
        return self._unwrap(self._items.get())

    async def aget(self) -> T:
        """The next item, awaiting the producer without blocking the event loop."""
        import asyncio

        while True:
            with self._lock:
                try:
                    item = self._items.get_nowait()
                except queue.Empty:
                    loop = asyncio.get_running_loop()
                    ready = loop.create_future()
                    self._wake = partial(_resolve_soon, loop, ready)
                else:
                    return self._unwrap(item)
            await ready

    def _unwrap(self, item: T | _Failure) -> T:
        if isinstance(item, _Failure):
            self._items.put(item)  # every later take raises it too
            raise item.error
        return item


def _resolve_soon(loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]) -> bool:
    try:
        loop.call_soon_threadsafe(_resolve, future)
    except RuntimeError:  # the event loop is closed: nobody is listening any more
        return False
    return True


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():  # a cancelled await leaves its future behind
        future.set_result(None)
