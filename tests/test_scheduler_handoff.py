"""Each scheduler step hands the GIL back and forth a fixed number of times, and wakes each
caller at most once: the engine calls and the hand-overs per step do not grow with the
number of sequences a step carries."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from backends import BACKENDS, cpu_built

import bitnet_backend as bb
from bitnet_backend.async_bridge import Channel
from bitnet_backend.errors import BitnetError, InvalidParameterError
from bitnet_backend.sampling import SamplingParams

PROMPTS = ["The teacher reads a good story", "Water boils at", "The cat sat on the", "1, 2, 3,"]


@pytest.fixture(scope="module")
def ckpt(make_checkpoint) -> Path:
    return make_checkpoint()


def stream_together(m: bb.Model, n_tokens: int) -> list[list[bb.CompletionChunk]]:
    """Every prompt streamed from its own thread at once: the chunks of each."""
    start = threading.Barrier(len(PROMPTS), timeout=60)

    def stream(prompt: str) -> list[bb.CompletionChunk]:
        start.wait()
        return list(m.stream(prompt, max_tokens=n_tokens, temperature=0.0))

    with ThreadPoolExecutor(max_workers=len(PROMPTS)) as pool:
        return [f.result(timeout=120) for f in [pool.submit(stream, p) for p in PROMPTS]]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_step_makes_two_engine_calls_however_many_sequences_it_carries(ckpt, backend):
    with bb.load(ckpt, backend=backend, n_threads=1, cache_prompt=False) as m:
        before = m.stats()
        stream_together(m, 12)
        after = m.stats()
    steps = after["steps"] - before["steps"]
    sampled = after["tokens_sampled"] - before["tokens_sampled"]
    assert after["max_sequences_per_step"] > 1
    assert sampled > steps  # steps carried several sequences: sampling one by one would
    # make more than two engine calls per step
    assert after["engine_calls"] - before["engine_calls"] <= 2 * steps


def test_each_caller_wakes_at_most_once_per_step(ckpt):
    with bb.load(ckpt, backend="reference", n_threads=1, cache_prompt=False) as m:
        before = m.stats()
        chunks = stream_together(m, 12)
        after = m.stats()
    wakeups = after["wakeups"] - before["wakeups"]
    sampled = after["tokens_sampled"] - before["tokens_sampled"]
    # Each request samples one token per step it is woken in; a step that ends a request
    # hands over its last text and the final chunk together.
    assert wakeups <= sampled
    assert sum(len(c) for c in chunks) > wakeups  # several chunks arrived in one hand-over


@pytest.mark.skipif(not cpu_built(), reason="bitnet_backend._engine is not built")
def test_sample_batch_equals_sampling_each_session_alone(ckpt):
    with bb.load(ckpt, backend="cpu", n_threads=1) as m:
        engine = m.engine
        options = [
            SamplingParams(temperature=0.0),
            SamplingParams(temperature=0.9, top_k=0, top_p=0.9, min_p=0.0),
            SamplingParams(temperature=1.2, top_k=5, repeat_penalty=1.3),
        ]

        def sessions() -> list:
            made = []
            for i, prompt in enumerate(PROMPTS[: len(options)]):
                s = engine.new_session(64)
                s.set_seed(7 + i)
                s.eval(m.tokenize(prompt))
                made.append(s)
            return made

        alone_sessions, batch_sessions = sessions(), sessions()
        alone = [
            [s.sample(p) for s, p in zip(alone_sessions, options, strict=True)] for _ in range(5)
        ]
        rows = [(s, p, None) for s, p in zip(batch_sessions, options, strict=True)]
        batched = [engine.sample_batch(rows) for _ in range(5)]
        assert batched == alone


@pytest.mark.skipif(not cpu_built(), reason="bitnet_backend._engine is not built")
def test_sample_batch_fails_a_bad_row_alone(ckpt):
    with bb.load(ckpt, backend="cpu", n_threads=1) as m:
        engine = m.engine
        greedy = SamplingParams(temperature=0.0)
        sessions = []
        for prompt in PROMPTS[:3]:
            s = engine.new_session(64)
            s.eval(m.tokenize(prompt))
            sessions.append(s)
        nothing_allowed = np.zeros((m.vocab_size + 31) // 32, dtype=np.uint32)
        rows = [(sessions[0], greedy, None), (sessions[1], greedy, nothing_allowed)]
        rows.append((sessions[2], greedy, np.zeros(1, dtype=np.uint32)))  # too short
        first, no_token, short = engine.sample_batch(rows)
        assert first == sessions[0].sample(greedy)
        assert isinstance(no_token, InvalidParameterError) and "allows no token" in str(no_token)
        assert isinstance(short, InvalidParameterError) and "shorter" in str(short)
        sessions[2].close()
        with pytest.raises(InvalidParameterError, match="open sessions"):
            engine.sample_batch([(sessions[0], greedy, None), (sessions[2], greedy, None)])


def test_a_channel_hands_over_several_items_then_its_error():
    channel: Channel[int] = Channel()
    assert channel.put_many([1, 2])
    channel.fail(BitnetError("gone"))
    assert channel.put_many([3])  # after the error: ignored
    assert [channel.get(), channel.get()] == [1, 2]
    for _ in range(2):  # every later take raises the error again
        with pytest.raises(BitnetError, match="gone"):
            channel.get()


def test_an_awaiting_consumer_is_woken_by_a_producer_thread():
    channel: Channel[str] = Channel()

    async def main() -> list[str]:
        producer = threading.Timer(0.01, lambda: channel.put_many(["a", "b"]))
        producer.start()
        try:
            return [await asyncio.wait_for(channel.aget(), 30), await channel.aget()]
        finally:
            producer.join(30)

    assert asyncio.run(main()) == ["a", "b"]
