"""``bitnet convert``: save a checkpoint in the engine's kernel layout for fast loads."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .options import HEAD_CHOICES, LAYOUT_CHOICES, add_command, int32

DESCRIPTION = """\
Repack SOURCE's ternary weights and output head into the layout the CPU kernels read and
write them to OUT. Loading OUT then copies the weights instead of repacking them: well
under a second instead of seconds for a 2B model.

example:
  bitnet convert microsoft/bitnet-b1.58-2B-4T ./bitnet-2b-converted
  bitnet run -m ./bitnet-2b-converted "Hello"
"""


def add_parsers(sub: argparse._SubParsersAction[Any]) -> None:
    p = add_command(
        sub,
        "convert",
        "save a checkpoint in the engine's kernel layout (fast later loads)",
        DESCRIPTION,
    )
    add_convert_arguments(p)
    p.set_defaults(handler=convert)


def add_convert_arguments(p: argparse.ArgumentParser) -> None:
    """Every option of ``bitnet convert`` (one place, so output formats can join later)."""
    p.add_argument("source", metavar="SOURCE", help="checkpoint directory or Hugging Face hub id")
    p.add_argument(
        "output", metavar="OUT", help="directory to write (created if missing), or a .gguf file"
    )
    p.add_argument(
        "--lm-head",
        choices=HEAD_CHOICES,
        default="auto",
        help="storage of the output head; auto picks what a load on this CPU with the "
        "default thread count would (default: %(default)s)",
    )
    p.add_argument(
        "--layout",
        choices=LAYOUT_CHOICES,
        default="auto",
        help="ternary weight layout; auto picks this CPU's fastest (default: %(default)s)",
    )
    p.add_argument(
        "--threads",
        type=int32,
        metavar="N",
        default=1,
        help="threads for the repacking (default: %(default)s)",
    )
    p.add_argument(
        "--to",
        choices=("layout", "gguf"),
        default="layout",
        help="layout: a directory in the kernel layout; gguf: one GGUF file OUT for llama.cpp "
        "/ bitnet.cpp (default: %(default)s)",
    )
    p.add_argument(
        "--type",
        choices=gguf_types(),
        default="tq2_0",
        help="ternary tensor type of a GGUF file (default: %(default)s)",
    )
    p.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="no progress bars (default: bars when stderr is a terminal)",
    )


def gguf_types() -> tuple[str, ...]:
    from ..checkpoints.gguf_ternary import TERNARY_TYPES

    return tuple(TERNARY_TYPES)


def convert(args: argparse.Namespace) -> int:
    from ..checkpoints.hub import resolve_source
    from ..convert import convert as convert_checkpoint

    if args.to == "gguf":
        from ..gguf_export import export_gguf

        print(f"wrote {export_gguf(resolve_source(args.source), args.output, args.type)}")
        return 0

    out = convert_checkpoint(
        resolve_source(args.source),
        args.output,
        lm_head=args.lm_head,
        weight_layout=args.layout,
        n_threads=args.threads,
        progress=not args.quiet and sys.stderr.isatty(),
    )
    print(f"wrote {out}")
    return 0
