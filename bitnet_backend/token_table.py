"""Every token id's raw bytes in one buffer, indexed like a list of bytes.

Streaming turns each sampled id into text through its bytes (generation.py). As a list of
bytes objects, a 128k-token vocabulary costs about 8 MB for well under 1 MB of bytes: each
object carries its header and allocator overhead. Here the bytes of all ids follow one
another in one buffer, and an id's bytes are a slice of it.
"""

from __future__ import annotations

import operator
from array import array
from collections.abc import Iterator, Sequence
from typing import SupportsIndex, overload


class TokenBytes(Sequence[bytes]):
    """Read-only: ``table[i]`` is id ``i``'s bytes; ``len(table)`` the number of ids."""

    __slots__ = ("_blob", "_offsets")

    def __init__(self, pieces: Sequence[bytes]) -> None:
        self._blob = b"".join(pieces)
        # id i's bytes are _blob[_offsets[i]:_offsets[i + 1]]
        offsets = array("I", [0])
        total = 0
        for piece in pieces:
            total += len(piece)
            offsets.append(total)
        self._offsets = offsets

    def __len__(self) -> int:
        return len(self._offsets) - 1

    @overload
    def __getitem__(self, index: SupportsIndex) -> bytes: ...

    @overload
    def __getitem__(self, index: slice) -> list[bytes]: ...

    def __getitem__(self, index: SupportsIndex | slice) -> bytes | list[bytes]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        i = operator.index(index)
        n = len(self._offsets) - 1
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"token id {index} is outside [0, {n})")
        offsets = self._offsets
        return self._blob[offsets[i] : offsets[i + 1]]

    def __iter__(self) -> Iterator[bytes]:
        blob, offsets = self._blob, self._offsets
        for i in range(len(offsets) - 1):
            yield blob[offsets[i] : offsets[i + 1]]

    def longest(self) -> int:
        """Bytes of the longest entry (0 when there are none)."""
        offsets = self._offsets
        return max((offsets[i + 1] - offsets[i] for i in range(len(offsets) - 1)), default=0)
