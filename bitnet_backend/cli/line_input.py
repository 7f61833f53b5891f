"""Reading chat messages: line editing and history on a terminal, multi-line input."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from types import ModuleType

from ..user_cache import user_cache_dir

PROMPT = ">>> "
CONTINUATION = "... "
BLOCK = '"""'
HISTORY_LENGTH = 1000


def history_file() -> Path:
    """Where chat input history is kept: the user's cache directory (XDG_CACHE_HOME)."""
    return user_cache_dir() / "bitnet-backend" / "chat_history"


class LineInput:
    """Messages typed by the user (or piped in, one per line).

    A line ending in a backslash continues on the next line; a line holding only three
    double quotes opens a block that the next such line closes. On a terminal, readline
    gives line editing and a history that persists across sessions, and Ctrl-C at the
    prompt asks for a second Ctrl-C before quitting.
    """

    def __init__(self, interactive: bool) -> None:
        self.interactive = interactive
        self.interrupted = False  # the user quit with Ctrl-C
        self._readline = _readline() if interactive else None
        self._history = history_file()
        if self._readline is not None:
            self._readline.set_history_length(HISTORY_LENGTH)
            with contextlib.suppress(OSError):  # no history yet, or unreadable: start afresh
                self._readline.read_history_file(self._history)

    def read_message(self) -> str | None:
        """The next message; None at the end of input or when the user quits."""
        warned = False
        while True:
            try:
                return self._message()
            except EOFError:
                if self.interactive:
                    sys.stdout.write("\n")
                return None
            except KeyboardInterrupt:
                if not self.interactive or warned:
                    self.interrupted = True
                    sys.stdout.write("\n")
                    return None
                warned = True
                print("\n(Ctrl-C again, Ctrl-D or /exit quits)", file=sys.stderr)

    def close(self) -> None:
        """Save the history (a convenience: failing to write it is not an error)."""
        if self._readline is None:
            return
        try:
            self._history.parent.mkdir(parents=True, exist_ok=True)
            self._readline.write_history_file(self._history)
        except OSError:
            pass

    def _message(self) -> str:
        first = self._line(PROMPT)
        if first.strip() == BLOCK:
            lines: list[str] = []
            while True:
                try:
                    line = self._line(CONTINUATION)
                except EOFError:
                    break  # the end of input closes an open block
                if line.strip() == BLOCK:
                    break
                lines.append(line)
            return "\n".join(lines)
        lines = []
        line = first
        while line.endswith("\\"):
            lines.append(line[:-1])
            try:
                line = self._line(CONTINUATION)
            except EOFError:
                line = ""
                break
        lines.append(line)
        return "\n".join(lines)

    def _line(self, prompt: str) -> str:
        if self.interactive:
            return input(prompt)
        raw = sys.stdin.buffer.readline()  # decoded strictly: bad bytes are an error
        if not raw:
            raise EOFError
        return raw.decode("utf-8").rstrip("\r\n")


def _readline() -> ModuleType | None:
    try:
        import readline
    except ImportError:  # not every platform has it: plain input() still works
        return None
    return readline
