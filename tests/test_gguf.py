"""GGUF import and export: every family in every ternary type, tokenizer and bad files.

The files are written by ``bitnet convert --to gguf`` (gguf_export) from generated Hugging
Face checkpoints, with the ``gguf`` package. I2_S stores a float32 multiplier per tensor and
TQ1_0 / TQ2_0 a float16 one: a round trip gives the source's logits exactly when the
multiplier survives that rounding (the bf16 weight_scale of autobitlinear checkpoints), and
otherwise the same ternary codes with a multiplier within float16 rounding.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from oracle import check_loose, check_strict, prompt_ids

from bitnet_backend.architecture import BITNET_1BITLLM, BITNET_B158, LLAMA_BITNET
from bitnet_backend.checkpoints.gguf import open_gguf
from bitnet_backend.checkpoints.hf import load_checkpoint
from bitnet_backend.checkpoints.ternary import linear_ternary
from bitnet_backend.errors import CheckpointError, UnsupportedModelError
from bitnet_backend.gguf_export import export_gguf

pytest.importorskip("gguf")

# TQ types need rows of a multiple of 256.
SHAPE = {"hidden_size": 256, "intermediate_size": 512, "num_attention_heads": 4}
FAMILIES: dict[str, dict[str, Any]] = {
    BITNET_B158: {"family": BITNET_B158, "shape": {**SHAPE, "num_key_value_heads": 2}},
    LLAMA_BITNET: {"family": LLAMA_BITNET, "shape": {**SHAPE, "num_key_value_heads": 2}},
    BITNET_1BITLLM: {
        "family": BITNET_1BITLLM,
        "dtype": "float16",
        "shape": {**SHAPE, "num_key_value_heads": 4},
    },
}
TYPES = ["tq2_0", "tq1_0", "i2_s"]
LINEARS = ["self_attn.q_proj", "self_attn.k_proj", "mlp.down_proj"]


# The tokenizer.json rebuilt from a GGUF is cached per user: keep it in tmp (conftest.py).
pytestmark = pytest.mark.usefixtures("gguf_tokenizer_cache_in_tmp")


@pytest.fixture(scope="module")
def hf_dir(make_checkpoint: Callable[..., Path]) -> Callable[[str], Path]:
    return lambda family: make_checkpoint(**FAMILIES[family])


@pytest.fixture(scope="module")
def gguf_file(
    hf_dir: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Path]:
    made: dict[tuple[str, str, str | None], Path] = {}

    def get(family: str, ggml_type: str, embedding_type: str | None = None) -> Path:
        key = (family, ggml_type, embedding_type)
        if key not in made:
            out = tmp_path_factory.mktemp("gguf") / f"{family}-{ggml_type}.gguf"
            made[key] = export_gguf(hf_dir(family), out, ggml_type, embedding_type=embedding_type)
        return made[key]

    return get


def logits(path: Path, backend: str, ids: list[int]) -> np.ndarray:
    if backend == "cpu":
        pytest.importorskip("bitnet_backend._engine")
        from bitnet_backend.backends import cpu as module
    else:
        from bitnet_backend.backends import reference as module  # type: ignore[no-redef]
    options = {"lm_head": "f32"} if backend == "cpu" else {}
    with load_checkpoint(path) as ckpt:
        engine = module.BACKEND.load(ckpt, n_threads=2, **options)
        try:
            return engine.logits(ids)
        finally:
            engine.close()


def ids_for(path: Path) -> list[int]:
    with load_checkpoint(path) as ckpt:
        return prompt_ids(ckpt.config.vocab_size, 12, seed=3, bos=ckpt.config.bos_token_id)


@pytest.mark.parametrize("ggml_type", TYPES)
@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_autobitlinear_round_trip_gives_the_same_logits(hf_dir, gguf_file, backend, ggml_type):
    src = hf_dir(BITNET_B158)
    ids = ids_for(src)
    got = logits(gguf_file(BITNET_B158, ggml_type), backend, ids)
    np.testing.assert_array_equal(got, logits(src, backend, ids))


@pytest.mark.parametrize("family", [LLAMA_BITNET, BITNET_1BITLLM])
def test_i2s_round_trip_of_divided_and_float_scales_matches_strictly(hf_dir, gguf_file, family):
    src = hf_dir(family)
    ids = ids_for(src)
    check_strict(logits(gguf_file(family, "i2_s"), "reference", ids), logits(src, "reference", ids))


@pytest.mark.parametrize("ggml_type", TYPES)
@pytest.mark.parametrize("family", list(FAMILIES))
def test_round_trip_keeps_every_ternary_code_and_the_scale(hf_dir, gguf_file, family, ggml_type):
    with (
        load_checkpoint(hf_dir(family)) as src,
        load_checkpoint(gguf_file(family, ggml_type)) as back,
    ):
        assert back.config.architecture == src.config.architecture
        assert back.config.head_dim == src.config.head_dim
        assert back.config.tie_word_embeddings == src.config.tie_word_embeddings
        for layer in range(src.config.num_hidden_layers):
            for lin in LINEARS:
                name = f"model.layers.{layer}.{lin}"
                w0, s0, mode0 = linear_ternary(src, name)
                w1, s1, mode1 = linear_ternary(back, name)
                np.testing.assert_array_equal(w1, w0)
                want = 1.0 / s0 if mode0 == "divide" else s0
                assert mode1 == "multiply"
                rel = 2.0**-11 if ggml_type.startswith("tq") else 1e-7
                assert s1 == pytest.approx(want, rel=rel)


@pytest.mark.parametrize("family", [LLAMA_BITNET, BITNET_1BITLLM])
def test_tq_round_trip_with_float16_multipliers_agrees_loosely(hf_dir, gguf_file, family):
    src = hf_dir(family)
    with load_checkpoint(src) as ckpt:
        c = ckpt.config
        prompts = [prompt_ids(c.vocab_size, 48, seed=s, bos=c.bos_token_id) for s in (1, 2)]
    got = np.concatenate([logits(gguf_file(family, "tq2_0"), "reference", p) for p in prompts])
    want = np.concatenate([logits(src, "reference", p) for p in prompts])
    assert np.mean(got.argmax(-1) == want.argmax(-1)) >= 0.9
    assert np.sqrt(np.mean((got - want) ** 2) / np.mean(want**2)) < 0.05


def test_llama_gguf_stores_q_and_k_rows_permuted_as_llama_cpp_does(hf_dir, gguf_file):
    from bitnet_backend.checkpoints import gguf_ternary

    path = gguf_file(LLAMA_BITNET, "i2_s")
    _, tensors = open_gguf(path)
    t = tensors["blk.0.attn_q.weight"]
    stored, _ = gguf_ternary.decode(t.data, (t.shape[0], t.shape[1]), t.ggml_type)
    with load_checkpoint(hf_dir(LLAMA_BITNET)) as src:
        w, _, _ = linear_ternary(src, "model.layers.0.self_attn.q_proj")
    heads, rows = src.config.num_attention_heads, w.shape[0]
    half = rows // heads // 2
    # Row 2j of a head holds what was row j, and row 2j+1 what was row half + j.
    np.testing.assert_array_equal(stored[0], w[0])
    np.testing.assert_array_equal(stored[1], w[half])
    np.testing.assert_array_equal(stored[2], w[1])
    assert not np.array_equal(stored, w)


def test_q8_0_embedding_loads_dequantized(hf_dir, gguf_file):
    src = hf_dir(BITNET_B158)
    path = gguf_file(BITNET_B158, "tq2_0", "q8_0")
    _, tensors = open_gguf(path)
    assert tensors["token_embd.weight"].ggml_type == 8
    with load_checkpoint(path) as ckpt, load_checkpoint(src) as orig:
        got = ckpt.tensor("model.embed_tokens.weight")
        assert got.dtype == "F32"
        want = orig.tensor("model.embed_tokens.weight").to_float32()
        # Q8_0: blocks of 32 values, step max|block| / 127 (stored as float16: up to 127
        # steps off by 2**-11 each), rounded to nearest.
        step = np.abs(want.reshape(-1, 32)).max(axis=1, keepdims=True) / 127
        err = np.abs(got.to_float32() - want).reshape(-1, 32)
        assert np.all(err <= step * 0.6) and not np.array_equal(got.to_float32(), want)
        c = ckpt.config
        # Enough positions for the loose rule (one near-tie flip in 200 is within it).
        prompts = [prompt_ids(c.vocab_size, 64, seed=s, bos=c.bos_token_id) for s in range(4)]
    check_loose(
        np.concatenate([logits(path, "cpu", p) for p in prompts]),
        np.concatenate([logits(path, "reference", p) for p in prompts]),
    )


# -- bb.load, tokenizer and chat template from the metadata ------------------------------------

CORPUS = [
    "The teacher reads a good story every day.",
    "héllo 你好 🤖\n\t naïve  spaces   and\ttabs",
    "Numbers 12, 345, 2024 and 3.14; code: def f(x): return x**2",
    "<|begin_of_text|>User: hi<|eot_id|>Assistant: ",
    "",
]


@pytest.mark.parametrize("family", [BITNET_B158, LLAMA_BITNET])
def test_bb_load_of_a_gguf_matches_its_checkpoint(hf_dir, gguf_file, family, tmp_path):
    import bitnet_backend as bb

    path = gguf_file(family, "i2_s")
    with (
        bb.load(hf_dir(family), backend="reference") as want,
        bb.load(path, backend="reference") as got,
    ):
        for text in CORPUS:
            assert got.tokenizer.encode(text) == want.tokenizer.encode(text), text
        ids = want.tokenizer.encode(CORPUS[0])
        assert got.tokenizer.decode(ids) == want.tokenizer.decode(ids)
        messages = [{"role": "user", "content": "Write a poem."}]
        assert got.apply_chat_template(messages) == want.apply_chat_template(messages)
        assert got.tokenizer.eos_token_ids == want.tokenizer.eos_token_ids
        a = got.generate(CORPUS[0], max_tokens=8, temperature=0)
        assert a == want.generate(CORPUS[0], max_tokens=8, temperature=0)
    # A directory holding one GGUF file loads it.
    shutil.copy(path, tmp_path / path.name)
    with bb.load(tmp_path, backend="reference") as from_dir:
        assert from_dir.checkpoint.path == tmp_path / path.name


def test_bitnet_convert_to_gguf_from_the_command_line(hf_dir, tmp_path, capsys):
    from bitnet_backend.cli import main

    out = tmp_path / "m.gguf"
    assert (
        main(["convert", str(hf_dir(BITNET_B158)), str(out), "--to", "gguf", "--type", "tq1_0"])
        == 0
    )
    assert str(out) in capsys.readouterr().out
    meta, tensors = open_gguf(out)
    assert meta["general.architecture"] == "bitnet-b1.58"
    assert tensors["blk.0.ffn_down.weight"].ggml_type == 34


# -- bad files: typed errors naming the file and the reason ------------------------------------


def test_a_directory_with_two_gguf_files_is_ambiguous(gguf_file, tmp_path):
    for t in ("tq2_0", "i2_s"):
        shutil.copy(gguf_file(BITNET_B158, t), tmp_path)
    with pytest.raises(CheckpointError, match="several GGUF files"):
        load_checkpoint(tmp_path)


def test_truncated_gguf_names_the_file_and_tensor(gguf_file, tmp_path):
    data = gguf_file(BITNET_B158, "tq2_0").read_bytes()
    bad = tmp_path / "cut.gguf"
    bad.write_bytes(data[: len(data) - 1000])
    with pytest.raises(CheckpointError, match="truncated") as info:
        load_checkpoint(bad)
    assert info.value.path == str(bad)


def test_garbage_is_not_a_gguf_file(tmp_path):
    bad = tmp_path / "x.gguf"
    bad.write_bytes(b"GGUF" + bytes(range(60)))
    with pytest.raises(CheckpointError, match="not a readable GGUF") as info:
        load_checkpoint(bad)
    assert info.value.path == str(bad)


def _rewrite(src: Path, out: Path, edit: Callable[[dict[str, Any], dict[str, Any]], None]) -> Path:
    """Copy a GGUF file through the gguf writer after ``edit(metadata, tensors)``."""
    import gguf

    meta, tensors = open_gguf(src)
    arrays: dict[str, Any] = {
        n: (t.ggml_type, t.shape, np.array(t.data)) for n, t in tensors.items()
    }
    edit(meta, arrays)
    writer = gguf.GGUFWriter(out, str(meta["general.architecture"]))
    writer.kv_data[0].clear()
    for key, value in meta.items():
        if isinstance(value, list):
            writer.add_array(key, value)
        elif isinstance(value, str):
            writer.add_string(key, value)
        elif isinstance(value, (bool, np.bool_)):
            writer.add_bool(key, bool(value))
        elif isinstance(value, (float, np.floating)):
            writer.add_float32(key, float(value))
        else:
            writer.add_uint32(key, int(value))
    for name, (ggml_type, shape, data) in arrays.items():
        if ggml_type in (0, 1):
            writer.add_tensor(
                name, data.view(np.float32 if ggml_type == 0 else np.float16).reshape(shape)
            )
        else:
            writer.add_tensor(name, data.view(np.int8), shape, ggml_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def test_unknown_gguf_architecture_is_refused(gguf_file, tmp_path):
    def edit(meta: dict[str, Any], _: dict[str, Any]) -> None:
        meta["general.architecture"] = "qwen2"

    bad = _rewrite(gguf_file(LLAMA_BITNET, "i2_s"), tmp_path / "q.gguf", edit)
    with pytest.raises(UnsupportedModelError, match="unknown GGUF architecture 'qwen2'") as info:
        load_checkpoint(bad)
    assert info.value.path == str(bad)


def test_float_linear_in_a_gguf_is_an_unsupported_tensor_type(gguf_file, tmp_path):
    def edit(_: dict[str, Any], arrays: dict[str, Any]) -> None:
        _, shape, _ = arrays["blk.1.ffn_up.weight"]
        arrays["blk.1.ffn_up.weight"] = (1, shape, np.zeros(shape, dtype=np.float16))

    bad = _rewrite(gguf_file(LLAMA_BITNET, "i2_s"), tmp_path / "f.gguf", edit)
    with pytest.raises(UnsupportedModelError, match=r"blk\.1\.ffn_up\.weight.*F16"):
        load_checkpoint(bad)


def test_gguf_shapes_inconsistent_with_metadata_are_refused(gguf_file, tmp_path):
    def edit(meta: dict[str, Any], _: dict[str, Any]) -> None:
        meta["llama.feed_forward_length"] = 768

    bad = _rewrite(gguf_file(LLAMA_BITNET, "i2_s"), tmp_path / "s.gguf", edit)
    with pytest.raises(CheckpointError, match="has shape") as info:
        load_checkpoint(bad)
    assert info.value.path == str(bad)


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        ("t5", r"tokenizer\.ggml\.model 't5'"),
        # A SentencePiece vocabulary needs its scores (this file has merges instead).
        ("llama", r"tokenizer\.ggml\.tokens / scores / token_type"),
    ],
)
def test_unknown_or_incomplete_vocabularies_are_refused_by_name(gguf_file, tmp_path, model, reason):
    def edit(meta: dict[str, Any], _: dict[str, Any]) -> None:
        meta["tokenizer.ggml.model"] = model

    bad = _rewrite(gguf_file(BITNET_B158, "i2_s"), tmp_path / "v.gguf", edit)
    with pytest.raises(UnsupportedModelError, match=reason):
        load_checkpoint(bad)


def test_gguf_metadata_describes_the_source(hf_dir, gguf_file):
    meta, _ = open_gguf(gguf_file(LLAMA_BITNET, "tq2_0"))
    cfg = json.loads((hf_dir(LLAMA_BITNET) / "config.json").read_text())
    assert meta["general.architecture"] == "llama"
    assert meta["llama.embedding_length"] == cfg["hidden_size"]
    assert meta["llama.attention.head_count_kv"] == cfg["num_key_value_heads"]
    assert meta["general.file_type"] == 37


def test_one_gguf_file_of_a_hub_repo_loads_offline(gguf_file, tmp_path, monkeypatch):
    import bitnet_backend as bb
    from bitnet_backend.checkpoints.hub import parse_repo_file
    from bitnet_backend.testing import write_hub_cache

    repo = tmp_path / "repo"
    repo.mkdir()
    for t in ("tq2_0", "i2_s"):
        shutil.copy(gguf_file(BITNET_B158, t), repo / f"model-{t}.gguf")
    cache = tmp_path / "hf" / "hub"
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    write_hub_cache(cache, "bitnet-tests/tiny-gguf", repo)
    assert parse_repo_file("bitnet-tests/tiny-gguf/model-i2_s.gguf@main") == (
        "bitnet-tests/tiny-gguf",
        "model-i2_s.gguf",
        "main",
    )
    assert parse_repo_file("bitnet-tests/tiny-gguf") is None
    with bb.load("bitnet-tests/tiny-gguf/model-i2_s.gguf", backend="reference") as model:
        assert model.checkpoint.path.name == "model-i2_s.gguf"
        assert model.config.architecture.family == BITNET_B158


def test_bitnet_info_describes_a_gguf_file(gguf_file, capsys):
    from bitnet_backend.cli import main

    path = gguf_file(LLAMA_BITNET, "i2_s")
    assert main(["info", str(path), "--backend", "reference", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["family"] == LLAMA_BITNET
    assert info["format"] == "GGUF I2_S (llama; BF16 x2, F32 x5)"
    assert info["engine"]["weight_bytes"] > 0


def test_the_default_model_round_trips_through_an_i2s_gguf(tmp_path):
    import bitnet_backend as bb
    from bitnet_backend.model import DEFAULT_MODEL_DIR
    from bitnet_backend.testing import corpus

    path = export_gguf(DEFAULT_MODEL_DIR, tmp_path / "default.gguf", "i2_s")
    with (
        bb.load(DEFAULT_MODEL_DIR, backend="reference") as want,
        bb.load(path, backend="reference") as got,
    ):
        texts = [*corpus(), *CORPUS, "<|eot_id|><|end_of_text|> trailing  "]
        for text in texts:
            assert got.tokenizer.encode(text) == want.tokenizer.encode(text), text
        chat = [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is the capital of France?"},
        ]
        assert got.apply_chat_template(chat) == want.apply_chat_template(chat)
        ids = want.tokenizer.encode(CORPUS[0])
        np.testing.assert_array_equal(got.logits(ids), want.logits(ids))


def test_gguf_linears_are_decoded_on_read_and_not_kept(gguf_file):
    with load_checkpoint(gguf_file(LLAMA_BITNET, "tq2_0")) as ckpt:
        ref = ckpt.tensor("model.layers.0.mlp.up_proj.weight")
        first, second = ref.data, ref.data  # decoded on each read: no copy kept
        assert first is not second
        np.testing.assert_array_equal(first, second)
        assert first.dtype == np.uint8 and first.shape == ref.shape
        # Float tables stay views on the file mapping.
        embed = ckpt.tensor("model.embed_tokens.weight")
        assert embed.data is embed.data and not embed.data.flags.owndata


def test_q6_k_embedding_loads_as_the_gguf_package_dequantizes_it(gguf_file, tmp_path):
    import gguf

    q6 = gguf.GGMLQuantizationType.Q6_K
    rng = np.random.default_rng(11)

    def edit(_: dict[str, Any], arrays: dict[str, Any]) -> None:
        _, shape, _ = arrays["token_embd.weight"]
        blocks = rng.integers(0, 256, size=(shape[0] * shape[1] // 256, 210), dtype=np.uint8)
        # Small sub-block scales and block scale: embedding-sized values.
        blocks[:, 192:208] = rng.integers(-8, 9, size=(blocks.shape[0], 16)).astype(np.int8)
        blocks[:, 208:210] = np.array([0.001], dtype=np.float16).view(np.uint8)
        arrays["token_embd.weight"] = (int(q6), shape, blocks.reshape(shape[0], -1))

    path = _rewrite(gguf_file(BITNET_B158, "i2_s"), tmp_path / "q6.gguf", edit)
    _, tensors = open_gguf(path)
    raw = tensors["token_embd.weight"]
    want = gguf.quants.dequantize(np.asarray(raw.data).reshape(raw.shape[0], -1), q6)
    with load_checkpoint(path) as ckpt:
        got = ckpt.tensor("model.embed_tokens.weight")
        assert got.dtype == "F32"
        np.testing.assert_array_equal(got.data, want)
        assert 0 < np.abs(want).max() < 1
    ids = ids_for(path)
    assert np.isfinite(logits(path, "cpu", ids)).all()


def test_export_refuses_what_it_cannot_write(hf_dir, gguf_file, make_checkpoint, tmp_path):
    from bitnet_backend.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="--type"):
        export_gguf(hf_dir(BITNET_B158), tmp_path / "x.gguf", "q4_0")
    with pytest.raises(InvalidParameterError, match="already a GGUF"):
        export_gguf(gguf_file(BITNET_B158, "i2_s"), tmp_path / "y.gguf")
    # The default test shape has rows of 64: not whole TQ blocks.
    with pytest.raises(UnsupportedModelError, match="multiple of 256"):
        export_gguf(make_checkpoint(), tmp_path / "z.gguf", "tq2_0")


def test_special_token_ids_outside_the_vocabulary_are_refused(gguf_file, tmp_path):
    def edit(meta: dict[str, Any], _: dict[str, Any]) -> None:
        meta["tokenizer.ggml.eos_token_id"] = len(meta["tokenizer.ggml.tokens"]) + 5

    bad = _rewrite(gguf_file(BITNET_B158, "i2_s"), tmp_path / "e.gguf", edit)
    with pytest.raises(CheckpointError, match="eos_token_id") as info:
        load_checkpoint(bad)
    assert info.value.path == str(bad)


def test_corrupted_gguf_bytes_give_typed_errors_never_a_crash(gguf_file, tmp_path):
    from bitnet_backend.errors import BitnetError

    src = gguf_file(BITNET_B158, "i2_s").read_bytes()
    rng = np.random.default_rng(0)
    bad = tmp_path / "f.gguf"
    for i in range(45):
        data = bytearray(src)
        if i % 3 == 0:
            data = data[: int(rng.integers(0, len(data)))]
        else:
            # Flip bytes in the header / metadata (first 20 kB) or anywhere.
            span = 20000 if i % 3 == 1 else len(data)
            for _ in range(int(rng.integers(1, 20))):
                data[int(rng.integers(0, span))] = int(rng.integers(0, 256))
        bad.write_bytes(data)
        try:
            load_checkpoint(bad).close()
        except BitnetError as exc:
            assert str(bad) in str(exc)


def test_testing_writes_a_gguf_from_the_command_line(tmp_path, capsys):
    from bitnet_backend.testing import main

    out = tmp_path / "t.gguf"
    argv = ["--family", LLAMA_BITNET, "--set", "hidden_size=256", "--set", "intermediate_size=512"]
    assert main([*argv, "--gguf", "tq1_0", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    with load_checkpoint(out) as ckpt:
        assert ckpt.config.architecture.family == LLAMA_BITNET
        assert ckpt.format.startswith("GGUF TQ1_0 (llama;")
