"""``bitnet run``: answer one prompt, streaming the reply to stdout."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from .options import add_command, generation_options, load_model, model_options, sampling_settings
from .report import explain_empty_reply, print_timings

if TYPE_CHECKING:
    from ..model import Model

DESCRIPTION = """\
Answer PROMPT and stream the reply to stdout. A model with a default chat template gets PROMPT
as a user message (like llama-cli); --raw continues PROMPT as plain text instead.

examples:
  bitnet run "What is the capital of France?"
  bitnet run --raw "Once upon a time" --max-tokens 64
  echo "Summarise: ..." | bitnet run - --verbose
"""


def add_parsers(sub: argparse._SubParsersAction[Any]) -> None:
    p = add_command(
        sub,
        "run",
        "answer a prompt, streaming to stdout",
        DESCRIPTION,
        (model_options(), generation_options()),
    )
    p.add_argument("prompt", metavar="PROMPT", help="the prompt ('-' reads it from stdin)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--raw",
        action="store_true",
        help="plain completion of PROMPT, no chat template (default: the chat template when "
        "the model has a default one)",
    )
    mode.add_argument(
        "--chat",
        action="store_true",
        help="send PROMPT as a user chat message (the default when the model has a default chat "
        "template)",
    )
    p.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        help="print load time, prompt and generation speed and time to first token on stderr",
    )
    p.set_defaults(handler=run)


def read_prompt(arg: str) -> str:
    """PROMPT as given, or stdin for '-' (decoded strictly: bad bytes are an error)."""
    if arg != "-":
        return arg
    return sys.stdin.buffer.read().decode("utf-8")


def has_default_chat_template(model: Model) -> bool:
    """True when ``model.chat`` finds a template for a plain conversation (no tools, none
    chosen): the same choice as every chat call makes."""
    from ..chat_template import ChatTemplateError

    tokenizer = model.tokenizer
    if tokenizer is None:
        return False
    try:
        tokenizer.select_chat_template()
    except ChatTemplateError:
        return False
    return True


def run(args: argparse.Namespace) -> int:
    prompt = read_prompt(args.prompt)
    settings = sampling_settings(args)
    model, load_ms = load_model(args)
    with model:
        as_chat = args.chat or (not args.raw and has_default_chat_template(model))
        chunks: Any
        if as_chat:
            chunks = model.stream_chat([{"role": "user", "content": prompt}], **settings)
        else:
            chunks = model.stream(prompt, **settings)
        wrote_text = False
        last: Any = None
        for chunk in chunks:
            text = chunk.content if as_chat else chunk.text
            if text:
                sys.stdout.write(text)
                sys.stdout.flush()
                wrote_text = True
            last = chunk
        sys.stdout.write("\n")
        sys.stdout.flush()
        finish = last.finish_reason if last is not None else None
        if not wrote_text:
            explain_empty_reply(finish)
        if args.verbose:
            print_timings(load_ms, last.timings if last is not None else None, finish)
    return 0
