"""``python -m bitnet_backend.testing``: write a random checkpoint of a named shape."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..architecture import FAMILIES
from ..checkpoints.gguf_ternary import TERNARY_TYPES
from ..errors import BitnetError
from .checkpoints import _ST_DTYPES, SHAPES, write_checkpoint, write_gguf


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m bitnet_backend.testing``."""
    parser = argparse.ArgumentParser(
        prog="python -m bitnet_backend.testing",
        description="Write a random BitNet b1.58 checkpoint in the Hugging Face format "
        "(random weights: for tests and benchmarks, its text is noise).",
    )
    parser.add_argument("out", type=Path, help="output directory")
    parser.add_argument(
        "--shape",
        choices=sorted(SHAPES),
        default="tiny",
        help="model dimensions; 2b-4t is those of microsoft/bitnet-b1.58-2B-4T "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--mode",
        choices=["offline", "online"],
        default="offline",
        help="offline: packed ternary weights with scales, as published checkpoints store "
        "them; online: float master weights quantized at load (default: %(default)s)",
    )
    parser.add_argument(
        "--linear-class",
        choices=["bitlinear", "autobitlinear"],
        default=None,
        help="quantization_config.linear_class written to config.json (default: autobitlinear)",
    )
    parser.add_argument(
        "--dtype",
        choices=sorted(_ST_DTYPES),
        default="bfloat16",
        help="type of the float tensors (default: %(default)s)",
    )
    parser.add_argument(
        "--family",
        choices=FAMILIES,
        default=None,
        help="model family whose on-disk format to write (default: bitnet-b1.58, or the "
        "shape's own family)",
    )
    parser.add_argument(
        "--shards",
        type=int,
        default=1,
        help="number of safetensors files, with an index when > 1 (default: %(default)s)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the random weights (default: %(default)s)"
    )
    parser.add_argument(
        "--gguf",
        choices=tuple(TERNARY_TYPES),
        default=None,
        help="write one GGUF file of this ternary type, OUT being the file (default: a "
        "Hugging Face directory)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config.json field (VALUE is JSON), e.g. --set num_hidden_layers=4; "
        "may be repeated (default: none)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write a random checkpoint (see ``--help``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    shape: str | dict[str, Any] = args.shape
    if args.set:
        overrides: dict[str, Any] = {"base": args.shape}
        for item in args.set:
            key, sep, value = item.partition("=")
            if not sep:
                parser.error(f"--set expects KEY=VALUE, got {item!r}")
            try:
                overrides[key] = json.loads(value)
            except json.JSONDecodeError:
                overrides[key] = value
        shape = overrides
    if args.gguf:
        try:
            out = write_gguf(
                args.out,
                ggml_type=args.gguf,
                shape=shape,
                mode=args.mode,
                linear_class=args.linear_class,
                seed=args.seed,
                dtype=args.dtype,
                family=args.family,
            )
        except (ValueError, BitnetError) as exc:
            parser.error(str(exc))
        print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
        return 0
    try:
        out = write_checkpoint(
            args.out,
            shape=shape,
            mode=args.mode,
            linear_class=args.linear_class,
            shards=args.shards,
            seed=args.seed,
            dtype=args.dtype,
            progress=sys.stderr.isatty(),
            family=args.family,
        )
    except ValueError as exc:
        parser.error(str(exc))
    total = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    print(f"wrote {out} ({total / 1e6:.1f} MB)")
    return 0
