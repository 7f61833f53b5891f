"""Training state on disk, so an interrupted run can carry on where it stopped.

The state holds everything the next step depends on: the model and optimizer, the step to
run next, the tokens seen, the trained tokenizer and the options that shape the run. The data
stream is seeded, so it is rebuilt by drawing again the batches already used. Resuming with the
same options therefore gives the same files as an uninterrupted run.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

# Options that change what the run computes: a resumed run must use the same values.
RUN_OPTIONS = (
    "recipe",
    "seed",
    "steps",
    "batch",
    "lr",
    "warmup",
    "context_weight",
    "reply_loss",
    "retrieval_pairs",
    "retrieval_weight",
    "hidden",
    "ffn",
    "layers",
    "heads",
    "kv_heads",
    "threads",
    "precision",
    "flush_denormals",
    "compile",
)
FORMAT = "bitnet-backend training state 1"


class TrainingStateError(ValueError):
    """A training state file that cannot be resumed (corrupt, or from another run)."""


def run_options(args: argparse.Namespace) -> dict[str, Any]:
    return {name: getattr(args, name) for name in RUN_OPTIONS}


def save(path: Path, *, args: argparse.Namespace, **state: Any) -> None:
    """Write the state atomically: an interruption while saving keeps the previous file."""
    import torch

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": FORMAT, "options": run_options(args), **state}, tmp)
    os.replace(tmp, path)


def load(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The state saved at ``path``, checked against the options of this run."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise TrainingStateError(f"no training state at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for truncated or foreign files
        raise TrainingStateError(f"{path} is not a readable training state: {e}") from e
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise TrainingStateError(f"{path} is not a bitnet-backend training state")
    want = run_options(args)
    differ = {k: (v, want[k]) for k, v in state["options"].items() if want.get(k) != v}
    if differ:
        detail = ", ".join(f"--{k.replace('_', '-')} {a} (now {b})" for k, (a, b) in differ.items())
        raise TrainingStateError(f"{path} was saved by a run with other options: {detail}")
    if not 0 < state["step"] <= args.steps:
        raise TrainingStateError(f"{path} holds step {state['step']} of {args.steps}")
    return dict(state)
