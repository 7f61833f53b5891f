"""Concurrent requests share forward steps and get exactly what each would get alone."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from backends import BACKENDS, cpu_built
from results import uncached

import bitnet_backend as bb
from bitnet_backend.model import DEFAULT_MODEL_DIR

GREEDY = {"temperature": 0.0}
PROMPTS = [
    "The teacher reads a good story",
    "Water boils at",
    "Once upon a time, in a small village by the sea, there lived an old fisherman who",
    "Please remember to",
    "The cat sat on the",
    "1, 2, 3,",
]
SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 12}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"enum": ["Paris", "Rome", "Oslo"]}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}

POISON = "Zebras quietly juggle wax"

Job = Callable[[bb.Model], Any]


def mixed_jobs(n: int) -> list[Job]:
    """``n`` requests of mixed prompt lengths and options: free text greedy and sampled,
    stop strings, json_schema and tool calls."""
    jobs: list[Job] = []
    for i in range(n):
        prompt = PROMPTS[i % len(PROMPTS)] * (1 + i % 3)
        kind = i % 5
        if kind == 0:
            jobs.append(lambda m, p=prompt, i=i: m.generate(p, max_tokens=6 + i, **GREEDY))
        elif kind == 1:
            jobs.append(
                lambda m, p=prompt, i=i: m.generate(p, max_tokens=12, temperature=0.9, seed=i)
            )
        elif kind == 2:
            jobs.append(
                lambda m, p=prompt, i=i: m.generate(p, max_tokens=24, seed=i, stop=["e", "."])
            )
        elif kind == 3:
            jobs.append(
                lambda m, p=prompt, i=i: m.generate(p, max_tokens=40, seed=i, json_schema=SCHEMA)
            )
        else:
            messages = [{"role": "user", "content": f"{prompt} What is the weather in Rome?"}]
            jobs.append(
                lambda m, msgs=messages, i=i: m.chat(
                    msgs, tools=[WEATHER], tool_choice="required", max_tokens=40, seed=i
                )
            )
    return jobs


def run_concurrently(model: bb.Model, jobs: list[Job]) -> list[Any]:
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        return [f.result(timeout=120) for f in [pool.submit(job, model) for job in jobs]]


@pytest.fixture(scope="module")
def ckpt(make_checkpoint) -> Path:
    return make_checkpoint()


@pytest.fixture(scope="module", params=BACKENDS)
def model(request, ckpt):
    with bb.load(ckpt, backend=request.param, n_threads=1) as m:
        yield m


@pytest.fixture(scope="module")
def default_model():
    if not cpu_built():
        pytest.skip("bitnet_backend._engine is not built")
    with bb.load(DEFAULT_MODEL_DIR, backend="cpu", n_threads=2, max_batch=16) as m:
        yield m


@pytest.mark.parametrize("n", [1, 5, 16])
def test_concurrent_requests_equal_each_request_alone(default_model, n):
    jobs = mixed_jobs(n)
    alone = [uncached(job(default_model)) for job in jobs]
    before = default_model.stats()
    together = [uncached(r) for r in run_concurrently(default_model, jobs)]
    assert together == alone
    after = default_model.stats()
    if n > 1:
        assert after["batched_steps"] > before["batched_steps"]
        assert after["max_sequences_per_step"] > 1
    assert (after["active"], after["queued"]) == (0, 0)


def test_both_backends_batch_mixed_requests_identically(model):
    jobs = mixed_jobs(5)
    alone = [uncached(job(model)) for job in jobs]
    assert [uncached(r) for r in run_concurrently(model, jobs)] == alone


def test_json_schema_and_tool_results_are_valid_in_shared_steps(default_model):
    results = run_concurrently(default_model, mixed_jobs(10))
    for r in results[3::5]:
        if r.finish_reason == "stop":  # else the JSON is cut short by max_tokens
            assert set(json.loads(r.text)) == {"name", "age"}
    assert any(r.finish_reason == "stop" for r in results[2::5])  # a stop string matched
    for r in results[4::5]:
        assert r.finish_reason == "tool_calls"
        assert r.tool_calls[0]["function"]["name"] == "get_weather"


def test_generate_batch_returns_results_in_order(model):
    prompts = [PROMPTS[0], PROMPTS[2], PROMPTS[1]]
    expected = [uncached(model.generate(p, max_tokens=5, **GREEDY)) for p in prompts]
    assert [uncached(c) for c in model.generate_batch(prompts, max_tokens=5, **GREEDY)] == expected
    assert model.generate_batch([]) == []
    with pytest.raises(bb.InvalidParameterError):
        model.generate_batch("not a list of prompts")
    with pytest.raises(TypeError, match="no_such_option"):
        model.generate_batch(prompts, no_such_option=1)
    with pytest.raises(bb.InvalidParameterError):
        model.generate_batch([PROMPTS[0], []], max_tokens=2)  # checked before any is queued


def test_async_batches_equal_the_sync_ones(model):
    conversations = [[{"role": "user", "content": p}] for p in PROMPTS[:3]]

    async def main() -> tuple[list[bb.Completion], list[bb.ChatCompletion]]:
        c = await model.agenerate_batch(PROMPTS[:3], max_tokens=5, **GREEDY)
        r = await model.achat_batch(conversations, max_tokens=5, **GREEDY)
        return c, r

    completions, replies = asyncio.run(main())
    sync_completions = model.generate_batch(PROMPTS[:3], max_tokens=5, **GREEDY)
    sync_replies = model.chat_batch(conversations, max_tokens=5, **GREEDY)
    assert [uncached(c) for c in completions] == [uncached(c) for c in sync_completions]
    assert [uncached(r) for r in replies] == [uncached(r) for r in sync_replies]


def test_leaving_a_stream_frees_its_slot_for_the_next_request(ckpt):
    if not cpu_built():
        pytest.skip("bitnet_backend._engine is not built")
    with bb.load(ckpt, backend="cpu", n_threads=1, max_batch=1, n_ctx=2048) as m:
        expected = uncached(m.generate(PROMPTS[1], max_tokens=8, **GREEDY))
        # Greedy text of the random test weights never ends before the context is full.
        long = m.stream(PROMPTS[0], max_tokens=-1, **GREEDY)
        next(long)
        result: list[bb.Completion] = []
        waiter = threading.Thread(
            target=lambda: result.append(m.generate(PROMPTS[1], max_tokens=8, **GREEDY))
        )
        waiter.start()
        _wait_for(lambda: m.stats()["queued"] == 1)
        assert not result, "the second request waits while the only slot is taken"
        long.close()
        waiter.join(timeout=60)
        assert [uncached(c) for c in result] == [expected]
        assert (m.stats()["active"], m.stats()["queued"]) == (0, 0)


def test_breaking_out_of_a_stream_leaves_the_others_going(default_model):
    expected = [uncached(default_model.generate(p, max_tokens=20, **GREEDY)) for p in PROMPTS]
    streams = [default_model.stream(p, max_tokens=20, **GREEDY) for p in PROMPTS]
    firsts = [next(s) for s in streams]
    streams[0].close()
    streams[3].close()
    for i, (s, first) in enumerate(zip(streams, firsts, strict=True)):
        if i in (0, 3):
            continue
        chunks = [first, *s]
        text = "".join(c.text for c in chunks)
        assert text == expected[i].text
        assert chunks[-1].finish_reason == expected[i].finish_reason


@pytest.fixture(scope="module")
def nan_ckpt(tmp_path_factory, make_checkpoint) -> tuple[Path, int]:
    """A checkpoint whose embedding row of one token is NaN: a prompt with it gives NaN logits
    (other prompts never touch the row)."""
    import shutil

    from safetensors.numpy import load_file, save_file

    d = tmp_path_factory.mktemp("nan") / "model"
    # Untied: with a tied head the NaN row would also be a logit of every prompt.
    untied = {"base": "tiny", "tie_word_embeddings": False}
    shutil.copytree(make_checkpoint(dtype="float32", shape=untied), d)
    tensors = load_file(d / "model.safetensors")
    with bb.load(d, backend="reference") as m:
        used = {t for p in PROMPTS for t in m.tokenize(p)}
        poisoned = next(t for t in m.tokenize(POISON, add_special=False) if t not in used)
    tensors["model.embed_tokens.weight"][poisoned] = np.nan
    save_file(tensors, str(d / "model.safetensors"), metadata={"format": "pt"})
    return d, poisoned


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_failing_request_leaves_the_others_intact(nan_ckpt, backend):
    path, _ = nan_ckpt
    # verify=False: the load-time scan would refuse the poisoned table before any request.
    with bb.load(path, backend=backend, n_threads=1, verify=False) as m:
        alone = [uncached(m.generate(p, max_tokens=6, **GREEDY)) for p in PROMPTS[:4]]

        def poisoned() -> bb.Completion:
            return m.generate(POISON, max_tokens=6, temperature=1.0, seed=1)

        with pytest.raises(bb.BitnetError):
            poisoned()
        jobs: list[Job] = [
            lambda m, p=p: m.generate(p, max_tokens=6, **GREEDY) for p in PROMPTS[:4]
        ]
        with ThreadPoolExecutor(max_workers=5) as pool:
            bad = pool.submit(poisoned)
            good = [pool.submit(job, m) for job in jobs]
            with pytest.raises(bb.BitnetError):
                bad.result(timeout=120)
            assert [uncached(f.result(timeout=120)) for f in good] == alone
        assert uncached(m.generate(PROMPTS[0], max_tokens=6, **GREEDY)) == alone[0]


def test_embed_of_several_texts_equals_each_alone(model):
    texts = [PROMPTS[0], PROMPTS[2], "x", PROMPTS[4]]
    together = model.embed(texts)
    for row, text in enumerate(texts):
        h = model.engine.hidden_states(model.tokenize(text)).mean(axis=0, dtype=np.float64)
        np.testing.assert_allclose(together[row], h / np.linalg.norm(h), rtol=1e-5, atol=1e-6)
    with ThreadPoolExecutor(max_workers=3) as pool:
        rows = list(pool.map(model.embed, [texts[:2], texts[2:], texts]))
    np.testing.assert_array_equal(np.concatenate(rows[:2]), together)
    np.testing.assert_array_equal(rows[2], together)


def _wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll ``condition`` (bounded); fail the test when it never holds."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)
