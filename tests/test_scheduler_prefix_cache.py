"""The prefix cache: reused KV caches give the same logits and text as a cold run."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from backends import BACKENDS
from results import uncached

import bitnet_backend as bb
from bitnet_backend import engine_ops
from bitnet_backend.prefix_cache import PrefixCache

GREEDY = {"temperature": 0.0}
SYSTEM = {"role": "system", "content": "You are a careful assistant. Answer in one sentence."}


@pytest.fixture(scope="module")
def ckpt(make_checkpoint) -> Path:
    return make_checkpoint()


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request) -> str:
    return str(request.param)


def test_a_cached_prefix_gives_the_logits_of_a_cold_run(ckpt, backend):
    with bb.load(ckpt, backend=backend, n_threads=1) as m:
        engine = m.engine
        shared = m.tokenize("The teacher reads a good story to the children")
        first = [*shared, *m.tokenize("about a cat", add_special=False)]
        second = [*shared, *m.tokenize("and then they sing", add_special=False)]
        cache = PrefixCache(engine, capacity=256)
        done = engine.new_session(64)
        done.eval(first)
        cache.store(done)

        warm, reused = cache.session_for(second, 64)
        assert reused == len(shared) and warm.n_past == len(shared)
        warm.eval(second[reused:])
        cold = engine.new_session(64)
        cold.eval(second)
        np.testing.assert_array_equal(warm.last_logits(), cold.last_logits())
        assert (cache.hits, cache.reused_tokens) == (1, len(shared))
        # The same prompt again: all but its last token come from the cache.
        cache.store(warm)
        again, reused = cache.session_for(second, 64)
        assert reused == len(second) - 1
        again.eval(second[reused:])
        np.testing.assert_array_equal(again.last_logits(), cold.last_logits())
        for s in (again, cold):
            s.close()
        cache.clear()


def test_the_cache_stays_within_its_capacity(ckpt):
    with bb.load(ckpt, backend="reference") as m:
        cache = PrefixCache(m.engine, capacity=100)
        for word in ("alpha", "beta", "gamma"):
            s = m.engine.new_session(40)
            s.eval(m.tokenize(word, add_special=False))
            cache.store(s)
            assert cache.positions <= 100
        assert cache.positions == 80  # the two most recent
        big = m.engine.new_session(101)
        big.eval(m.tokenize("delta", add_special=False))
        cache.store(big)  # larger than the whole cache: not kept
        assert cache.positions == 80
        _, reused = cache.session_for(m.tokenize("alpha and more", add_special=False), 40)
        assert reused == 0  # the oldest was evicted
        cache.clear()
        assert cache.positions == 0


def test_chats_sharing_a_system_prompt_report_cached_tokens(ckpt, backend):
    turns = [[SYSTEM, {"role": "user", "content": q}] for q in ("Hello?", "Who are you?", "Why?")]
    with bb.load(ckpt, backend=backend, n_threads=1, cache_prompt=False) as cold:
        expected = [cold.chat(t, max_tokens=6, **GREEDY) for t in turns]
        assert all(r.usage["prompt_tokens_details"]["cached_tokens"] == 0 for r in expected)
        assert cold.stats()["prefix_cache_hits"] == 0
    with bb.load(ckpt, backend=backend, n_threads=1) as warm:
        replies = [warm.chat(t, max_tokens=6, **GREEDY) for t in turns]
        assert [uncached(r) for r in replies] == [uncached(r) for r in expected]
        cached = [r.usage["prompt_tokens_details"]["cached_tokens"] for r in replies]
        system_tokens = len(warm.tokenize(warm.apply_chat_template([SYSTEM]), add_special=False))
        assert cached[0] == 0
        assert all(c >= system_tokens - 1 for c in cached[1:])
        stats = warm.stats()
        assert stats["prefix_cache_hits"] >= 2
        assert stats["prefix_cache_tokens"] == sum(cached)


def test_concurrent_requests_with_one_system_prompt_match_cold_runs(ckpt, backend):
    turns = [[SYSTEM, {"role": "user", "content": f"Question {i}?"}] for i in range(6)]
    with bb.load(ckpt, backend=backend, n_threads=1, cache_prompt=False) as cold:
        expected = [uncached(cold.chat(t, max_tokens=5, **GREEDY)) for t in turns]
    with bb.load(ckpt, backend=backend, n_threads=1) as warm:
        warm.chat(turns[0], max_tokens=5, **GREEDY)  # leaves the system prompt in the cache
        with ThreadPoolExecutor(max_workers=6) as pool:
            futures = [pool.submit(warm.chat, t, max_tokens=5, **GREEDY) for t in turns]
            assert [uncached(f.result(timeout=120)) for f in futures] == expected
        assert warm.stats()["prefix_cache_hits"] >= 1


def test_concurrent_requests_copy_one_cached_prefix(ckpt, backend):
    with bb.load(ckpt, backend=backend, n_threads=1) as m:
        probe = m.engine.new_session(4)
        if not engine_ops.copies_prefixes(probe):
            pytest.skip(f"the {backend} backend does not copy prefixes natively")
        probe.close()
        turns = [[SYSTEM, {"role": "user", "content": f"Question {i}?"}] for i in range(4)]
        warm = m.chat([SYSTEM, {"role": "user", "content": "Hi"}], max_tokens=2, **GREEDY)
        hits = m.stats()["prefix_cache_hits"]
        with ThreadPoolExecutor(max_workers=4) as pool:
            replies = list(pool.map(lambda t: m.chat(t, max_tokens=4, **GREEDY), turns))
        system = m.apply_chat_template([SYSTEM], add_generation_prompt=False)
        system_tokens = len(m.tokenize(system, add_special=False))
        # Every request starts from the cached system prompt: the entry is copied, not taken.
        assert warm.usage["prompt_tokens"] > system_tokens
        assert m.stats()["prefix_cache_hits"] == hits + len(turns)
        for r in replies:
            assert r.usage["prompt_tokens_details"]["cached_tokens"] >= system_tokens
