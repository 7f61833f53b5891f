"""The training recipe: generated data, the QAT model and its export.

The exported checkpoint must be the model that was trained: the torch QAT forward, the
engine and transformers' BitNetForCausalLM must agree on it.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from pathlib import Path

import jsonschema
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from oracle import check_strict, oracle_greedy, oracle_logits  # noqa: E402

import bitnet_backend as bb  # noqa: E402
from bitnet_backend.testing import tokenizer_json  # noqa: E402
from bitnet_backend.training import passages, tools  # noqa: E402
from bitnet_backend.training.dataset import (  # noqa: E402
    CONTEXT,
    NOT_TARGET,
    REPLY,
    UNKNOWN,
    Renderer,
    encode,
    examples,
    pack,
    rag_turns_example,
)
from bitnet_backend.training.export import export  # noqa: E402
from bitnet_backend.training.model import BitNet, ModelShape  # noqa: E402
from bitnet_backend.training.state import TrainingStateError  # noqa: E402
from bitnet_backend.training.train import main as train_main  # noqa: E402
from bitnet_backend.training.train import make_tokenizer, per_example_weights  # noqa: E402


@pytest.fixture(scope="module")
def tokenizer() -> bb.Tokenizer:
    return make_tokenizer(tokenizer_json())


def test_tool_cases_take_arguments_from_the_request() -> None:
    rng = random.Random(5)
    for _ in range(400):
        case = tools.tool_case(rng)
        jsonschema.validate(case.arguments, case.tool["parameters"])
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", case.name)
        for value in case.arguments.values():
            assert str(value) in case.request, (case.request, case.arguments)
        shown = tools.distractors(rng, case, 3)
        assert case.name not in {t["name"] for t in shown}


def test_reading_answers_are_spans_of_the_passage() -> None:
    rng = random.Random(6)
    for _ in range(300):
        p = passages.passage(rng)
        assert p.qa
        for _, answer in p.qa:
            assert answer in p.text, (answer, p.text)


def test_example_stream_is_seeded_and_well_formed(tokenizer: bb.Tokenizer) -> None:
    first = list(itertools.islice(examples(3, Renderer(tokenizer)), 300))
    again = list(itertools.islice(examples(3, Renderer(tokenizer)), 300))
    other = list(itertools.islice(examples(4, Renderer(tokenizer)), 300))
    assert first == again
    assert first != other
    kinds = {e.kind for e in first}
    assert kinds == {
        "rag",
        "rag_turns",
        "tool_call",
        "tool_answer",
        "instruction",
        "completion",
        "text",
        "echo",
    }
    for e in first:
        if e.kind == "tool_call":
            call = json.loads(e.completion)
            assert set(call) == {"name", "arguments"}
            assert call == e.answer
            assert f'"name": "{call["name"]}"' in e.prompt  # the tool is shown
        if e.kind == "echo":
            first_half, second_half = e.prompt.split("\n\n")
            assert first_half == second_half
        if e.kind == "rag" and e.answer != UNKNOWN:
            assert e.answer in e.prompt
        if e.kind == "rag_turns":
            answers = [e.completion, *(answer for _, answer in e.turns)]
            assert all(a in e.prompt for a in answers)
            assert len(set(answers)) == len(answers)  # every turn needs a new lookup
        else:
            assert e.turns == ()
        if e.chat:
            assert e.prompt.startswith("<|begin_of_text|>")
            assert e.prompt.endswith("Assistant: ")


def test_packing_keeps_examples_whole(tokenizer: bb.Tokenizer) -> None:
    eot, eos = tokenizer.token_to_id("<|eot_id|>"), tokenizer.token_to_id("<|end_of_text|>")
    assert eot is not None and eos is not None
    stream = (encode(tokenizer, e, eot, eos) for e in examples(1, Renderer(tokenizer)))
    b = pack(stream, rows=4, seq_len=512, pad_id=eos)
    assert b.tokens.shape == (4, 513)
    for row in range(4):
        for d in set(b.doc[row]) - {-1}:
            where = np.flatnonzero(b.doc[row] == d)
            assert np.array_equal(b.pos[row, where], np.arange(len(where)))
            kinds = b.target[row, where]
            assert kinds[0] == NOT_TARGET  # nothing before an example's first token
            # A reply (and its <|eot_id|>) closes the example; before the first, only context.
            reply = np.flatnonzero(kinds == REPLY)
            assert len(reply) > 0 and reply[-1] == len(where) - 1
            assert (kinds[1 : reply[0]] == CONTEXT).all()
            assert (kinds[1:] != NOT_TARGET).all()


def test_later_turns_are_the_rendered_chat_with_every_answer_a_reply(
    tokenizer: bb.Tokenizer,
) -> None:
    eot, eos = tokenizer.token_to_id("<|eot_id|>"), tokenizer.token_to_id("<|end_of_text|>")
    assert eot is not None and eos is not None
    renderer = Renderer(tokenizer)
    rng = random.Random(8)
    seen_turns = 0
    for _ in range(40):
        e = rag_turns_example(rng, renderer)
        answers = [e.completion, *(answer for _, answer in e.turns)]
        ids, kinds = encode(tokenizer, e, eot, eos)
        # The pieces put together are the chat as Model.chat renders it, history included.
        text = e.prompt + e.completion + "<|eot_id|>"
        for between, answer in e.turns:
            text += between + answer + "<|eot_id|>"
        assert tokenizer.decode(ids, skip_special=False) == text
        # Exactly the answers (each closed by <|eot_id|>) are reply targets, in order.
        is_reply = np.array(kinds) == REPLY
        starts = np.flatnonzero(is_reply & ~np.r_[False, is_reply[:-1]])
        assert len(starts) == len(answers)
        replies = tokenizer.decode(
            [i for i, k in zip(ids, kinds, strict=True) if k == REPLY], False
        )
        assert replies == "".join(a + "<|eot_id|>" for a in answers)
        seen_turns += len(e.turns)
    assert seen_turns >= 40


def test_reply_loss_weighs_every_example_the_same(tokenizer: bb.Tokenizer) -> None:
    eot, eos = tokenizer.token_to_id("<|eot_id|>"), tokenizer.token_to_id("<|end_of_text|>")
    assert eot is not None and eos is not None
    stream = (encode(tokenizer, e, eot, eos) for e in examples(2, Renderer(tokenizer)))
    b = pack(stream, rows=4, seq_len=512, pad_id=eos)
    reply, doc = b.target == REPLY, b.doc
    w = per_example_weights(reply, doc)
    assert (w[~reply] == 0).all()
    docs = sorted(set(doc[reply].tolist()))
    lengths = {d: int((reply & (doc == d)).sum()) for d in docs}
    assert len(set(lengths.values())) > 1  # short answers and long texts in the same batch
    for d in docs:
        mine = reply & (doc == d)
        assert np.allclose(w[mine], 1.0 / lengths[d])  # equal within an example
        assert np.isclose(w[mine].sum(), 1.0)  # and every example sums to one
    assert np.isclose(w.sum(), len(docs))


def _random_model(seed: int = 0) -> BitNet:
    torch.manual_seed(seed)
    vocab = -(-json.loads(tokenizer_json())["added_tokens"][-1]["id"] // 64) * 64
    model = BitNet(ModelShape(vocab, 64, 160, 2, 4, 2))
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 1:
                p.add_(torch.randn_like(p) * 0.1)
        model.embed_tokens.weight.mul_(20)
    return model


def test_export_is_the_trained_model(tmp_path: Path) -> None:
    model = _random_model()
    out = export(model, tokenizer_json(), tmp_path / "ckpt", max_positions=256)
    ids = [1, 17, 200, 33, 5, 99, 412, 7, 64, 300]
    with torch.no_grad():
        pos = torch.arange(len(ids))[None]
        doc = torch.zeros(1, len(ids), dtype=torch.int32)
        want = model(torch.tensor([ids]), pos, doc)[0].numpy()
    for backend, opts in (("reference", {}), ("cpu", {"lm_head": "f32"})):
        with bb.load(out, backend=backend, **opts) as m:
            # Embeddings and norms are stored as bf16, the torch model keeps float32.
            got = m.logits(ids)
            assert np.abs(got - want).max() < 0.05 * np.abs(want).max()
            assert (got.argmax(-1) == want.argmax(-1)).mean() >= 0.9
    with bb.load(out, lm_head="f32") as m:
        check_strict(m.logits(ids), oracle_logits(out, ids), out, ids)


def test_bf16_matmuls_are_the_f32_model_up_to_rounding() -> None:
    # The trainer runs the ternary products in bfloat16: same codes and integer activations,
    # so logits and gradients differ from the float32 model only by the rounding of results.
    exact = _random_model()
    fast = BitNet(exact.shape, compute_dtype=torch.bfloat16)
    fast.load_state_dict(exact.state_dict())
    ids = torch.tensor([[1, 17, 200, 33, 5, 99, 412, 7, 64, 300, 21, 8]])
    pos = torch.arange(ids.shape[1])[None]
    doc = torch.zeros_like(ids, dtype=torch.int32)
    grads = []
    logits = []
    for model in (exact, fast):
        out = model(ids, pos, doc)
        loss = torch.nn.functional.cross_entropy(out[0, :-1], ids[0, 1:])
        loss.backward()
        logits.append(out.detach()[0])
        grads.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
    err = (logits[0] - logits[1]).abs().max() / logits[0].abs().max()
    assert 0 < err < 0.05  # not the same computation (int8 rounding flips), same model
    assert (logits[0].argmax(-1) == logits[1].argmax(-1)).float().mean() >= 0.9
    cosine = torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0)
    assert cosine > 0.99


def test_short_training_run_learns_and_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "model"
    argv = ["--out", str(out), "--steps", "40", "--batch", "2", "--hidden", "64", "--ffn", "128"]
    argv += ["--layers", "2", "--heads", "4", "--kv-heads", "2", "--lr", "4e-3", "--warmup", "5"]
    argv += ["--log-every", "1", "--threads", "1"]
    assert train_main(argv) == 0
    losses = [float(x) for x in re.findall(r"loss (\d+\.\d+)", capsys.readouterr().out)]
    assert len(losses) == 40
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 1.0
    with bb.load(out, lm_head="f32") as m:
        ids = m.tokenize("Context:\nAda Park is a baker.\n\nQuestion: What is Ada Park's job?")
        check_strict(m.logits(ids), oracle_logits(out, ids), out, ids)
        got = m.generate(ids, max_tokens=8, temperature=0.0).token_ids
        want = oracle_greedy(out, ids, 8)
        # generate stops at an end-of-sequence token, the oracle run does not.
        assert want[: len(got)] == got
        assert len(got) == 8 or want[len(got)] in m.tokenizer.eos_token_ids


TINY = ["--batch", "2", "--hidden", "64", "--ffn", "128", "--layers", "2", "--heads", "4"]
TINY += ["--kv-heads", "2", "--lr", "4e-3", "--warmup", "2", "--threads", "1", "--no-compile"]


def test_resumed_run_writes_the_same_model_as_an_uninterrupted_one(
    tmp_path: Path, saved_training_states: dict[int, bytes]
) -> None:
    whole = tmp_path / "whole"
    argv = [*TINY, "--steps", "8", "--state-every", "3"]
    assert train_main([*argv, "--out", str(whole), "--save-state", str(tmp_path / "s.pt")]) == 0
    assert sorted(saved_training_states) == [3, 6, 8]
    # A run stopped after step 6 (its last saved state) and carried on.
    partial = tmp_path / "at6.pt"
    partial.write_bytes(saved_training_states[6])
    resumed = tmp_path / "resumed"
    assert train_main([*argv, "--out", str(resumed), "--resume", str(partial)]) == 0
    for name in ("model.safetensors", "tokenizer.json"):
        assert (resumed / name).read_bytes() == (whole / name).read_bytes()


def test_resume_refuses_other_options_and_broken_files(tmp_path: Path) -> None:
    saved = tmp_path / "s.pt"
    argv = [*TINY, "--steps", "2", "--out", str(tmp_path / "m")]
    assert train_main([*argv, "--save-state", str(saved)]) == 0
    with pytest.raises(TrainingStateError, match=re.escape("--lr 0.004 (now 0.001)")):
        train_main([*argv, "--resume", str(saved), "--lr", "1e-3"])
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(saved.read_bytes()[:1000])
    with pytest.raises(TrainingStateError, match="not a readable training state"):
        train_main([*argv, "--resume", str(truncated)])
    with pytest.raises(TrainingStateError, match="no training state"):
        train_main([*argv, "--resume", str(tmp_path / "missing.pt")])
    assert saved.stat().st_size > 1000  # the state itself is untouched


def test_each_recipe_has_its_own_precision_and_denormal_defaults() -> None:
    from bitnet_backend.training.train import parse_options

    v1 = parse_options(["--out", "m", "--recipe", "v1"])
    assert (v1.precision, v1.flush_denormals) == ("bf16", False)
    v2 = parse_options(["--out", "m"])  # the shipped model's recipe is the default
    assert (v2.recipe, v2.precision, v2.flush_denormals) == ("v2", "f32", True)
    chosen = parse_options(["--out", "m", "--recipe", "v2", "--precision", "bf16"])
    assert (chosen.precision, chosen.flush_denormals) == ("bf16", True)
    off = parse_options(["--out", "m", "--recipe", "v2", "--no-flush-denormals"])
    assert off.flush_denormals is False
