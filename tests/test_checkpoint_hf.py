"""Loading Hugging Face checkpoint directories: validation errors name the file at fault."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from bitnet_backend.checkpoints import load_checkpoint
from bitnet_backend.checkpoints.hf import required_tensors
from bitnet_backend.checkpoints.safetensors_file import SafetensorsFile, write_safetensors
from bitnet_backend.errors import CheckpointError, UnsupportedModelError


@pytest.fixture
def ckpt(make_checkpoint, tmp_path: Path) -> Path:
    """A private, writable copy of the default tiny checkpoint."""
    return Path(shutil.copytree(make_checkpoint(), tmp_path / "ckpt"))


@pytest.fixture
def sharded(make_checkpoint, tmp_path: Path) -> Path:
    return Path(shutil.copytree(make_checkpoint(shards=3), tmp_path / "sharded"))


def load_error(path: Path) -> CheckpointError:
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    return info.value


def rewrite_tensors(path: Path, change) -> None:
    """Rewrite a safetensors file after ``change(dict_of_arrays)`` (BF16 kept as BF16)."""
    from bitnet_backend.checkpoints.safetensors_file import TensorSpec

    with SafetensorsFile(path) as st:
        arrays = {
            n: TensorSpec.of(np.array(st.array(n)), info.dtype) for n, info in st.tensors.items()
        }
    change(arrays)
    write_safetensors(path, arrays, {"format": "pt"})


def test_loads_tiny_checkpoint_with_every_required_tensor(make_checkpoint) -> None:
    with load_checkpoint(make_checkpoint()) as ck:
        assert ck.config.hidden_size == 64
        assert ck.tokenizer_file.name == "tokenizer.json"
        assert ck.tokenizer_config["bos_token"] == "<|begin_of_text|>"
        for name, (shape, dtypes) in required_tensors(ck.config).items():
            ref = ck.tensor(name)
            assert ref.shape == shape and ref.dtype in dtypes and ref.data.shape == shape
        emb = ck.tensor("model.embed_tokens.weight")
        assert emb.dtype == "BF16" and emb.data.dtype == np.uint16
        assert not emb.data.flags.owndata and not emb.data.flags.writeable


def test_eos_ids_merge_generation_config_list_with_config(make_checkpoint) -> None:
    path = make_checkpoint()
    gen = json.loads((path / "generation_config.json").read_text())
    cfg = json.loads((path / "config.json").read_text())
    with load_checkpoint(path) as ck:
        assert ck.eos_token_ids == tuple(gen["eos_token_id"])
        assert cfg["eos_token_id"] in ck.eos_token_ids
        assert ck.generation_config["eos_token_id"] == gen["eos_token_id"]


def test_generation_config_is_optional_and_eos_falls_back_to_config(ckpt: Path) -> None:
    (ckpt / "generation_config.json").unlink()
    cfg = json.loads((ckpt / "config.json").read_text())
    with load_checkpoint(ckpt) as ck:
        assert ck.generation_config == {}
        assert ck.eos_token_ids == (cfg["eos_token_id"],)


def test_generation_config_with_single_int_eos(ckpt: Path) -> None:
    (ckpt / "generation_config.json").write_text('{"eos_token_id": 7}')
    cfg = json.loads((ckpt / "config.json").read_text())
    with load_checkpoint(ckpt) as ck:
        assert ck.eos_token_ids == (7, cfg["eos_token_id"])


def test_bad_eos_in_generation_config_is_rejected(ckpt: Path) -> None:
    (ckpt / "generation_config.json").write_text('{"eos_token_id": "x"}')
    assert load_error(ckpt).path == str(ckpt / "generation_config.json")


def test_missing_tensor_lookup_raises_checkpoint_error(make_checkpoint) -> None:
    with load_checkpoint(make_checkpoint()) as ck, pytest.raises(CheckpointError, match="nope"):
        ck.tensor("nope")


def test_sharded_tensors_equal_single_file_tensors(make_checkpoint) -> None:
    with (
        load_checkpoint(make_checkpoint()) as one,
        load_checkpoint(make_checkpoint(shards=3)) as many,
    ):
        assert len({r.file for r in many.tensors.values()}) == 3
        assert one.tensors.keys() == many.tensors.keys()
        for name, ref in one.tensors.items():
            other = many.tensor(name)
            assert (ref.dtype, ref.shape) == (other.dtype, other.shape)
            np.testing.assert_array_equal(ref.data, other.data)


def test_progress_bar_option_loads_the_same(make_checkpoint, capsys) -> None:
    with load_checkpoint(make_checkpoint(shards=2), progress=True) as ck:
        assert "model.norm.weight" in ck.tensors
    assert "Mapping shards" in capsys.readouterr().err


def test_missing_directory_is_rejected(tmp_path: Path) -> None:
    err = load_error(tmp_path / "absent")
    assert err.path == str(tmp_path / "absent") and "does not exist" in err.reason


def test_file_instead_of_directory_is_rejected(ckpt: Path) -> None:
    err = load_error(ckpt / "config.json")
    assert err.path == str(ckpt / "config.json") and "not a checkpoint directory" in err.reason


def test_missing_config_is_rejected(ckpt: Path) -> None:
    (ckpt / "config.json").unlink()
    assert load_error(ckpt).path == str(ckpt / "config.json")


def test_malformed_config_json_is_rejected(ckpt: Path) -> None:
    (ckpt / "config.json").write_text('{"hidden_size": 64,')
    err = load_error(ckpt)
    assert err.path == str(ckpt / "config.json") and "malformed" in err.reason


def test_unknown_architecture_is_rejected(ckpt: Path) -> None:
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg.update(architectures=["MistralForCausalLM"], model_type="mistral")
    (ckpt / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UnsupportedModelError, match="MistralForCausalLM") as info:
        load_checkpoint(ckpt)
    assert info.value.path == str(ckpt / "config.json")


def test_llama_without_the_bitnet_quantization_config_is_rejected(ckpt: Path) -> None:
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg.update(architectures=["LlamaForCausalLM"], model_type="llama")
    del cfg["quantization_config"]
    (ckpt / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UnsupportedModelError, match="not a ternary model") as info:
        load_checkpoint(ckpt)
    assert info.value.path == str(ckpt / "config.json")


@pytest.mark.parametrize("name", ["tokenizer.json", "tokenizer_config.json"])
def test_missing_tokenizer_file_is_rejected(ckpt: Path, name: str) -> None:
    (ckpt / name).unlink()
    err = load_error(ckpt)
    assert err.path == str(ckpt / name) and "missing" in err.reason


def test_malformed_tokenizer_config_is_rejected(ckpt: Path) -> None:
    (ckpt / "tokenizer_config.json").write_text("[1, 2]")
    assert load_error(ckpt).path == str(ckpt / "tokenizer_config.json")


def test_missing_safetensors_is_rejected(ckpt: Path) -> None:
    (ckpt / "model.safetensors").unlink()
    (ckpt / "pytorch_model.bin").write_bytes(b"")
    err = load_error(ckpt)
    assert err.path == str(ckpt)
    assert "model.safetensors" in err.reason and "pytorch_model.bin" in err.reason


def test_bad_header_length_names_the_file(ckpt: Path) -> None:
    st = ckpt / "model.safetensors"
    data = bytearray(st.read_bytes())
    data[:8] = (len(data) * 2).to_bytes(8, "little")
    st.write_bytes(bytes(data))
    err = load_error(ckpt)
    assert err.path == str(st) and "header length" in err.reason


def test_header_not_json_names_the_file(ckpt: Path) -> None:
    st = ckpt / "model.safetensors"
    data = bytearray(st.read_bytes())
    data[8] = ord("x")
    st.write_bytes(bytes(data))
    err = load_error(ckpt)
    assert err.path == str(st) and "JSON" in err.reason


def test_offsets_out_of_range_name_the_file(ckpt: Path) -> None:
    st = ckpt / "model.safetensors"
    raw = st.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    entry = header["model.norm.weight"]
    size = entry["data_offsets"][1] - entry["data_offsets"][0]
    entry["data_offsets"] = [10**9, 10**9 + size]
    new = json.dumps(header).encode()
    new += b" " * (-len(new) % 8)
    st.write_bytes(len(new).to_bytes(8, "little") + new + raw[8 + n :])
    err = load_error(ckpt)
    assert err.path == str(st) and "out of range" in err.reason


def test_truncated_safetensors_names_the_file(ckpt: Path) -> None:
    st = ckpt / "model.safetensors"
    st.write_bytes(st.read_bytes()[:-100])
    err = load_error(ckpt)
    assert err.path == str(st) and "truncated" in err.reason


def test_dtype_mismatch_names_tensor_and_file(ckpt: Path) -> None:
    st = ckpt / "model.safetensors"
    name = "model.layers.0.mlp.up_proj.weight"

    def to_int8(arrays) -> None:
        arrays[name] = np.zeros(arrays[name].shape, dtype=np.int8)

    rewrite_tensors(st, to_int8)
    err = load_error(ckpt)
    assert err.path == str(st) and name in err.reason and "I8" in err.reason


def test_float_weights_in_a_packed_checkpoint_are_rejected(ckpt: Path) -> None:
    st = ckpt / "model.safetensors"
    name = "model.layers.1.self_attn.q_proj.weight"

    def to_float(arrays) -> None:
        arrays[name] = np.zeros((64, 64), dtype=np.float32)

    rewrite_tensors(st, to_float)
    err = load_error(ckpt)
    assert err.path == str(st) and name in err.reason


def test_shape_mismatch_names_tensor_and_file(ckpt: Path) -> None:
    st = ckpt / "model.safetensors"
    name = "model.layers.1.mlp.ffn_sub_norm.weight"

    def shrink(arrays) -> None:
        arrays[name] = np.zeros(7, dtype=np.float32)

    rewrite_tensors(st, shrink)
    err = load_error(ckpt)
    assert err.path == str(st) and name in err.reason and "[160]" in err.reason


def test_weight_scale_must_hold_one_value(ckpt: Path) -> None:
    st = ckpt / "model.safetensors"
    name = "model.layers.0.self_attn.v_proj.weight_scale"

    def widen(arrays) -> None:
        arrays[name] = np.ones(2, dtype=np.float32)

    rewrite_tensors(st, widen)
    err = load_error(ckpt)
    assert err.path == str(st) and name in err.reason


def test_missing_tensor_is_rejected(ckpt: Path) -> None:
    name = "model.layers.1.self_attn.o_proj.weight_scale"
    rewrite_tensors(ckpt / "model.safetensors", lambda arrays: arrays.pop(name))
    err = load_error(ckpt)
    assert err.path == str(ckpt / "model.safetensors") and name in err.reason


def test_untied_checkpoint_without_lm_head_is_rejected(ckpt: Path) -> None:
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["tie_word_embeddings"] = False
    (ckpt / "config.json").write_text(json.dumps(cfg))
    err = load_error(ckpt)
    assert "lm_head.weight" in err.reason


def test_missing_shard_is_rejected(sharded: Path) -> None:
    shard = sharded / "model-00002-of-00003.safetensors"
    shard.unlink()
    err = load_error(sharded)
    assert err.path == str(shard) and "missing" in err.reason


def test_tensor_absent_from_its_shard_is_rejected(sharded: Path) -> None:
    index_path = sharded / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    name = "model.norm.weight"
    wrong = next(f for f in set(index["weight_map"].values()) if f != index["weight_map"][name])
    index["weight_map"][name] = wrong
    index_path.write_text(json.dumps(index))
    err = load_error(sharded)
    assert err.path == str(sharded / wrong) and name in err.reason


def test_tensor_missing_from_index_is_rejected(sharded: Path) -> None:
    index_path = sharded / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    del index["weight_map"]["model.layers.0.input_layernorm.weight"]
    index_path.write_text(json.dumps(index))
    err = load_error(sharded)
    assert err.path == str(index_path) and "input_layernorm" in err.reason


def test_shard_names_cannot_leave_the_directory(sharded: Path) -> None:
    index_path = sharded / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    index["weight_map"]["model.norm.weight"] = "../elsewhere.safetensors"
    index_path.write_text(json.dumps(index))
    assert load_error(sharded).path == str(index_path)


def test_malformed_index_is_rejected(sharded: Path) -> None:
    index_path = sharded / "model.safetensors.index.json"
    index_path.write_text('{"weight_map": []}')
    assert load_error(sharded).path == str(index_path)


def test_head_layout_unsupported_by_the_reference_is_rejected(ckpt: Path) -> None:
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["head_dim"] = 8  # 4 heads x 8 != hidden 64: attn_sub_norm could not apply
    (ckpt / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UnsupportedModelError):
        load_checkpoint(ckpt)


def test_views_stay_valid_after_close(make_checkpoint) -> None:
    ck = load_checkpoint(make_checkpoint())
    data = ck.tensor("model.norm.weight").data
    expected = np.array(data)
    ck.close()
    assert ck.tensors == {}
    np.testing.assert_array_equal(data, expected)
