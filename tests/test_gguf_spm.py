"""1bitLLM's GGUF vocabulary: SentencePiece pieces and scores (tokenizer.ggml.model "llama").

A tiny SentencePiece BPE model is trained with LLaMA-2's settings (byte fallback, digits split,
a dummy "▁" prefix, no normalization); transformers converts it to the tokenizer.json a
LlamaTokenizerFast checkpoint ships, with 1bitLLM's two added tokens. The model's GGUF is
written twice: by ``bitnet convert --to gguf`` from that checkpoint (scores derived from the
merges) and with the SentencePiece model's own scores and piece types, as llama.cpp's converter
writes them. The tokenizer rebuilt from either file must encode like the Hugging Face one,
token for token, on mixed text; and the model must give the same logits.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from oracle import prompt_ids
from test_gguf import _rewrite

from bitnet_backend.architecture import BITNET_1BITLLM
from bitnet_backend.checkpoints.gguf_tokens import BYTE, CONTROL, NORMAL, UNKNOWN, USER_DEFINED
from bitnet_backend.checkpoints.hf import load_checkpoint
from bitnet_backend.gguf_export import export_gguf

spm = pytest.importorskip("sentencepiece")
pytest.importorskip("gguf")

# Shapes I2_S can hold (rows of a multiple of 128); float16 latent weights as 1bitLLM ships.
SHAPE = {
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "vocab_size": 640,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 600,
}
SPM_VOCAB = 600  # pieces, then 1bitLLM's added "<pad>" (600) and "</line>" (601)
MIXED = [
    "The quick brown fox jumps over the lazy dog.",
    "  two leading spaces, and  two   inner ones  ",
    "Tabs\tand\nnew lines\n\nstay as they are.",
    "Numbers: 12345, 3.14159 and 2026-12-02.",
    "Accents: café, naïve, Ærøskøbing, Straße.",
    "日本語のテキストと中文字符。",
    "Emoji 🙂🚀 and symbols ∑ ≤ ≥ → ©.",
    "Special tokens inside text: <s> hello </s> <pad> and </line> end.",
    "",
    " ",
    "a",
    "▁ already a meta space",
]


# The tokenizer.json rebuilt from a GGUF is cached per user: keep it in tmp (conftest.py).
pytestmark = pytest.mark.usefixtures("gguf_tokenizer_cache_in_tmp")


@pytest.fixture(scope="module")
def spm_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SentencePiece BPE model trained with LLaMA-2's trainer settings."""
    from bitnet_backend.testing import corpus

    work = tmp_path_factory.mktemp("spm")
    text = work / "corpus.txt"
    text.write_text("\n".join(list(corpus())[:400]) + "\n", encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(text),
        model_prefix=str(work / "tokenizer"),
        model_type="bpe",
        vocab_size=SPM_VOCAB,
        byte_fallback=True,
        split_digits=True,
        allow_whitespace_only_pieces=True,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        add_dummy_prefix=True,
        character_coverage=1.0,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        num_threads=1,
        minloglevel=2,
    )
    return work / "tokenizer.model"


@pytest.fixture(scope="module")
def hf_dir(spm_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1bitLLM-shaped checkpoint whose tokenizer transformers converted from ``spm_model``.

    The tokenizer.json is laid out as 1bitLLM's (LlamaTokenizerFast, legacy): a normalizer
    prepends "▁" and turns spaces into "▁", as SentencePiece's dummy prefix does.
    """
    from transformers import AutoTokenizer

    from bitnet_backend.testing import write_checkpoint

    out = write_checkpoint(
        tmp_path_factory.mktemp("hf") / "model",
        family=BITNET_1BITLLM,
        dtype="float16",
        shape=SHAPE,
        tokenizer=False,
    )
    slow = tmp_path_factory.mktemp("spm-only")
    shutil.copy(spm_model, slow / "tokenizer.model")
    (slow / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "LlamaTokenizer",
                "legacy": True,
                "add_bos_token": True,
                "bos_token": "<s>",
                "eos_token": "</s>",
                "unk_token": "<unk>",
            }
        )
    )
    tok = AutoTokenizer.from_pretrained(slow)
    tok.add_special_tokens({"pad_token": "<pad>"})
    tok.add_tokens(["</line>"])
    assert len(tok) == SPM_VOCAB + 2
    tok.save_pretrained(out)
    doc = json.loads((out / "tokenizer.json").read_text(encoding="utf-8"))
    doc["normalizer"] = {
        "type": "Sequence",
        "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
        ],
    }
    doc["pre_tokenizer"] = None
    (out / "tokenizer.json").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def hf_tokenizer(hf_dir: Path) -> Any:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(hf_dir / "tokenizer.json"))


@pytest.fixture(scope="module")
def exported(hf_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``bitnet convert --to gguf`` of the checkpoint."""
    return export_gguf(hf_dir, tmp_path_factory.mktemp("gguf") / "model.gguf", "i2_s")


@pytest.fixture(scope="module")
def with_model_scores(
    exported: Path, spm_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The same file with the SentencePiece model's own scores and piece types."""
    sp = spm.SentencePieceProcessor(model_file=str(spm_model))

    def piece_type(i: int) -> int:
        if sp.IsUnknown(i):
            return UNKNOWN
        if sp.IsControl(i):
            return CONTROL
        return BYTE if sp.IsByte(i) else NORMAL

    def edit(meta: dict[str, Any], _: dict[str, Any]) -> None:
        n = len(meta["tokenizer.ggml.tokens"])
        scores = [0.0] * n
        types = list(meta["tokenizer.ggml.token_type"])
        for i in range(sp.GetPieceSize()):
            assert meta["tokenizer.ggml.tokens"][i] == sp.IdToPiece(i)
            scores[i], types[i] = float(sp.GetScore(i)), piece_type(i)
        types[SPM_VOCAB + 1] = USER_DEFINED  # "</line>"
        meta["tokenizer.ggml.scores"] = scores
        meta["tokenizer.ggml.token_type"] = types

    out = tmp_path_factory.mktemp("gguf") / "scores.gguf"
    return _rewrite(exported, out, edit)


def gguf_tokenizer(path: Path) -> Any:
    from tokenizers import Tokenizer

    with load_checkpoint(path) as ckpt:
        return Tokenizer.from_file(str(ckpt.tokenizer_file))


@pytest.mark.parametrize("source", ["exported", "with_model_scores"])
def test_gguf_sentencepiece_vocabulary_encodes_like_the_hf_tokenizer(
    request, hf_tokenizer, spm_model, source
):
    got = gguf_tokenizer(request.getfixturevalue(source))
    sp = spm.SentencePieceProcessor(model_file=str(spm_model))
    for text in MIXED:
        want = hf_tokenizer.encode(text)
        assert got.encode(text).ids == want.ids, text
        assert got.decode(want.ids) == hf_tokenizer.decode(want.ids), text
        if "<" not in text:  # SentencePiece itself knows no added tokens
            assert want.ids[1:] == sp.encode(text), text
    assert got.encode("hello", add_special_tokens=False).ids == sp.encode("hello")
    # BOS is added as add_bos_token says; the bytes of unseen characters fall back.
    ids = got.encode("🙂").ids
    assert ids[0] == 1 and all(got.id_to_token(i).startswith("<0x") for i in ids[2:])


def test_gguf_sentencepiece_metadata(exported):
    from bitnet_backend.checkpoints.gguf import open_gguf

    meta, _ = open_gguf(exported)
    assert meta["tokenizer.ggml.model"] == "llama"
    assert "tokenizer.ggml.merges" not in meta
    types = meta["tokenizer.ggml.token_type"]
    tokens = meta["tokenizer.ggml.tokens"]
    # transformers 5 leaves the BPE model's unk_token unset (byte fallback covers every
    # character), so "<unk>" is written as the special token it is listed as.
    assert (types[0], types[1], types[2]) == (CONTROL, CONTROL, CONTROL)
    assert tokens[:3] == ["<unk>", "<s>", "</s>"]
    assert tokens[3] == "<0x00>" and types[3] == BYTE
    assert tokens[SPM_VOCAB : SPM_VOCAB + 2] == ["<pad>", "</line>"]
    assert types[SPM_VOCAB : SPM_VOCAB + 2] == [CONTROL, USER_DEFINED]


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_gguf_of_a_sentencepiece_model_gives_the_checkpoints_tokens_and_logits(
    hf_dir, exported, backend
):
    import bitnet_backend as bb

    if backend == "cpu":
        pytest.importorskip("bitnet_backend._engine")
    with bb.load(hf_dir, backend=backend) as want, bb.load(exported, backend=backend) as got:
        for text in MIXED:
            assert got.tokenizer.encode(text) == want.tokenizer.encode(text), text
        ids = prompt_ids(SHAPE["vocab_size"], 12, seed=3, bos=1)
        np.testing.assert_array_equal(got.logits(ids), want.logits(ids))
        prompt = "The river ran past the old mill"
        a = got.generate(prompt, max_tokens=8, temperature=0)
        assert a == want.generate(prompt, max_tokens=8, temperature=0)


def _scores_cut(meta: dict[str, Any]) -> None:
    meta["tokenizer.ggml.scores"] = meta["tokenizer.ggml.scores"][:-1]


def _piece_twice(meta: dict[str, Any]) -> None:
    meta["tokenizer.ggml.tokens"][5] = meta["tokenizer.ggml.tokens"][6]


def _bos_outside(meta: dict[str, Any]) -> None:
    meta["tokenizer.ggml.bos_token_id"] = len(meta["tokenizer.ggml.tokens"]) + 3


def _score_nan(meta: dict[str, Any]) -> None:
    meta["tokenizer.ggml.scores"][7] = float("nan")


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (_scores_cut, "scores / token_type are missing or of different lengths"),
        (_piece_twice, "the same piece twice"),
        (_bos_outside, "bos_token_id"),
        (_score_nan, "finite numbers"),
    ],
)
def test_a_broken_sentencepiece_vocabulary_is_a_typed_error(exported, tmp_path, edit, reason):
    from bitnet_backend.errors import CheckpointError

    bad = _rewrite(exported, tmp_path / "bad.gguf", lambda meta, _: edit(meta))
    with pytest.raises(CheckpointError, match=reason) as info:
        load_checkpoint(bad)
    assert info.value.path == str(bad)
