"""The batched step's scratch memory (the cpu engine's ``info["scratch_bytes"]``): sized by the
largest step run so far, within a bound derived from the model's shape, never growing with
the number of steps or past the step's row cap."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from backends import cpu_built

pytestmark = pytest.mark.skipif(not cpu_built(), reason="bitnet_backend._engine is not built")

N_CTX = 512
N_THREADS = 2
# The most rows one step runs (kMaxStepRows, csrc/engine/batch.h): an upper bound here.
ROW_CAP = 64


def _up(n: int, to: int = 64) -> int:
    return (n + to - 1) // to * to


def _bound(config: Any, rows: int) -> int:
    """Scratch bytes a step of ``rows`` rows may hold on this shape.

    Per row: the residual stream, its normed copy and a [hidden] linear output; one region
    shared by q/k/v + attention output and then gate/up; the int32 accumulators of the widest
    linear; the int8 row. Besides: the attention scores of each thread over N_CTX keys and the
    output head's accumulators. 128 bytes per row and 4 KiB cover the small per-row tables.
    """
    h, i = config.hidden_size, config.intermediate_size
    q = config.num_attention_heads * config.head_dim
    qkv = q + 2 * config.num_key_value_heads * config.head_dim
    per_row = 4 * (3 * h + max(qkv + q, 2 * i) + _up(max(2 * i, qkv))) + _up(max(i, 2 * h)) + 128
    group = config.num_attention_heads // config.num_key_value_heads
    fixed = 4 * N_THREADS * group * N_CTX + 4 * 2 * _up(config.vocab_size) + 4096
    return rows * per_row + fixed


@pytest.fixture(scope="module")
def engine(make_checkpoint: Callable[..., Path]) -> Any:
    from bitnet_backend.backends.cpu import BACKEND
    from bitnet_backend.checkpoints.hf import load_checkpoint

    checkpoint = load_checkpoint(make_checkpoint(shape="small", seed=5))
    return BACKEND.load(checkpoint, n_threads=N_THREADS)


def _scratch(engine: Any) -> int:
    return int(engine.info["scratch_bytes"])


def test_scratch_grows_with_the_widest_step_only(engine: Any) -> None:
    config = engine.config
    assert _scratch(engine) == 0  # no step has run

    one = engine.new_session(N_CTX)
    one.eval([1])
    single = _scratch(engine)
    assert 0 < single <= _bound(config, 1)
    for token in range(2, 40):  # decode: one row per step, no growth
        one.eval([token])
    assert _scratch(engine) == single

    batch = [engine.new_session(N_CTX) for _ in range(8)]
    for token in range(1, 20):  # eight rows per step
        engine.eval_batch([(s, [token]) for s in batch])
    eight = _scratch(engine)
    assert single < eight <= _bound(config, 8)

    # A prompt longer than the row cap runs as several steps of at most ROW_CAP rows.
    engine.new_session(N_CTX).eval(list(range(1, 3 * ROW_CAP)))
    capped = _scratch(engine)
    assert eight < capped <= _bound(config, ROW_CAP)
    engine.new_session(N_CTX).eval(list(range(1, N_CTX)))
    engine.eval_batch([(engine.new_session(N_CTX), list(range(1, 2 * ROW_CAP))) for _ in range(4)])
    assert _scratch(engine) == capped
