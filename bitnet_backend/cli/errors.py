"""How the ``bitnet`` command reports failures: one ``bitnet: error: ...`` line, status 2."""

from __future__ import annotations

import contextlib
import sys

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def caused_by_interrupt(exc: BaseException) -> bool:
    """Whether Ctrl-C is behind ``exc`` (numpy, for one, turns an import interrupted by
    Ctrl-C into an ImportError)."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def error_message(exc: BaseException) -> str:
    """One line saying what went wrong, for any exception a command may raise."""
    from ..errors import BitnetError

    if isinstance(exc, BitnetError):
        text = str(exc)
    elif isinstance(exc, UnicodeDecodeError):
        text = (
            f"the input is not valid {exc.encoding.upper()} text (byte {exc.start}: {exc.reason})"
        )
    elif isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    elif isinstance(exc, MemoryError):
        text = "out of memory"
    else:
        # Not a user error but a defect: name it; BITNET_DEBUG=1 shows the traceback.
        lines = str(exc).strip().splitlines()
        text = f"unexpected {type(exc).__name__}" + (f": {lines[0]}" if lines else "")
        text += " (set BITNET_DEBUG=1 for a traceback)"
    return " ".join(text.split())


def report_error(message: str) -> int:
    """Print ``message`` as the command's one error line; returns the exit status."""
    with contextlib.suppress(BrokenPipeError, ValueError):
        sys.stdout.flush()
    print(f"bitnet: error: {message}", file=sys.stderr)
    return EXIT_USAGE
