"""An incremental JSON scanner: where text fed one character at a time stands in a document.

It follows nesting, strings (with their escapes) and, in every object, whether a key or a
value is being read and under which key, without looking back. A reader of streamed output
(tool_stream.py) learns a call's name or the start of its arguments the moment the text
arrives. It reports positions only: the text is assumed to be JSON (a grammar made it so).
"""

from __future__ import annotations

import json
from typing import Literal

Event = Literal["open", "close", "string_start", "string", "string_end", "other"]


class _Object:
    """An open object: the key whose value is being read (after its colon)."""

    __slots__ = ("after_colon", "key")

    def __init__(self) -> None:
        self.key: str | None = None
        self.after_colon = False


class JsonScanner:
    """The position in JSON text fed one character at a time (``feed``)."""

    __slots__ = ("_containers", "_escaped", "_kept", "in_string", "string_is_key")

    def __init__(self) -> None:
        self.in_string = False
        self.string_is_key = False  # the string being (or last) read is an object key
        self._escaped = False
        self._kept: list[str] | None = None  # characters of the current string, when kept
        self._containers: list[_Object | None] = []  # innermost last; None for an array

    @property
    def depth(self) -> int:
        """How many objects and arrays are open."""
        return len(self._containers)

    @property
    def value_key(self) -> str | None:
        """In an object, the key whose value is being read; None elsewhere."""
        top = self._containers[-1] if self._containers else None
        return top.key if top is not None and top.after_colon else None

    def keep_string(self) -> None:
        """Keep the characters of the string just started (keys are always kept)."""
        self._kept = []

    def last_string(self) -> str:
        """The value of the kept string that ended last."""
        raw = "".join(self._kept or ())
        try:
            return str(json.loads(f'"{raw}"'))
        except json.JSONDecodeError:
            return raw

    def feed(self, ch: str) -> Event:
        """Move past one character; what it was."""
        if self.in_string:
            if self._escaped:
                self._escaped = False
            elif ch == "\\":
                self._escaped = True
            elif ch == '"':
                self.in_string = False
                top = self._containers[-1] if self._containers else None
                if self.string_is_key and top is not None:
                    top.key = self.last_string()
                return "string_end"
            if self._kept is not None:
                self._kept.append(ch)
            return "string"
        if ch == '"':
            top = self._containers[-1] if self._containers else None
            self.in_string = True
            self.string_is_key = top is not None and not top.after_colon
            self._kept = [] if self.string_is_key else None
            return "string_start"
        if ch in "{[":
            self._containers.append(_Object() if ch == "{" else None)
            return "open"
        if ch in "}]":
            if self._containers:
                self._containers.pop()
            return "close"
        top = self._containers[-1] if self._containers else None
        if top is not None:
            if ch == ":":
                top.after_colon = True
            elif ch == ",":
                top.key, top.after_colon = None, False
        return "other"
