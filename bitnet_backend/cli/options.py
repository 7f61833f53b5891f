"""Options shared by the commands: the model to load, generation settings, help layout."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from ..options import OPTION_SPECS, GenerationConfig
from .errors import EXIT_USAGE

if TYPE_CHECKING:
    from ..model import Model

HEAD_CHOICES = ("auto", "int8", "q6", "q4", "f32")
LAYOUT_CHOICES = ("auto", "i2_r16", "i1_r16")


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one ``bitnet: error: ...`` line."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"bitnet: error: {message} (see '{self.prog} --help')\n")


_MODEL_VALUE = "{model_value}"  # filled in with GenerationConfig's value when help is shown
FROM_MODEL = f"(default: the model's generation_config.json, else {_MODEL_VALUE})"


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples of a command's description as written; fills in the generation
    defaults (GenerationConfig's, which a model's generation_config.json may override)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help
        if text is not None and _MODEL_VALUE in text:
            default = getattr(GenerationConfig(), action.dest)
            text = text.replace(_MODEL_VALUE, str(default))
        return text


def add_command(
    sub: argparse._SubParsersAction[Any],
    name: str,
    summary: str,
    description: str,
    parents: tuple[argparse.ArgumentParser, ...] = (),
) -> argparse.ArgumentParser:
    """A subcommand parser with the shared help layout."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=summary,
        description=description,
        parents=list(parents),
        formatter_class=HelpFormatter,
    )
    return parser


def model_options(thread_counts: bool = False) -> argparse.ArgumentParser:
    """Options choosing and loading the model (every command that runs one).

    ``thread_counts``: --threads takes a comma-separated list (``bench``).
    """
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("model")
    g.add_argument(
        "--model",
        "-m",
        metavar="SOURCE",
        help="checkpoint directory or Hugging Face hub id (default: the small demo model "
        "embedded in the package)",
    )
    g.add_argument(
        "--backend",
        default="auto",
        metavar="NAME",
        help="backend to run on, see `bitnet plugins` (default: auto, the highest-priority "
        "available one)",
    )
    if thread_counts:
        g.add_argument(
            "--threads",
            type=counts,
            metavar="N[,N...]",
            help="thread counts to test, one load each (default: the physical cores this "
            "process may use)",
        )
    else:
        g.add_argument(
            "--threads",
            type=int32,
            metavar="N",
            help="worker threads (default: the physical cores this process may use, running on "
            "the calling thread alone while other programs make that faster; a given N is "
            "used as given)",
        )
    g.add_argument(
        "--ctx",
        type=int32,
        metavar="N",
        help="context window in tokens (default: the model's max_position_embeddings)",
    )
    g.add_argument(
        "--preset",
        choices=("quality", "speed", "memory"),
        help="cpu backend: weight layout, head and KV cache chosen together (default: quality)",
    )
    g.add_argument(
        "--lm-head",
        choices=HEAD_CHOICES,
        help="cpu backend: storage of the output head (default: auto, from the preset and CPU)",
    )
    g.add_argument(
        "--layout",
        choices=LAYOUT_CHOICES,
        help="cpu backend: ternary weight layout (default: auto, from the preset and CPU)",
    )
    g.add_argument(
        "--kv-cache",
        choices=("f32", "bf16"),
        help="cpu backend: KV cache element type (default: from the preset, f32 for quality)",
    )
    g.add_argument(
        "--exact-logits",
        type=int32,
        metavar="N",
        help="cpu backend: top logits per position recomputed in float32, 0 for none "
        "(default: the backend's choice)",
    )
    g.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="no progress bars (default: a bar on a terminal, and for large checkpoints)",
    )
    return p


INT32_MAX = 2**31 - 1


def int32(text: str) -> int:
    """An argparse type: an integer the engine can take (below 2**31)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not -INT32_MAX <= value <= INT32_MAX:
        raise argparse.ArgumentTypeError(f"expected an integer below 2**31, got {text}")
    return value


def counts(text: str) -> list[int]:
    """An argparse type: comma-separated non-negative integers."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected integers >= 0, got {text!r}")
    return values


_FLAG_TYPES: dict[str, Callable[[str], Any]] = {
    "float": float,
    "int32": int32,
    "int": int,
    "str": str,
}


def generation_options() -> argparse.ArgumentParser:
    """Sampling options of ``run`` and ``chat``, one flag per option that declares one
    (options.py); their defaults come from the model."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("generation")
    for name, spec in OPTION_SPECS.items():
        flag = spec.cli
        if flag is None:
            continue
        text = f"{flag.help} {FROM_MODEL}" if flag.model_default else flag.help
        g.add_argument(
            "--" + name.replace("_", "-"),
            type=_FLAG_TYPES[flag.type],
            action="append" if flag.repeated else "store",
            metavar=flag.metavar,
            help=text,
        )
    return p


def sampling_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The generation options given on the command line (the model's defaults fill the rest)."""
    return {
        name: getattr(args, name)
        for name, spec in OPTION_SPECS.items()
        if spec.cli is not None and getattr(args, name, None) is not None
    }


def progress_wanted(args: argparse.Namespace) -> bool | None:
    """Progress bars: off with --quiet, on a terminal always, else by checkpoint size."""
    if getattr(args, "quiet", False):
        return False
    return True if sys.stderr.isatty() else None


def load_model(
    args: argparse.Namespace, source: str | None = None, n_threads: int | None = None
) -> tuple[Model, float]:
    """Load the model the options name; returns it and the load time in milliseconds."""
    from ..model import load

    src = source if source is not None else args.model
    options: dict[str, Any] = {}
    for option, key in (
        ("preset", "preset"),
        ("lm_head", "lm_head"),
        ("layout", "weight_layout"),
        ("kv_cache", "kv_cache"),
        ("exact_logits", "exact_logits"),
    ):
        value = getattr(args, option, None)
        if value is not None:
            options[key] = value
    start = time.perf_counter()
    model = load(
        src,
        backend=args.backend,
        n_threads=n_threads if n_threads is not None else args.threads,
        n_ctx=args.ctx,
        progress=progress_wanted(args),
        **options,
    )
    return model, (time.perf_counter() - start) * 1e3
