"""The ``bitnet`` command: run a prompt, chat, benchmark, inspect, convert a model.

    bitnet run "What is the capital of France?" --model microsoft/bitnet-b1.58-2B-4T
    bitnet chat --model ./my-checkpoint --temperature 0.7
    bitnet bench -p 128 -n 64 --threads 1,2
    bitnet info ./my-checkpoint
    bitnet convert ./my-checkpoint ./my-checkpoint-fast
    bitnet serve --model ./my-checkpoint --port 8000
    bitnet plugins

Every error is one ``bitnet: error: <message>`` line on stderr and exit status 2; Ctrl-C
exits with 130. One module per command; each imports the engine only when it runs, so that
``--help`` is quick and Ctrl-C is handled from the first moment.
"""

from __future__ import annotations

# The console script imports this package before main() can catch Ctrl-C: while the
# modules import, Ctrl-C ends the process quietly with 130 instead of a traceback. The
# built-in _signal module is used because importing `signal` (and enum) takes time itself.
import _signal


def _exit_interrupted(signum: int, frame: object) -> None:
    raise SystemExit(130)


_guard_imports = _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler
if _guard_imports:
    try:
        _signal.signal(_signal.SIGINT, _exit_interrupted)
    except ValueError:  # imported outside the main thread: not the console script
        _guard_imports = False

import argparse  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402

from .. import __version__  # noqa: E402
from . import bench, chat, convert, info, run, serve  # noqa: E402
from .errors import (  # noqa: E402
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    caused_by_interrupt,
    error_message,
    report_error,
)
from .options import CommandParser, HelpFormatter  # noqa: E402

if _guard_imports:
    _signal.signal(_signal.SIGINT, _signal.default_int_handler)

__all__ = ["EXIT_INTERRUPTED", "EXIT_USAGE", "build_parser", "console_main", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``bitnet`` command."""
    parser = CommandParser(
        prog="bitnet",
        description="Run BitNet b1.58 models on the CPU.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"bitnet-backend {__version__}",
        help="print the version and exit",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in (run, chat, bench, info, convert, serve):
        command.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bitnet`` console script; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        return int(args.handler(args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`bitnet run ... | head`); silence the flush at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        if caused_by_interrupt(exc):
            return EXIT_INTERRUPTED
        if os.environ.get("BITNET_DEBUG"):
            raise
        return report_error(error_message(exc))


def console_main() -> int:
    """Entry point of the ``bitnet`` console script: :func:`main`, then a quiet exit.

    Once the command is done, Ctrl-C is ignored: Python restores the default action of
    SIGINT while it finalizes, so a Ctrl-C in that window would otherwise kill the process
    by signal 2 after it has printed its result, instead of it exiting with main's status.
    """
    status = EXIT_INTERRUPTED
    try:
        status = main()
    except KeyboardInterrupt:
        pass
    finally:
        try:
            _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
        except KeyboardInterrupt:  # arrived just before the line above
            _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
    return status
