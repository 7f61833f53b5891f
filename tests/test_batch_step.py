"""Batched steps: eval_batch, hidden_states_batch and copy_prefix give each sequence the bits
it gets alone, whatever else shares the step and however a prompt is cut into chunks."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from backends import BACKENDS, cpu_built

from bitnet_backend.backends.cpu import BACKEND as CPU
from bitnet_backend.backends.reference import BACKEND as REFERENCE
from bitnet_backend.checkpoints.hf import load_checkpoint
from bitnet_backend.errors import BitnetError, ContextOverflowError, InvalidParameterError
from bitnet_backend.sampling import SamplingParams

GREEDY = SamplingParams(temperature=0.0)


def _native_isa() -> str:
    from bitnet_backend.backends.cpu import resolve_choices

    return resolve_choices().isa


def _cpu_configs() -> list[Any]:
    """Engine options covering every ISA, head, layout, KV type and thread count (pairwise)."""
    if not cpu_built():
        return []
    native = _native_isa()
    rows = [
        ("ref", "f32", "i2_r16", "f32", 1),
        ("ref", "q4", "i1_r16", "bf16", 2),
        (native, "int8", "i1_r16", "bf16", 2),
        (native, "q6", "i2_r16", "bf16", 1),
        (native, "q4", "i2_r16", "f32", 2),
        (native, "f32", "i1_r16", "f32", 1),
        (native, "int8", "i2_r16", "f32", 1),
        (native, "q6", "i1_r16", "f32", 2),
    ]
    return [
        pytest.param(
            {"isa": i, "lm_head": h, "weight_layout": w, "kv_cache": kv, "n_threads": t},
            id=f"{i}-{h}-{w}-{kv}-{t}t",
        )
        for i, h, w, kv, t in rows
    ]


@pytest.fixture(scope="module")
def ckpt_dir(make_checkpoint: Callable[..., Path]) -> Path:
    return make_checkpoint(shape="tiny", seed=11)


def _load(path: Path, backend: str, **options: Any) -> Any:
    n_threads = options.pop("n_threads", 2)
    plugin = CPU if backend == "cpu" else REFERENCE
    return plugin.load(load_checkpoint(path), n_threads=n_threads, **options)


def _ids(rng: np.random.Generator, vocab: int, n: int) -> list[int]:
    return [int(t) for t in rng.integers(0, vocab, n)]


def _schedule(
    rng: np.random.Generator, vocab: int, n_seqs: int, n_steps: int, max_prompt: int
) -> list[list[tuple[int, list[int]]]]:
    """Steps of (sequence, new ids): sequences join at different steps with a prompt (whole
    or in chunks), then decode one token per step, and some skip steps."""
    steps: list[list[tuple[int, list[int]]]] = [[] for _ in range(n_steps)]
    for seq in range(n_seqs):
        start = int(rng.integers(0, max(1, n_steps // 2)))
        prompt = _ids(rng, vocab, int(rng.integers(1, max_prompt + 1)))
        chunk = int(rng.integers(1, len(prompt) + 1))
        step = start
        for at in range(0, len(prompt), chunk):
            if step < n_steps:
                steps[step].append((seq, prompt[at : at + chunk]))
            step += 1
        for later in range(step, n_steps):
            if rng.random() < 0.8:
                steps[later].append((seq, _ids(rng, vocab, 1)))
    return [s for s in steps if s]


def _run_and_compare(engine: Any, schedule: list[list[tuple[int, list[int]]]], n_ctx: int) -> None:
    """Runs the schedule batched and each sequence alone; every step's logits must match."""
    n_seqs = 1 + max(seq for step in schedule for seq, _ in step)
    batched = [engine.new_session(n_ctx) for _ in range(n_seqs)]
    alone = [engine.new_session(n_ctx) for _ in range(n_seqs)]
    for step in schedule:
        engine.eval_batch([(batched[seq], ids) for seq, ids in step])
        for seq, ids in step:
            alone[seq].eval(ids)
            np.testing.assert_array_equal(batched[seq].last_logits(), alone[seq].last_logits())
            assert batched[seq].n_past == alone[seq].n_past
            assert batched[seq].tokens == alone[seq].tokens


@pytest.mark.skipif(not cpu_built(), reason="bitnet_backend._engine is not built")
@pytest.mark.parametrize("options", _cpu_configs())
def test_batched_steps_give_each_sequence_its_bits_alone(ckpt_dir: Path, options: Any) -> None:
    engine = _load(ckpt_dir, "cpu", **dict(options))
    rng = np.random.default_rng(1)
    _run_and_compare(engine, _schedule(rng, engine.config.vocab_size, 6, 8, 40), 96)


@pytest.mark.skipif(not cpu_built(), reason="bitnet_backend._engine is not built")
@pytest.mark.parametrize("n_seqs", [1, 2, 3, 8, 16])
def test_one_to_sixteen_sequences_of_mixed_lengths(ckpt_dir: Path, n_seqs: int) -> None:
    engine = _load(ckpt_dir, "cpu", n_threads=2)
    rng = np.random.default_rng(n_seqs)
    # Up to 16 prompts of up to 60 tokens: steps of several hundred rows, cut within items.
    _run_and_compare(engine, _schedule(rng, engine.config.vocab_size, n_seqs, 10, 60), 128)


@pytest.mark.skipif(not cpu_built(), reason="bitnet_backend._engine is not built")
@pytest.mark.parametrize("lm_head", ["int8", "q6", "q4"])
def test_the_head_pass_shared_by_a_step_gives_each_row_its_bits(
    make_checkpoint: Callable[..., Path], lm_head: str
) -> None:
    # A vocabulary of many head chunks (each chunk serves every row of the step from cache),
    # and more rows with logits than one head pass takes (16).
    path = make_checkpoint(shape={"hidden_size": 128, "vocab_size": 20000}, seed=2)
    engine = _load(path, "cpu", lm_head=lm_head, n_threads=2)
    rng = np.random.default_rng(9)
    vocab = engine.config.vocab_size
    sessions = [engine.new_session(8) for _ in range(19)]
    alone = [engine.new_session(8) for _ in range(19)]
    steps = [[(i, _ids(rng, vocab, 1 + i % 3)) for i in range(19)], [(i, [7]) for i in range(19)]]
    for step in steps:
        engine.eval_batch([(sessions[i], ids) for i, ids in step])
        for i, ids in step:
            alone[i].eval(ids)
            np.testing.assert_array_equal(sessions[i].last_logits(), alone[i].last_logits())
    # Every position's logits of a prompt in one pass == one token at a time.
    prompt = _ids(rng, vocab, 20)
    s = engine.new_session(20)
    one_by_one = np.concatenate([s.eval([t], all_logits=True) for t in prompt])
    np.testing.assert_array_equal(engine.logits(prompt), one_by_one)


def test_reference_backend_runs_batches_as_a_loop(ckpt_dir: Path) -> None:
    engine = _load(ckpt_dir, "reference")
    rng = np.random.default_rng(3)
    _run_and_compare(engine, _schedule(rng, engine.config.vocab_size, 3, 4, 8), 32)


@pytest.mark.parametrize("backend", BACKENDS)
def test_batched_greedy_decode_equals_sequential_greedy_decode(
    ckpt_dir: Path, backend: str
) -> None:
    engine = _load(ckpt_dir, backend)
    rng = np.random.default_rng(4)
    vocab = engine.config.vocab_size
    n_seqs, n_new = (5, 12) if backend == "cpu" else (2, 4)
    prompts = [_ids(rng, vocab, int(rng.integers(1, 20))) for _ in range(n_seqs)]

    sequential = []
    for prompt in prompts:
        s = engine.new_session(64)
        s.eval(prompt)
        out = []
        for _ in range(n_new):
            out.append(s.sample(GREEDY))
            s.eval([out[-1]])
        sequential.append(out)

    sessions = [engine.new_session(64) for _ in prompts]
    engine.eval_batch(list(zip(sessions, prompts, strict=True)))
    batched: list[list[int]] = [[] for _ in prompts]
    for _ in range(n_new):
        for s, out in zip(sessions, batched, strict=True):
            out.append(s.sample(GREEDY))
        engine.eval_batch([(s, [out[-1]]) for s, out in zip(sessions, batched, strict=True)])
    assert batched == sequential


@pytest.mark.skipif(not cpu_built(), reason="bitnet_backend._engine is not built")
@pytest.mark.parametrize("kv_cache", ["f32", "bf16"])
def test_chunking_does_not_change_the_logits(ckpt_dir: Path, kv_cache: str) -> None:
    engine = _load(ckpt_dir, "cpu", kv_cache=kv_cache)
    rng = np.random.default_rng(5)
    vocab = engine.config.vocab_size
    # Longer than one step (64 rows): the engine also cuts inside the prompt.
    prompt = _ids(rng, vocab, 300)
    whole = engine.logits(prompt)
    for chunk in (1, 7, 64, 129, 300):
        s = engine.new_session(320)
        parts = [s.eval(prompt[i : i + chunk], all_logits=True) for i in range(0, 300, chunk)]
        np.testing.assert_array_equal(np.concatenate(parts), whole)
    # The same prompt in chunks through batched steps shared with other sequences.
    for chunk in (5, 50, 300):
        s = engine.new_session(320)
        other = engine.new_session(320)
        other.eval(_ids(rng, vocab, 3))
        for i in range(0, 300, chunk):
            engine.eval_batch([(other, _ids(rng, vocab, 1)), (s, prompt[i : i + chunk])])
        np.testing.assert_array_equal(s.last_logits(), whole[-1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_hidden_states_batch_equals_each_text_alone(ckpt_dir: Path, backend: str) -> None:
    engine = _load(ckpt_dir, backend)
    rng = np.random.default_rng(6)
    vocab = engine.config.vocab_size
    lengths = [1, 17, 150, 3, 40] if backend == "cpu" else [1, 9, 4]
    texts = [_ids(rng, vocab, n) for n in lengths]
    got = engine.hidden_states_batch(texts)
    assert len(got) == len(texts)
    for text, h in zip(texts, got, strict=True):
        np.testing.assert_array_equal(h, engine.hidden_states(text))
    assert engine.hidden_states_batch([]) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_copy_prefix_continues_like_a_session_that_evaluated_the_prefix(
    ckpt_dir: Path, backend: str
) -> None:
    engine = _load(ckpt_dir, backend)
    rng = np.random.default_rng(7)
    vocab = engine.config.vocab_size
    prefix, tail = _ids(rng, vocab, 20), _ids(rng, vocab, 6)
    src = engine.new_session(48)
    src.eval([*prefix, *_ids(rng, vocab, 5)])
    fresh = engine.new_session(40)
    fresh.eval(prefix)
    want_at_prefix = fresh.last_logits()
    fresh.eval(tail)

    # Into an empty session and into one holding other tokens; a smaller n_ctx is enough.
    used = engine.new_session(32)
    used.eval(_ids(rng, vocab, 9))
    for dst in (engine.new_session(30), used):
        dst.copy_prefix(src, 20)
        assert dst.n_past == 20 and dst.tokens == prefix
        dst.eval(tail)
        np.testing.assert_array_equal(dst.last_logits(), fresh.last_logits())

    # The whole of a session: its last logits come along, ready to sample.
    whole = engine.new_session(48)
    whole.copy_prefix(fresh, fresh.n_past)
    np.testing.assert_array_equal(whole.last_logits(), fresh.last_logits())
    assert whole.sample(GREEDY) == fresh.sample(GREEDY)
    # A prefix of itself is a truncation.
    src.copy_prefix(src, 20)
    src.eval(tail)
    np.testing.assert_array_equal(src.last_logits(), fresh.last_logits())
    # One cached prefix for several sessions evaluated in one batch.
    cached = engine.new_session(24)
    cached.eval(prefix)
    np.testing.assert_array_equal(cached.last_logits(), want_at_prefix)
    users = [engine.new_session(40) for _ in range(3)]
    for u in users:
        u.copy_prefix(cached, 20)
    engine.eval_batch([(u, tail) for u in users])
    for u in users:
        np.testing.assert_array_equal(u.last_logits(), fresh.last_logits())


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_copy_prefix_is_a_typed_error(ckpt_dir: Path, backend: str) -> None:
    engine = _load(ckpt_dir, backend)
    other_engine = _load(ckpt_dir, backend)
    src = engine.new_session(16)
    src.eval([1, 2, 3, 4])
    dst = engine.new_session(2)
    with pytest.raises(InvalidParameterError):
        dst.copy_prefix(src, 5)
    with pytest.raises(InvalidParameterError):
        dst.copy_prefix(src, -1)
    with pytest.raises(ContextOverflowError):
        dst.copy_prefix(src, 3)
    with pytest.raises(InvalidParameterError):
        other_engine.new_session(8).copy_prefix(src, 2)
    assert dst.n_past == 0


def _state(sessions: Sequence[Any]) -> list[tuple[int, list[int], bytes]]:
    return [(s.n_past, s.tokens, s.last_logits().tobytes()) for s in sessions]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_bad_item_fails_the_whole_batch_and_changes_no_session(
    ckpt_dir: Path, backend: str
) -> None:
    engine = _load(ckpt_dir, backend)
    vocab = engine.config.vocab_size
    a, b = engine.new_session(8), engine.new_session(8)
    a.eval([1, 2])
    b.eval([3])
    before = _state([a, b])
    foreign = _load(ckpt_dir, backend).new_session(8)
    closed = engine.new_session(8)
    closed.close()
    bad_batches: list[tuple[type[Exception], list[Any]]] = [
        (InvalidParameterError, [(a, [4]), (b, [vocab])]),
        (InvalidParameterError, [(a, [4]), (b, [-1])]),
        (InvalidParameterError, [(a, [4]), (b, [])]),
        (InvalidParameterError, [(a, [4]), (a, [5])]),
        (InvalidParameterError, [(a, [4]), (foreign, [5])]),
        (InvalidParameterError, [(a, [4]), (closed, [5])]),
        (InvalidParameterError, [(a, [4]), (b,)]),
        (ContextOverflowError, [(a, [4]), (b, [1] * 8)]),
    ]
    for error, batch in bad_batches:
        with pytest.raises(error):
            engine.eval_batch(batch)
        assert _state([a, b]) == before
    engine.eval_batch([])  # nothing to do
    assert _state([a, b]) == before
    with pytest.raises(InvalidParameterError):
        engine.hidden_states_batch([[1, 2], []])
    with pytest.raises(InvalidParameterError):
        engine.hidden_states_batch([[vocab]])
    engine.close()
    with pytest.raises(BitnetError):
        engine.eval_batch([(a, [4])])
    with pytest.raises(BitnetError):
        engine.hidden_states_batch([[1]])


@pytest.mark.skipif(not cpu_built(), reason="bitnet_backend._engine is not built")
def test_direct_forwards_from_other_threads_stay_exact_during_batched_steps(
    ckpt_dir: Path,
) -> None:
    engine = _load(ckpt_dir, "cpu")
    rng = np.random.default_rng(8)
    vocab = engine.config.vocab_size
    probe = _ids(rng, vocab, 9)
    want = engine.logits(probe)
    sessions = [engine.new_session(64) for _ in range(4)]
    got: list[np.ndarray] = []
    errors: list[BaseException] = []

    def probe_forwards() -> None:
        try:
            for _ in range(10):
                got.append(engine.logits(probe))
        except BaseException as exc:  # reported below
            errors.append(exc)

    worker = threading.Thread(target=probe_forwards)
    worker.start()
    for _ in range(20):
        engine.eval_batch([(s, _ids(rng, vocab, 2)) for s in sessions])
    worker.join(timeout=120)
    assert not worker.is_alive() and not errors
    assert len(got) == 10
    for logits in got:
        np.testing.assert_array_equal(logits, want)
