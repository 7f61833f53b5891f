"""Recipe v2's retrieval objective and training run.

The objective trains the vector ``Model.embed`` returns, so the pooling of the training
model must be the runtime's: compared here on an exported checkpoint.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import bitnet_backend as bb  # noqa: E402
from bitnet_backend.testing import tokenizer_json  # noqa: E402
from bitnet_backend.training import state as training_state  # noqa: E402
from bitnet_backend.training.contrastive import (  # noqa: E402
    info_nce,
    pack_texts,
    pooled,
    retrieval_loss,
)
from bitnet_backend.training.export import export  # noqa: E402
from bitnet_backend.training.model import BitNet, ModelShape  # noqa: E402
from bitnet_backend.training.train import main as train_main  # noqa: E402

TEXTS = [
    "Where does Omar Weber live?",
    "Omar Weber is a chemist. He was born in 1979. He lives in Glasgow.",
    "Elena Costa is a librarian. She lives in Vienna.",
    "Kestrel Works makes telescopes in Lyon.",
]


def _model_as_exported(seed: int = 0) -> BitNet:
    """A random tiny model whose bf16-stored tensors already hold bf16 values."""
    torch.manual_seed(seed)
    vocab = -(-json.loads(tokenizer_json())["added_tokens"][-1]["id"] // 64) * 64
    model = BitNet(ModelShape(vocab, 64, 160, 2, 4, 2))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1:
                p.add_(torch.randn_like(p) * 0.1)
            if p.ndim == 1 or name == "embed_tokens.weight":
                p.copy_(p.to(torch.bfloat16).to(torch.float32))
    return model


def test_pooling_is_what_embed_returns(tmp_path: Path) -> None:
    model = _model_as_exported()
    out = export(model, tokenizer_json(), tmp_path / "ckpt", max_positions=256)
    with bb.load(out) as m:
        got = m.embed(TEXTS)
        ids = [m.tokenize(t) for t in TEXTS]  # with <|begin_of_text|>, as embed encodes
    assert all(i[0] == ids[0][0] for i in ids)
    with torch.no_grad():
        want = pooled(model, pack_texts(ids, 64, 0)).numpy()
        last = [
            model.hidden_states(
                torch.tensor([i]),
                torch.arange(len(i))[None],
                torch.zeros(1, len(i), dtype=torch.int32),
            )[0, -1]
            for i in ids
        ]
        no_bos = pooled(model, pack_texts([i[1:] for i in ids], 64, 0)).numpy()
    cosine = (got * want).sum(-1)
    assert cosine.min() > 0.9999, cosine
    assert np.allclose(np.linalg.norm(want, axis=-1), 1.0, atol=1e-5)
    # The check tells poolings apart: without the BOS position, or the last token's state,
    # is far from embed's vector.
    assert (got * no_bos).sum(-1).max() < 0.99
    last_vectors = torch.nn.functional.normalize(torch.stack(last), dim=-1).numpy()
    assert (got * last_vectors).sum(-1).max() < 0.99


def test_packed_texts_stay_apart() -> None:
    ids = [[1, 2, 3], [4, 5], [6, 7, 8, 9], [10]]
    packed = pack_texts(ids, 5, 0)
    for i, text in enumerate(ids):
        rows, cols = np.nonzero(packed.doc == i)
        assert len(set(rows)) == 1
        assert packed.tokens[rows, cols].tolist() == text
        assert packed.pos[rows, cols].tolist() == list(range(len(text)))
    with pytest.raises(ValueError, match="a row holds 1 to 5"):
        pack_texts([[1] * 6], 5, 0)
    # The same text pools to the same vector wherever it sits in a row.
    model = _model_as_exported()
    with torch.no_grad():
        alone = pooled(model, pack_texts([[1, 17, 200, 33]], 8, 0))
        shared = pooled(model, pack_texts([[1, 5, 9], [1, 17, 200, 33]], 8, 0))
    assert torch.allclose(alone[0], shared[1], atol=1e-5)


def test_info_nce_prefers_matching_pairs() -> None:
    q = torch.nn.functional.normalize(torch.randn(6, 16), dim=-1)
    assert info_nce(q, q) < info_nce(q, q.roll(1, 0))
    assert info_nce(q, q) < 0.1


def test_retrieval_loss_trains_the_pooled_vectors() -> None:
    model = _model_as_exported()
    ids = [[1, 10 + i, 40 + i, 70 + i] for i in range(6)]  # questions
    ids += [[1, 100 + i, 10 + i, 130 + i, 40 + i, 160 + i] for i in range(6)]  # passages
    packed = pack_texts(ids, 32, 0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(10):
        loss = retrieval_loss(model, packed)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


TINY = ["--batch", "2", "--hidden", "64", "--ffn", "128", "--layers", "2", "--heads", "4"]
TINY += ["--kv-heads", "2", "--lr", "4e-3", "--warmup", "2", "--threads", "1", "--no-compile"]
TINY += ["--recipe", "v2", "--retrieval-pairs", "6", "--log-every", "1"]


def test_v2_run_learns_resumes_to_the_same_files_and_loads(
    tmp_path: Path,
    saved_training_states: dict[int, bytes],
    capsys: pytest.CaptureFixture[str],
) -> None:
    whole = tmp_path / "whole"
    argv = [*TINY, "--steps", "24", "--state-every", "20"]
    assert train_main([*argv, "--out", str(whole), "--save-state", str(tmp_path / "s.pt")]) == 0
    log = capsys.readouterr().out
    losses = [float(x) for x in re.findall(r"step +\d+ +loss (\d+\.\d+)", log)]
    assert len(losses) == 24 and np.mean(losses[-4:]) < np.mean(losses[:4]) - 0.5
    assert len(re.findall(r"retrieval \d+\.\d+", log)) == 24
    partial = tmp_path / "at20.pt"
    partial.write_bytes(saved_training_states[20])
    resumed = tmp_path / "resumed"
    assert train_main([*argv, "--out", str(resumed), "--resume", str(partial)]) == 0
    for name in ("model.safetensors", "tokenizer.json"):
        assert (resumed / name).read_bytes() == (whole / name).read_bytes()
    with bb.load(whole) as m:
        assert m.embed("Where does Zoë Núñez live?").shape == (1, 64)
        text = "明光科技"
        ids = m.tokenize(text, add_special=False)
        assert m.detokenize(ids) == text
        # The v2 tokenizer learned merges for the CJK names (12 bytes; 3 tokens when written).
        assert len(ids) <= 6
    with pytest.raises(training_state.TrainingStateError, match="--retrieval-pairs 6 \\(now 4\\)"):
        train_main(
            [*argv, "--out", str(resumed), "--resume", str(partial), "--retrieval-pairs", "4"]
        )


def test_retrieval_pairs_of_one_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        train_main([*TINY, "--steps", "1", "--retrieval-pairs", "1", "--out", str(tmp_path)])
