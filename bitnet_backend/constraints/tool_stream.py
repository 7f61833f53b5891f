"""Reading a reply made under a tool grammar as it is generated: text, or tool-call deltas."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from ..completion import FinishReason
from ..errors import BitnetError
from .json_scanner import JsonScanner


def new_call_id(seed: str | None = None, index: int = 0) -> str:
    """A tool call id: ``call_`` + 24 hex digits, random, or derived from ``seed`` and ``index``.

    The ids of a reply are part of the next prompt, so random ones would make the turn after
    a tool result differ from run to run even with greedy decoding. Derived from the prompt
    and the call's position, they are the same for the same conversation and differ between
    conversations (and between turns of one, since each turn's prompt holds the last).
    """
    # Imported here: hashlib loads OpenSSL's libcrypto (MBs of resident memory) into every
    # process that imports this package, and most never make a tool call.
    import hashlib
    import secrets

    if seed is None:
        return "call_" + secrets.token_hex(12)
    return "call_" + hashlib.sha256(f"{index}\x00{seed}".encode()).hexdigest()[:24]


@dataclass
class _CallScan:
    """What ToolCallStream has seen of one call object."""

    id: str
    name: str | None = None
    announced: bool = False
    pending_args: list[str] = field(default_factory=list)


class ToolCallStream:
    """Incremental reading of a reply made under a tool grammar: text, or call deltas.

    ``feed(text)`` returns the deltas that text completes: ``{"content": ...}`` for a plain
    reply, ``{"tool_calls": [...]}`` pieces for a call (id and name once the name is known,
    then the arguments' JSON text as it arrives). ``finish(finish_reason)`` gives the final
    message and finish_reason. Leading whitespace is held until the first other character
    says which kind of reply this is. Call ids come from ``new_call_id(id_seed, index)``.
    """

    def __init__(
        self, *, parallel: bool = False, names: Iterable[str] = (), id_seed: str | None = None
    ) -> None:
        self.parallel = parallel
        self.names = frozenset(names)
        self.id_seed = id_seed
        self.kind: Literal["undecided", "text", "call"] = "undecided"
        self._raw: list[str] = []
        self._lead = ""
        self._calls: list[_CallScan] = []
        self._json = JsonScanner()  # call replies only
        self._call_depth = 1  # 2 when the calls are the items of a list
        self._args_call: _CallScan | None = None  # the call whose arguments are being read

    def feed(self, text: str) -> list[dict[str, Any]]:
        """Deltas completed by ``text`` (the next piece of generated text)."""
        if not text:
            return []
        self._raw.append(text)
        if self.kind == "undecided":
            stripped = text.lstrip()
            if not stripped:
                self._lead += text
                return []
            if stripped[0] == "{" or (self.parallel and stripped[0] == "["):
                self.kind = "call"
                self._call_depth = 2 if stripped[0] == "[" else 1
                text = stripped
            else:
                self.kind = "text"
                text, self._lead = self._lead + text, ""
        if self.kind == "text":
            return [{"content": text}]
        return self._scan(text)

    def flush(self) -> str:
        """At the end: whitespace still held back (a reply of nothing else) as content."""
        if self.kind != "undecided":
            return ""
        self.kind = "text"
        held, self._lead = self._lead, ""
        return held

    @property
    def text(self) -> str:
        """Everything fed so far."""
        return "".join(self._raw)

    def _scan(self, text: str) -> list[dict[str, Any]]:
        # Pieces in arrival order: a call's head (id, name) once its name is known, then runs
        # of its arguments' JSON text; consecutive runs of one call merge into one delta.
        pieces: list[dict[str, Any]] = []

        def args_text(call: _CallScan, ch: str) -> None:
            if not call.announced:
                call.pending_args.append(ch)
                return
            index = self._calls.index(call)
            last = pieces[-1] if pieces else None
            if last is not None and last["index"] == index and "id" not in last:
                last["function"]["arguments"] += ch
            else:
                pieces.append({"index": index, "function": {"arguments": ch}})

        scan = self._json
        for ch in text:
            if self._args_call is not None:
                args_text(self._args_call, ch)  # inside the arguments value: all of it
            at_call_level = self._args_call is None and scan.depth == self._call_depth
            key = scan.value_key if at_call_level else None  # before ch moves the scanner
            event = scan.feed(ch)
            if event == "string_start" and key == "name":
                scan.keep_string()
            elif event == "string_end" and key == "name" and self._calls:
                self._announce(self._calls[-1], scan.last_string(), pieces)
            elif event == "open":
                if key == "arguments":
                    self._args_call = self._calls[-1]
                    args_text(self._args_call, ch)
                if ch == "{" and scan.depth == self._call_depth:
                    call_id = new_call_id(self.id_seed, len(self._calls))
                    self._calls.append(_CallScan(id=call_id))
            elif event == "close" and self._args_call and scan.depth == self._call_depth:
                self._args_call = None  # the arguments value ended
        return [{"tool_calls": [p]} for p in pieces]

    def _announce(self, call: _CallScan, name: str, pieces: list[dict[str, Any]]) -> None:
        """The head delta of ``call`` (id, name, the arguments' text seen so far)."""
        call.name = name
        call.announced = True
        pieces.append(
            {
                "index": self._calls.index(call),
                "id": call.id,
                "type": "function",
                "function": {"name": name, "arguments": "".join(call.pending_args)},
            }
        )
        call.pending_args = []

    def finish(self, finish_reason: FinishReason) -> tuple[dict[str, Any], FinishReason]:
        """The assistant message and the finish_reason ("tool_calls" when a call was made)."""
        text = self.text
        if self.kind != "call":
            return {"role": "assistant", "content": text}, finish_reason
        if finish_reason != "stop":
            # Cut short: not a call, and the partial JSON is not passed off as one.
            return {"role": "assistant", "content": text}, finish_reason
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BitnetError(f"constrained tool call output is not JSON: {exc}") from None
        items = payload if isinstance(payload, list) else [payload]
        calls = []
        for i, item in enumerate(items):
            name = item.get("name") if isinstance(item, dict) else None
            if self.names and name not in self.names:
                raise BitnetError(f"constrained tool call names an unknown tool {name!r}")
            call_id = self._calls[i].id if i < len(self._calls) else new_call_id(self.id_seed, i)
            calls.append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": item.get("arguments", {})},
                }
            )
        return {"role": "assistant", "content": None, "tool_calls": calls}, "tool_calls"
