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
ROW_CAP = 32


def _up(n: int, to: int = 64) -> int:
    return (n + to - 1) // to * to


def _bound(config: Any, rows: int) -> int:
    """Scratch bytes a step of ``rows`` rows may hold on this shape.

    Per row: the residual stream, its normed copy and a [hidden] linear output; one region
    shared by q/k/v + attention output and then gate/up; the int32 accumulators of the widest
    linear; the int8 row. Besides: the attention scores of each thread over N_CTX keys, the
    RoPE cos / sin tables of N_CTX positions and the output head's accumulators. 128 bytes per
    row and 4 KiB cover the small per-row tables.
    """
    h, i = config.hidden_size, config.intermediate_size
    q = config.num_attention_heads * config.head_dim
    qkv = q + 2 * config.num_key_value_heads * config.head_dim
    per_row = 4 * (3 * h + max(qkv + q, 2 * i) + _up(max(2 * i, qkv))) + _up(max(i, 2 * h)) + 128
    group = config.num_attention_heads // config.num_key_value_heads
    scores = 4 * N_THREADS * group * N_CTX
    rope = 2 * 4 * N_CTX * (config.head_dim // 2)
    fixed = scores + rope + 4 * 2 * _up(config.vocab_size) + 4096
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


def test_longer_contexts_grow_the_scratch_by_their_scores_and_rope_rows(engine: Any) -> None:
    config = engine.config
    engine.new_session(N_CTX).eval([1, 2, 3])
    before = _scratch(engine)
    engine.new_session(2 * N_CTX).eval([1, 2, 3])
    group = config.num_attention_heads // config.num_key_value_heads
    per_position = 4 * N_THREADS * group + 2 * 4 * (config.head_dim // 2)
    assert _scratch(engine) - before == N_CTX * per_position


def test_logits_do_not_depend_on_how_the_rope_rows_grew(
    make_checkpoint: Callable[..., Path],
) -> None:
    from bitnet_backend.backends.cpu import BACKEND
    from bitnet_backend.checkpoints.hf import load_checkpoint

    path = make_checkpoint(shape="small", seed=5)
    prompt = [(7 * i) % 500 + 1 for i in range(300)]
    at_once = BACKEND.load(load_checkpoint(path), n_threads=N_THREADS).new_session(300)
    expected = at_once.eval(prompt, all_logits=True)

    stepwise = BACKEND.load(load_checkpoint(path), n_threads=N_THREADS)
    for n_ctx in (5, 40, 170):  # the tables grow three times before the long session runs
        stepwise.new_session(n_ctx).eval(prompt[:n_ctx])
    got = stepwise.new_session(300).eval(prompt, all_logits=True)
    assert got is not None and expected is not None
    assert (got == expected).all()
