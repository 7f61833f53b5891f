"""The public Model API on generated checkpoints, on the reference and (when built) cpu backends."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from backends import BACKENDS
from results import counts, uncached

import bitnet_backend as bb
from bitnet_backend.model import DEFAULT_MODEL_DIR

PROMPT = "The teacher reads a good story"
GREEDY = {"temperature": 0.0}


@pytest.fixture(scope="module")
def ckpt(make_checkpoint) -> Path:
    return make_checkpoint()


@pytest.fixture(scope="module", params=BACKENDS)
def model(request, ckpt):
    with bb.load(ckpt, backend=request.param, n_threads=2) as m:
        yield m


@pytest.fixture(scope="module")
def ref_model(ckpt):
    with bb.load(ckpt, backend="reference", n_threads=1) as m:
        yield m


def test_tokenize_detokenize_round_trip(model):
    ids = model.tokenize("Hello world, 你好")
    assert ids[0] == model.tokenizer.bos_token_id
    assert model.detokenize(ids) == "Hello world, 你好"
    assert model.tokenize("Hello world, 你好", add_special=False) == ids[1:]


def test_logits_are_float32_per_position(model):
    ids = model.tokenize(PROMPT)
    out = model.logits(ids)
    assert out.dtype == np.float32
    assert out.shape == (len(ids), model.vocab_size)
    # a fresh forward: the same call gives the same numbers
    np.testing.assert_array_equal(out, model.logits(ids))


def test_greedy_generation_follows_the_argmax_of_fresh_forwards(model):
    ids = model.tokenize(PROMPT)
    c = model.generate(PROMPT, max_tokens=6, **GREEDY)
    seq = list(ids)
    for tok in c.token_ids:
        assert int(np.argmax(model.logits(seq)[-1])) == tok
        seq.append(tok)


def test_completion_reports_usage_and_finish_reason(model):
    c = model.generate(PROMPT, max_tokens=5, **GREEDY)
    n_prompt = len(model.tokenize(PROMPT))
    assert counts(c.usage) == {
        "prompt_tokens": n_prompt,
        "completion_tokens": len(c.token_ids),
        "total_tokens": n_prompt + len(c.token_ids),
    }
    assert 0 <= c.usage["prompt_tokens_details"]["cached_tokens"] < n_prompt
    assert c.finish_reason == "length" and len(c.token_ids) == 5
    assert c.text == model.detokenize(c.token_ids)


def test_generation_stops_at_an_eos_token_with_finish_reason_stop(ckpt, tmp_path, ref_model):
    # Make the model's first greedy choice an end-of-sequence token.
    import shutil

    first = ref_model.generate(PROMPT, max_tokens=1, **GREEDY).token_ids[0]
    d = tmp_path / "eos"
    shutil.copytree(ckpt, d)
    import json

    gen = json.loads((d / "generation_config.json").read_text())
    gen["eos_token_id"] = [first]
    (d / "generation_config.json").write_text(json.dumps(gen))
    with bb.load(d, backend="reference") as m:
        c = m.generate(PROMPT, max_tokens=5, **GREEDY)
    assert c.finish_reason == "stop"
    assert c.token_ids == [] and c.text == ""
    assert c.usage["completion_tokens"] == 0


def test_same_seed_gives_the_same_text_and_other_seeds_differ(model):
    opts = {"max_tokens": 24, "temperature": 1.5, "top_k": 0, "top_p": 1.0, "min_p": 0.0}
    a = model.generate(PROMPT, seed=7, **opts)
    b = model.generate(PROMPT, seed=7, **opts)
    assert a == b
    others = {tuple(model.generate(PROMPT, seed=s, **opts).token_ids) for s in (1, 2, 3)}
    assert len(others | {tuple(a.token_ids)}) > 1


@pytest.mark.parametrize(
    "options",
    [
        {"temperature": 1.0, "top_k": 1},
        {"temperature": 1.0, "top_k": 0, "min_p": 1.0},
        {"temperature": 1.0, "top_k": 0, "top_p": 1e-9},
    ],
    ids=["top_k=1", "min_p=1", "tiny top_p"],
)
def test_sampling_options_that_leave_one_candidate_equal_greedy(model, options):
    greedy = model.generate(PROMPT, max_tokens=8, **GREEDY)
    for seed in (1, 2):
        assert uncached(model.generate(PROMPT, max_tokens=8, seed=seed, **options)) == uncached(
            greedy
        )


def test_repeat_penalty_reaches_the_sampler(ref_model):
    plain = ref_model.generate(PROMPT, max_tokens=24, **GREEDY)
    assert len(set(plain.token_ids)) < len(plain.token_ids), "premise: greedy text repeats"
    penalised = ref_model.generate(PROMPT, max_tokens=24, repeat_penalty=50.0, **GREEDY)
    assert penalised.token_ids != plain.token_ids


def test_generation_config_of_the_checkpoint_gives_the_defaults(model):
    g = model.generation_config
    assert (g.temperature, g.top_p, g.max_tokens) == (0.6, 0.9, 256)
    assert model.eos_token_ids  # end_of_text and eot_id
    assert {model.tokenizer.token_to_id("<|eot_id|>")} <= set(model.eos_token_ids)


@pytest.mark.parametrize(
    "bad",
    [
        {"temperature": -1.0},
        {"temperature": float("nan")},
        {"top_k": -1},
        {"top_p": 0.0},
        {"min_p": 1.5},
        {"repeat_penalty": 0.0},
        {"max_tokens": 0},
        {"max_tokens": 2.5},
        {"seed": "abc"},
        {"stop": [""]},
        {"stop": 3},
        {"json_schema": {"type": "frobnicate"}},
    ],
)
def test_bad_options_raise_invalid_parameter_before_any_work(model, bad):
    with pytest.raises(bb.InvalidParameterError):
        model.generate(PROMPT, **bad)
    with pytest.raises(bb.InvalidParameterError):
        model.stream(PROMPT, **bad)  # raised by the call itself, not on first iteration


DIVERSE = {"temperature": 0.0, "repeat_penalty": 1.5}  # greedy, but not one token repeated


def _stop_across_a_token_boundary(model, completion):
    """Two characters of the text, one from each side of a token boundary."""
    text = completion.text
    for i in range(1, len(completion.token_ids)):
        head = model.detokenize(completion.token_ids[:i])
        if not text.startswith(head) or len(head) == len(text):
            continue
        stop = text[len(head) - 1 : len(head) + 1]
        if not any(c.isspace() or c == "\ufffd" for c in stop) and text.find(stop) == len(head) - 1:
            return stop
    pytest.fail(f"no usable token boundary in {text!r}")


def test_stop_string_split_across_tokens_is_not_emitted(model):
    full = model.generate(PROMPT, max_tokens=30, **DIVERSE)
    stop = _stop_across_a_token_boundary(model, full)
    expected = full.text[: full.text.find(stop)]

    c = model.generate(PROMPT, max_tokens=30, stop=[stop], **DIVERSE)
    assert c.text == expected
    assert c.finish_reason == "stop"

    chunks = list(model.stream(PROMPT, max_tokens=30, stop=stop, **DIVERSE))
    assert "".join(ch.text for ch in chunks) == expected
    assert all(stop not in ch.text for ch in chunks)
    assert chunks[-1].finish_reason == "stop"
    assert [t for ch in chunks for t in ch.token_ids] == c.token_ids


def test_stop_string_that_never_occurs_changes_nothing(model):
    full = model.generate(PROMPT, max_tokens=12, **GREEDY)
    c = model.generate(PROMPT, max_tokens=12, stop=["\u2603never\u2603"], **GREEDY)
    assert c == full


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_stream_concatenation_equals_generate(model, seed):
    opts = {"max_tokens": 40, "temperature": 2.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0}
    c = model.generate(PROMPT, seed=seed, **opts)
    chunks = list(model.stream(PROMPT, seed=seed, **opts))
    assert "".join(ch.text for ch in chunks) == c.text
    assert [t for ch in chunks for t in ch.token_ids] == c.token_ids
    assert all(ch.finish_reason is None for ch in chunks[:-1])
    assert chunks[-1].finish_reason == c.finish_reason
    assert chunks[-1].usage == c.usage
    # the byte-by-byte assembly agrees with the tokenizer's own decoding
    assert c.text == model.detokenize(c.token_ids)


def test_prompt_longer_than_the_context_window_overflows(ckpt):
    with bb.load(ckpt, backend="reference", n_ctx=8) as m:
        ids = m.tokenize(PROMPT + PROMPT)
        assert len(ids) > 8
        with pytest.raises(bb.ContextOverflowError) as err:
            m.generate(PROMPT + PROMPT)
        assert (err.value.needed, err.value.n_ctx) == (len(ids), 8)
        with pytest.raises(bb.ContextOverflowError):
            m.logits(ids)
        with pytest.raises(bb.ContextOverflowError):
            m.embed(PROMPT + PROMPT)


def test_generation_that_fills_the_context_stops_with_length(ckpt):
    with bb.load(ckpt, backend="reference", n_ctx=12) as m:
        prompt = m.tokenize(PROMPT)
        c = m.generate(prompt, max_tokens=-1, **GREEDY)
        assert c.finish_reason == "length"
        assert c.usage["total_tokens"] == 12
        full = m.generate((prompt * 3)[:12], max_tokens=5, **GREEDY)
        assert (full.token_ids, full.finish_reason) == ([], "length")


def test_prompt_of_token_ids_is_used_as_given(model):
    ids = model.tokenize(PROMPT)
    assert model.generate(ids, max_tokens=4, **GREEDY) == model.generate(
        PROMPT, max_tokens=4, **GREEDY
    )
    with pytest.raises(bb.InvalidParameterError):
        model.generate([1, model.vocab_size], max_tokens=2)
    with pytest.raises(bb.InvalidParameterError):
        model.generate([], max_tokens=2)


def test_concurrent_generation_in_threads_equals_sequential(model):
    opts = {"max_tokens": 16, "temperature": 1.0}
    prompts = [PROMPT, "The cat sat on the", "Water boils at", "Please remember to"]
    sequential = [model.generate(p, seed=i, **opts) for i, p in enumerate(prompts)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(model.generate, p, seed=i, **opts) for i, p in enumerate(prompts)]
        concurrent = [f.result() for f in futures]
    assert [uncached(c) for c in concurrent] == [uncached(c) for c in sequential]


def test_reusing_the_previous_prompt_prefix_gives_the_same_text(ckpt, model):
    turn1 = [{"role": "user", "content": "Hello, who are you?"}]
    with bb.load(ckpt, backend=model.backend_name, cache_prompt=False) as cold:
        r1 = cold.chat(turn1, max_tokens=8, **GREEDY)
        turn2 = [*turn1, r1.message, {"role": "user", "content": "Write a short poem."}]
        expected = cold.chat(turn2, max_tokens=8, **GREEDY)
    assert uncached(model.chat(turn1, max_tokens=8, **GREEDY)) == uncached(r1)
    assert uncached(model.chat(turn2, max_tokens=8, **GREEDY)) == uncached(expected)


def test_chat_renders_the_template_and_replies_as_assistant(model):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What time is it?"},
    ]
    r = model.chat(messages, max_tokens=10, **GREEDY)
    prompt = model.tokenizer.encode(
        model.apply_chat_template(messages, add_generation_prompt=True), add_special=False
    )
    assert prompt[0] == model.tokenizer.bos_token_id and prompt[1] != prompt[0]
    plain = model.generate(prompt, max_tokens=10, **GREEDY)
    assert r.message == {"role": "assistant", "content": plain.text}
    assert (r.token_ids, r.finish_reason, counts(r.usage)) == (
        plain.token_ids,
        plain.finish_reason,
        counts(plain.usage),
    )
    chunks = list(model.stream_chat(messages, max_tokens=10, **GREEDY))
    assert chunks[0].delta["role"] == "assistant"
    assert "".join(ch.content for ch in chunks) == r.content
    assert chunks[-1].finish_reason == r.finish_reason
    assert counts(chunks[-1].usage) == counts(r.usage)


def test_chat_template_errors_are_bitnet_errors(model):
    with pytest.raises(bb.ChatTemplateError):
        model.chat([], max_tokens=2)
    with pytest.raises(bb.ChatTemplateError):
        model.chat(["not a message"], max_tokens=2)


def test_embed_is_normalised_mean_of_hidden_states(model):
    texts = ["The cat sat on the warm windowsill.", "Numbers such as 12 and 345.", "x"]
    e = model.embed(texts)
    assert e.dtype == np.float32 and e.shape == (3, model.hidden_size)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, rtol=1e-5)
    h = model.engine.hidden_states(model.tokenize(texts[1])).mean(axis=0)
    np.testing.assert_allclose(e[1], h / np.linalg.norm(h), rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(model.embed(texts[0]), e[:1])
    assert not np.allclose(e[0], e[1])
    assert model.embed([]).shape == (0, model.hidden_size)


def test_async_variants_match_the_sync_ones(model):
    messages = [{"role": "user", "content": "Hello, who are you?"}]

    async def main():
        c = await model.agenerate(PROMPT, max_tokens=8, seed=3, temperature=1.0)
        chunks = [ch async for ch in model.astream(PROMPT, max_tokens=8, seed=3, temperature=1.0)]
        r = await model.achat(messages, max_tokens=6, **GREEDY)
        rchunks = [ch async for ch in model.astream_chat(messages, max_tokens=6, **GREEDY)]
        e = await model.aembed(["hello"])
        return c, chunks, r, rchunks, e

    c, chunks, r, rchunks, e = asyncio.run(main())
    assert uncached(c) == uncached(model.generate(PROMPT, max_tokens=8, seed=3, temperature=1.0))
    assert "".join(ch.text for ch in chunks) == c.text
    assert uncached(r) == uncached(model.chat(messages, max_tokens=6, **GREEDY))
    assert "".join(ch.content for ch in rchunks) == r.content
    np.testing.assert_array_equal(e, model.embed(["hello"]))


def test_async_generation_does_not_block_the_event_loop(model):
    async def main():
        ticks = 0
        done = False

        async def ticker():
            nonlocal ticks
            while not done:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        before = ticks
        await model.agenerate(PROMPT, max_tokens=48, **GREEDY)
        during = ticks - before
        done = True
        await task
        return during

    assert asyncio.run(main()) >= 1  # a blocking call would let the ticker run 0 times


def test_leaving_an_async_stream_early_stops_the_generation(model):
    async def main():
        agen = model.astream(PROMPT, max_tokens=200, temperature=2.0, top_k=0, seed=1)
        first = await agen.__anext__()
        await agen.aclose()
        return first

    first = asyncio.run(main())
    assert isinstance(first, bb.CompletionChunk)
    # the model is still usable afterwards
    assert model.generate(PROMPT, max_tokens=2, **GREEDY).usage["completion_tokens"] <= 2


def test_async_errors_surface_in_the_caller(model):
    async def main():
        with pytest.raises(bb.InvalidParameterError):
            await model.agenerate(PROMPT, temperature=-1)
        with pytest.raises(bb.InvalidParameterError):
            async for _ in model.astream(PROMPT, top_p=0):
                pass

    asyncio.run(main())


def test_info_describes_the_model(model):
    info = model.info
    assert info["architecture"] == "BitNetForCausalLM"
    assert info["parameters"] == model.config.parameter_count
    assert info["context_length"] == model.n_ctx == 4096
    assert info["backend"] == model.backend_name
    assert info["threads"] == model.engine.info["n_threads"]  # what the engine really uses
    for key in ("weight_format", "kernel_isa", "layers", "vocab_size"):
        assert info[key]


def test_closed_model_refuses_work(ckpt):
    m = bb.load(ckpt, backend="reference")
    m.generate(PROMPT, max_tokens=2)
    m.close()
    m.close()  # idempotent
    with pytest.raises(bb.BitnetError, match="closed"):
        m.generate(PROMPT, max_tokens=2)
    with bb.load(ckpt, backend="reference") as m2:
        pass
    with pytest.raises(bb.BitnetError):
        m2.embed("x")


def test_load_rejects_bad_arguments(ckpt, tmp_path):
    with pytest.raises(bb.BackendNotFoundError, match="reference"):
        bb.load(ckpt, backend="no-such-backend")
    with pytest.raises(bb.InvalidParameterError):
        bb.load(ckpt, backend="reference", n_threads=0)
    with pytest.raises(bb.InvalidParameterError):
        bb.load(ckpt, backend="reference", n_ctx=100_000)
    with pytest.raises(bb.CheckpointError):
        bb.load(tmp_path / "missing", backend="reference")


@pytest.mark.skipif(
    (DEFAULT_MODEL_DIR / "config.json").exists(), reason="a default model is bundled"
)
def test_load_without_source_explains_that_no_default_model_is_bundled():
    with pytest.raises(bb.CheckpointError, match="no default model is bundled"):
        bb.load(backend="reference")
