"""Token log-probabilities (``logprobs=N``): values, order, and every path that carries them."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from backends import BACKENDS, cpu_built
from oracle import LOOSE_MAX_REL_RMS, agreement, oracle_logits, prompt_ids
from results import uncached

import bitnet_backend as bb
from bitnet_backend import GenerationConfig, InvalidParameterError, TokenLogprob
from bitnet_backend.logprobs import token_logprob

# The cpu backend's float32 output head: the oracle's lm_head is not quantized.
EXACT_HEAD: dict[str, dict[str, Any]] = {"reference": {}, "cpu": {"lm_head": "f32"}}
GREEDY = {"temperature": 0.0}
PROMPT = "The teacher reads a good story"


@pytest.fixture(scope="module")
def ckpt(make_checkpoint) -> Path:
    return make_checkpoint()


@pytest.fixture(scope="module", params=BACKENDS)
def model(request, ckpt):
    with bb.load(ckpt, backend=request.param, n_threads=1, **EXACT_HEAD[request.param]) as m:
        yield m


def log_softmax(logits: np.ndarray) -> np.ndarray:
    x = np.asarray(logits, dtype=np.float64)
    peak = x.max(axis=-1, keepdims=True)
    return x - peak - np.log(np.exp(x - peak).sum(axis=-1, keepdims=True))


def test_logprobs_equal_the_oracle_log_softmax(model, ckpt):
    prompt = prompt_ids(model.vocab_size, 12, seed=5)
    c = model.generate(prompt, max_tokens=10, logprobs=5, **GREEDY)
    assert c.logprobs is not None and len(c.logprobs) == len(c.token_ids) >= 4
    # The oracle's distribution at each position that produced a generated token.
    positions = np.arange(len(prompt) - 1, len(prompt) - 1 + len(c.token_ids))
    want = log_softmax(oracle_logits(ckpt, prompt + c.token_ids)[positions])
    chosen = np.array([e.logprob for e in c.logprobs])
    want_chosen = want[np.arange(len(positions)), c.token_ids]
    assert agreement(chosen[:, None], want_chosen[:, None]).rel_rms <= LOOSE_MAX_REL_RMS
    top = np.array([[a.logprob for a in e.top_logprobs] for e in c.logprobs])
    want_top = -np.sort(-want, axis=1)[:, :5]
    assert agreement(top, want_top).rel_rms <= LOOSE_MAX_REL_RMS
    assert [e.top_logprobs[0].token_id for e in c.logprobs] == list(want.argmax(axis=1))


def test_logprobs_are_the_models_distribution_before_sampling_options(model):
    """Penalty, temperature and cuts shape the choice, not the reported figures: they equal
    the log-softmax of a fresh forward's logits over the same tokens."""
    prompt = model.tokenize(PROMPT)
    options = {"repeat_penalty": 2.0, "temperature": 0.7, "top_k": 5, "min_p": 0.2, "seed": 9}
    c = model.generate(prompt, max_tokens=10, logprobs=3, **options)
    assert c.logprobs is not None and c.token_ids
    positions = np.arange(len(prompt) - 1, len(prompt) - 1 + len(c.token_ids))
    want = log_softmax(model.logits(prompt + c.token_ids)[positions])
    got = [e.logprob for e in c.logprobs]
    # Within the float32 rounding of the normalising sum (logprobs.py).
    chosen = want[np.arange(len(positions)), c.token_ids]
    np.testing.assert_allclose(got, chosen, rtol=0, atol=1e-5)
    top = [[a.logprob for a in e.top_logprobs] for e in c.logprobs]
    np.testing.assert_allclose(top, -np.sort(-want, axis=1)[:, :3], rtol=0, atol=1e-5)


def test_alternatives_are_sorted_and_hold_the_greedy_choice(model):
    c = model.generate(PROMPT, max_tokens=8, logprobs=20, **GREEDY)
    assert c.logprobs is not None
    for tok, e in zip(c.token_ids, c.logprobs, strict=True):
        assert e.token_id == tok and len(e.top_logprobs) == 20
        values = [a.logprob for a in e.top_logprobs]
        assert values == sorted(values, reverse=True)
        assert e.top_logprobs[0].token_id == tok and e.top_logprobs[0].logprob == e.logprob
        assert len({a.token_id for a in e.top_logprobs}) == 20
        assert all(a.top_logprobs == () for a in e.top_logprobs)
        assert all(v <= 0.0 for v in values) and np.exp(values).sum() <= 1.0 + 1e-9


def test_sampled_tokens_report_their_own_logprob(model):
    c = model.generate(PROMPT, max_tokens=16, temperature=1.5, top_k=0, seed=3, logprobs=3)
    assert c.logprobs is not None
    for tok, e in zip(c.token_ids, c.logprobs, strict=True):
        assert e.token_id == tok and e.logprob <= e.top_logprobs[0].logprob
        listed = {a.token_id: a.logprob for a in e.top_logprobs}
        if tok in listed:
            assert listed[tok] == e.logprob


def test_entries_carry_the_token_text_and_bytes(model):
    c = model.generate(PROMPT, max_tokens=8, logprobs=0, **GREEDY)
    assert c.logprobs is not None
    table = model.tokenizer.token_bytes
    assert [e.bytes for e in c.logprobs] == [table[t] for t in c.token_ids]
    assert [e.token for e in c.logprobs] == [
        table[t].decode("utf-8", errors="replace") for t in c.token_ids
    ]
    assert all(e.top_logprobs == () for e in c.logprobs)


def test_nothing_is_reported_unless_asked(model):
    assert model.generate(PROMPT, max_tokens=4).logprobs is None
    assert all(c.logprobs is None for c in model.stream(PROMPT, max_tokens=4))
    assert model.chat([{"role": "user", "content": "Hi"}], max_tokens=4).logprobs is None


def test_streamed_chunks_carry_the_entries_of_their_tokens(model):
    options = {"max_tokens": 12, "temperature": 0.9, "seed": 11, "logprobs": 2}
    whole = model.generate(PROMPT, **options)
    chunks = list(model.stream(PROMPT, **options))
    assert all(
        c.logprobs is not None and [e.token_id for e in c.logprobs] == c.token_ids for c in chunks
    )
    assert [e for c in chunks for e in c.logprobs or []] == whole.logprobs


def test_chat_and_async_forms_report_the_same_entries(model):
    messages = [{"role": "user", "content": "Tell me a story"}]
    options = {"max_tokens": 10, "seed": 2, "logprobs": 4}
    reply = model.chat(messages, **options)
    assert reply.logprobs is not None
    assert [e.token_id for e in reply.logprobs] == reply.token_ids
    streamed = [e for c in model.stream_chat(messages, **options) for e in c.logprobs or []]
    assert streamed == reply.logprobs

    async def run() -> tuple[Any, list[TokenLogprob], Any]:
        areply = await model.achat(messages, **options)
        achunks = [e async for c in model.astream_chat(messages, **options) for e in c.logprobs]
        agen = await model.agenerate(PROMPT, **options)
        return areply, achunks, agen

    areply, achunks, agen = asyncio.run(run())
    assert areply.logprobs == reply.logprobs and achunks == reply.logprobs
    assert agen.logprobs == model.generate(PROMPT, **options).logprobs


def test_batched_requests_report_what_each_reports_alone(model):
    jobs = [
        {"prompt": PROMPT * (1 + i % 3), "max_tokens": 6 + i, "seed": i, "logprobs": i % 4}
        for i in range(6)
    ]
    alone = [uncached(model.generate(**job)) for job in jobs]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = [pool.submit(model.generate, **job) for job in jobs]
        together = [uncached(f.result(timeout=120)) for f in futures]
    assert together == alone
    options = {k: v for k, v in jobs[3].items() if k != "prompt"}
    batch = [uncached(c) for c in model.generate_batch([j["prompt"] for j in jobs], **options)]
    assert batch[3] == alone[3]


def test_constrained_tokens_report_the_model_distribution(model):
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    c = model.generate(PROMPT, max_tokens=12, json_schema=schema, logprobs=1, **GREEDY)
    assert c.logprobs is not None and len(c.logprobs) == len(c.token_ids)
    # Under the mask the chosen token need not be the model's likeliest one.
    assert all(e.logprob <= e.top_logprobs[0].logprob for e in c.logprobs)


@pytest.mark.parametrize("bad", [-1, 21, 2.5, True, "3"])
def test_bad_logprobs_are_named(model, bad):
    with pytest.raises(InvalidParameterError, match="logprobs"):
        model.generate(PROMPT, max_tokens=2, logprobs=bad)


def test_logprobs_is_per_call_only():
    with pytest.raises(InvalidParameterError, match="logprobs"):
        GenerationConfig(logprobs=3)


@pytest.mark.skipif(not cpu_built(), reason="bitnet_backend._engine is not built")
def test_a_quantized_head_reports_its_exact_top_logits_closely(ckpt):
    """The likeliest logits are recomputed in float32; only the normalising sum over the
    quantized tail differs from the float32 head's."""
    runs = {}
    for head in ("f32", "int8", "q4"):
        with bb.load(ckpt, backend="cpu", n_threads=1, lm_head=head) as m:
            runs[head] = m.generate(PROMPT, max_tokens=8, logprobs=5, **GREEDY)
    exact = runs.pop("f32")
    assert exact.logprobs is not None
    for c in runs.values():
        assert c.token_ids == exact.token_ids and c.logprobs is not None
        for e, x in zip(c.logprobs, exact.logprobs, strict=True):
            assert [a.token_id for a in e.top_logprobs] == [a.token_id for a in x.top_logprobs]
            assert abs(e.logprob - x.logprob) < 0.05


def test_equal_logits_are_listed_by_lower_id():
    logits = np.array([1.0, 3.0, 3.0, 0.5, 3.0, -2.0], dtype=np.float32)
    e = token_logprob(logits, 3, 4, None)
    assert [a.token_id for a in e.top_logprobs] == [1, 2, 4, 0]
    want = log_softmax(logits)
    np.testing.assert_allclose([a.logprob for a in e.top_logprobs], want[[1, 2, 4, 0]], atol=1e-6)
    assert (e.token_id, e.token, e.bytes) == (3, "", b"")
    assert abs(e.logprob - want[3]) < 1e-6
    whole = token_logprob(logits, 0, 20, None)  # more alternatives than tokens: all of them
    assert [a.token_id for a in whole.top_logprobs] == [1, 2, 4, 0, 3, 5]
    assert abs(np.exp([a.logprob for a in whole.top_logprobs]).sum() - 1.0) < 1e-6
