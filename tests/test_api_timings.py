"""Completions carry the timings of their call: prompt, generation, time to first token."""

from __future__ import annotations

import asyncio

import pytest

import bitnet_backend as bb
from bitnet_backend.completion import Timings


@pytest.fixture(scope="module")
def model():
    # Without the prompt cache every call evaluates its whole prompt.
    with bb.load(cache_prompt=False) as m:
        yield m


def _check(t: Timings | None, prompt_tokens: int, generated: int) -> None:
    assert t is not None
    assert (t.prompt_tokens, t.generated_tokens) == (prompt_tokens, generated)
    assert t.prompt_ms > 0 and t.generation_ms > 0
    assert t.prompt_ms <= t.ttft_ms
    assert t.prompt_tokens_per_second == pytest.approx(prompt_tokens * 1e3 / t.prompt_ms)
    assert t.tokens_per_second == pytest.approx(generated * 1e3 / t.generation_ms)


def test_generate_reports_prompt_and_generation_timings(model):
    prompt = model.tokenize("The cat sat on the mat and")
    out = model.generate(prompt, max_tokens=6, temperature=0)
    _check(out.timings, len(prompt), len(out.token_ids))


def test_only_the_final_stream_chunk_has_timings(model):
    chunks = list(model.stream("Water boils at", max_tokens=5, temperature=0))
    assert all(c.timings is None for c in chunks[:-1])
    last = chunks[-1]
    assert last.usage is not None
    _check(last.timings, last.usage["prompt_tokens"], last.usage["completion_tokens"])


def test_a_cached_prompt_prefix_is_not_counted_again():
    with bb.load() as model:
        prompt = model.tokenize("One two three four five six seven")
        first = model.generate(prompt, max_tokens=2, temperature=0)
        again = model.generate(prompt, max_tokens=2, temperature=0)
    assert first.timings is not None and first.timings.prompt_tokens == len(prompt)
    assert again.timings is not None
    assert again.timings.prompt_tokens == 1  # the last prompt token is always evaluated


def test_chat_results_and_final_chat_chunks_have_timings(model):
    messages = [{"role": "user", "content": "Hello there"}]
    reply = model.chat(messages, max_tokens=4, temperature=0)
    assert reply.timings is not None and reply.timings.generated_tokens == len(reply.token_ids)
    last = list(model.stream_chat(messages, max_tokens=4, temperature=0))[-1]
    assert last.timings is not None and last.finish_reason is not None


def test_async_results_have_timings(model):
    out = asyncio.run(model.agenerate("Hello", max_tokens=3, temperature=0))
    assert out.timings is not None and out.timings.generated_tokens == len(out.token_ids)


def test_timings_do_not_change_equality(model):
    a = model.generate("Hello", max_tokens=4, temperature=0)
    b = model.generate("Hello", max_tokens=4, temperature=0)
    assert a == b
