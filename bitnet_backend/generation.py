"""Token-by-token text assembly: whole UTF-8 characters, stop strings held back and cut.

Generated tokens arrive one at a time. ``Utf8Decoder`` turns their raw bytes into text,
holding back a multi-byte character until its last byte arrives (byte-level tokenizers split
CJK characters and emoji over several tokens). ``StopStringFilter`` holds back any text that
could still become a stop string, so a stop string split across tokens is never emitted, and
reports where the first one matched. ``TextAssembler`` chains the two.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Sequence

from .errors import InvalidParameterError


def normalize_stop(stop: str | Iterable[str] | None) -> tuple[str, ...]:
    """Validate ``stop`` (None, one string or several) into a tuple of non-empty strings."""
    if stop is None:
        return ()
    if isinstance(stop, str):
        stop = (stop,)
    try:
        stops = tuple(stop)
    except TypeError:
        raise InvalidParameterError(
            f"stop must be a string or a list of strings, got {stop!r}"
        ) from None
    for s in stops:
        if not isinstance(s, str) or not s:
            raise InvalidParameterError(f"stop strings must be non-empty strings, got {s!r}")
    return tuple(dict.fromkeys(stops))


class Utf8Decoder:
    """Incremental bytes -> str over token ids; yields only complete characters."""

    def __init__(self, token_bytes: Sequence[bytes]) -> None:
        self._token_bytes = token_bytes
        self._dec = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token_id: int) -> str:
        """Text completed by this token (may be empty while a character is incomplete)."""
        return str(self._dec.decode(self._token_bytes[token_id]))

    def flush(self) -> str:
        """End of stream: an incomplete trailing character becomes U+FFFD."""
        return str(self._dec.decode(b"", final=True))


class StopStringFilter:
    """Withholds text that may start a stop string; finds the first one to complete."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(stops)
        self._pending = ""
        self.stopped = False

    def push(self, text: str) -> str:
        """Add ``text``; return what is now safe to emit. Sets ``stopped`` on a match."""
        if self.stopped:
            return ""
        if not self.stops:
            return text
        pending = self._pending + text
        # The match that completes first wins (then the one starting first), as if the text
        # had arrived one character at a time: the result must not depend on how the text
        # was split into tokens.
        best: tuple[int, int] | None = None
        for s in self.stops:
            i = pending.find(s)
            if i >= 0 and (best is None or (i + len(s), i) < best):
                best = (i + len(s), i)
        if best is not None:
            self.stopped = True
            self._pending = ""
            return pending[: best[1]]
        hold = 0
        for s in self.stops:
            # the longest suffix of pending that is a proper prefix of s
            for k in range(min(len(s) - 1, len(pending)), hold, -1):
                if pending.endswith(s[:k]):
                    hold = k
                    break
        if hold:
            self._pending = pending[-hold:]
            return pending[:-hold]
        self._pending = ""
        return pending

    def flush(self) -> str:
        """End of stream without a match: the withheld text is real output after all."""
        out, self._pending = ("" if self.stopped else self._pending), ""
        return out


class TextAssembler:
    """Token ids in, emit-ready text out (UTF-8 complete, stop strings removed)."""

    def __init__(self, token_bytes: Sequence[bytes], stops: Sequence[str] = ()) -> None:
        self._utf8 = Utf8Decoder(token_bytes)
        self._stops = StopStringFilter(stops)

    @property
    def stopped(self) -> bool:
        """True once a stop string has matched."""
        return self._stops.stopped

    def push(self, token_id: int) -> str:
        return self._stops.push(self._utf8.push(token_id))

    def flush(self) -> str:
        if self._stops.stopped:
            return ""
        return self._stops.push(self._utf8.flush()) + self._stops.flush()
