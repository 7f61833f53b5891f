"""``bitnet chat``: an interactive conversation with a model."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from .errors import EXIT_INTERRUPTED
from .line_input import LineInput
from .options import add_command, generation_options, load_model, model_options, sampling_settings
from .report import explain_empty_reply, print_timings

if TYPE_CHECKING:
    from ..model import Model

DESCRIPTION = """\
Chat with a model. On a terminal: line editing and history (kept in the user's cache
directory), a line ending in a backslash continues on the next line, and a line of three
double quotes (\"\"\") starts and ends a multi-line message. Ctrl-C stops the reply being
written; at the prompt, Ctrl-C twice or Ctrl-D quits. Piped stdin is read one message per line.
"""

HELP = """\
commands:
  /reset   forget the conversation (the system message stays); /clear does the same
  /help    show this help
  /exit    quit (also /quit, Ctrl-D, or Ctrl-C twice at the prompt)
input:
  end a line with \\ to continue the message on the next line
  \"\"\" on a line of its own starts and ends a multi-line message
  Ctrl-C stops the reply being written"""


def add_parsers(sub: argparse._SubParsersAction[Any]) -> None:
    p = add_command(
        sub,
        "chat",
        "interactive chat (/exit or Ctrl-D ends it)",
        DESCRIPTION,
        (model_options(), generation_options()),
    )
    p.add_argument("--system", metavar="TEXT", help="system message (default: none)")
    p.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        help="print load time and, after each reply, its speed and time to first token on stderr",
    )
    p.set_defaults(handler=chat)


def banner(model: Model) -> str:
    info = model.info
    return (
        f"bitnet chat · model {model.source} ({info['architecture']}, "
        f"{info['parameters'] / 1e6:.1f}M parameters) · backend {info['backend']} · "
        f"ISA {info['kernel_isa']} · {info['threads']} threads\n"
        "Type /help for commands; Ctrl-C stops a reply, Ctrl-D or /exit quits."
    )


def chat(args: argparse.Namespace) -> int:
    settings = sampling_settings(args)
    interactive = sys.stdin.isatty()
    model, load_ms = load_model(args)
    with model:
        lines = LineInput(interactive)
        system = [{"role": "system", "content": args.system}] if args.system else []
        history: list[dict[str, str]] = list(system)
        if interactive:
            print(banner(model), file=sys.stderr)
        if args.verbose:
            print_timings(load_ms, None, None)
        try:
            while True:
                message = lines.read_message()
                if message is None:
                    return EXIT_INTERRUPTED if lines.interrupted else 0
                command = message.strip()
                if not command:
                    continue
                if command in ("/exit", "/quit"):
                    return 0
                if command in ("/reset", "/clear"):
                    history = list(system)
                    if interactive:
                        print("(conversation forgotten)", file=sys.stderr)
                    continue
                if command == "/help":
                    print(HELP, file=sys.stderr)
                    continue
                history.append({"role": "user", "content": message})
                history.append(reply(model, history, settings, args.verbose))
        finally:
            lines.close()


def reply(
    model: Model, history: list[dict[str, str]], settings: dict[str, Any], verbose: bool
) -> dict[str, str]:
    """Stream the model's reply to stdout; Ctrl-C ends it early. Returns the message."""
    parts: list[str] = []
    last: Any = None
    chunks: Any = None
    try:
        chunks = model.stream_chat(history, **settings)
        for chunk in chunks:
            if chunk.content:
                parts.append(chunk.content)
                sys.stdout.write(chunk.content)
                sys.stdout.flush()
            last = chunk
    except KeyboardInterrupt:
        if chunks is not None:
            chunks.close()  # hands the KV cache back: the next turn reuses the shared prefix
        sys.stdout.write("\n")
        print("(reply stopped)", file=sys.stderr)
        return {"role": "assistant", "content": "".join(parts)}
    sys.stdout.write("\n")
    sys.stdout.flush()
    finish = last.finish_reason if last is not None else None
    if not parts:
        explain_empty_reply(finish)
    if verbose:
        print_timings(None, last.timings if last is not None else None, finish)
    return {"role": "assistant", "content": "".join(parts)}
