"""A closed session answers every call with a typed error, the same on every backend."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from backends import BACKENDS

from bitnet_backend.backends.cpu import BACKEND as CPU
from bitnet_backend.backends.reference import BACKEND as REFERENCE
from bitnet_backend.checkpoints.hf import load_checkpoint
from bitnet_backend.errors import BitnetError
from bitnet_backend.sampling import SamplingParams

CALLS: dict[str, Callable[[Any, Any], object]] = {
    "eval": lambda s, other: s.eval([1, 2]),
    "eval_all": lambda s, other: s.eval([1, 2], all_logits=True),
    "hidden": lambda s, other: s.hidden([1, 2]),
    "last_logits": lambda s, other: s.last_logits(),
    "sample": lambda s, other: s.sample(SamplingParams(temperature=0.0)),
    "set_seed": lambda s, other: s.set_seed(3),
    "truncate": lambda s, other: s.truncate(0),
    "copy_prefix_into_closed": lambda s, other: s.copy_prefix(other, 1),
    "copy_prefix_from_closed": lambda s, other: other.copy_prefix(s, 1),
}


@pytest.fixture(scope="module")
def ckpt_dir(make_checkpoint: Callable[..., Path]) -> Path:
    return make_checkpoint(shape="tiny", seed=5)


def _closed_and_open(ckpt_dir: Path, backend: str) -> tuple[Any, Any]:
    plugin = CPU if backend == "cpu" else REFERENCE
    engine = plugin.load(load_checkpoint(ckpt_dir), n_threads=1)
    closed, live = engine.new_session(16), engine.new_session(16)
    closed.eval([1, 2, 3])
    live.eval([1, 2, 3])
    closed.close()
    return closed, live


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("call", sorted(CALLS))
def test_every_call_on_a_closed_session_raises_a_bitnet_error(
    ckpt_dir: Path, backend: str, call: str
) -> None:
    closed, live = _closed_and_open(ckpt_dir, backend)
    with pytest.raises(BitnetError):
        CALLS[call](closed, live)
    # The open session is untouched by the failed call.
    assert live.n_past == 3


@pytest.mark.parametrize("backend", BACKENDS)
def test_close_twice_is_harmless(ckpt_dir: Path, backend: str) -> None:
    closed, _ = _closed_and_open(ckpt_dir, backend)
    closed.close()
    with pytest.raises(BitnetError, match="closed"):
        closed.last_logits()


def test_closed_cpu_session_properties_raise_a_bitnet_error(ckpt_dir: Path) -> None:
    pytest.importorskip("bitnet_backend._engine")
    closed, _ = _closed_and_open(ckpt_dir, "cpu")
    for name in ("n_past", "n_ctx", "tokens"):
        with pytest.raises(BitnetError, match="the session is closed"):
            getattr(closed, name)
