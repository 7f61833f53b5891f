"""Giving freed C heap memory back to the operating system after a large transient use.

Parsing a tokenizer.json of a 128k-token vocabulary allocates tens of megabytes that are
freed again at once; glibc keeps such freed memory in the middle of its heap resident for
later allocations, and a model process rarely makes any that large again. ``malloc_trim``
hands the free pages back. Elsewhere (other C libraries) this does nothing.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable

_trim: Callable[[int], int] | None = None
_looked_up = False


def release_free_heap() -> None:
    """Return the C heap's free pages to the OS where the C library can (glibc)."""
    global _trim, _looked_up
    if not _looked_up:
        _looked_up = True
        if sys.platform.startswith("linux"):
            try:
                _trim = ctypes.CDLL(None).malloc_trim
            except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
                _trim = None
    if _trim is not None:
        _trim(0)
