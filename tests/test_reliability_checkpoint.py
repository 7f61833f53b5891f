"""Bad checkpoint files fail at load with a typed error naming the file and field at fault.

Cases that used to hang, crash or allocate gigabytes run in a child process with a time and
memory limit (tests/isolated.py).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from isolated import run_isolated

import bitnet_backend as bb
from bitnet_backend.checkpoints.safetensors_file import SafetensorsFile, write_safetensors
from bitnet_backend.errors import CheckpointError


@pytest.fixture
def ckpt(make_checkpoint: Callable[..., Path], tmp_path: Path) -> Path:
    return Path(shutil.copytree(make_checkpoint(), tmp_path / "ckpt"))


def edit_config(d: Path, **changes: Any) -> None:
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(changes)
    (d / "config.json").write_text(json.dumps(cfg))


def replace_tensor(d: Path, name: str, make: Callable[[np.ndarray], np.ndarray]) -> None:
    path = d / "model.safetensors"
    with SafetensorsFile(path) as st:
        arrays = {n: np.array(st.array(n)) for n in st.tensors}
        dtypes = {n: st.tensors[n].dtype for n in st.tensors}
    arrays[name] = make(arrays[name])
    from bitnet_backend.checkpoints.safetensors_file import TensorSpec

    write_safetensors(path, {n: TensorSpec.of(a, dtypes[n]) for n, a in arrays.items()})


def load_isolated(d: Path, memory: int) -> dict[str, Any]:
    """``bb.load(d)`` in a child process limited to ``memory`` bytes: its outcome."""
    return run_isolated(
        """
        import bitnet_backend as bb
        bb.load(path)
        """,
        path=str(d),
        timeout=60,
        memory=memory,
    )


def load_error(d: Path) -> CheckpointError:
    with pytest.raises(CheckpointError) as info:
        bb.load(d).close()
    return info.value


# -- files --------------------------------------------------------------------------------------


def test_fifo_weights_file_is_refused_without_blocking(ckpt: Path) -> None:
    (ckpt / "model.safetensors").unlink()
    os.mkfifo(ckpt / "model.safetensors")
    out = load_isolated(ckpt, memory=3 * 1024**3)
    assert out["error"] == "CheckpointError"
    assert "not a regular file" in out["message"]


def test_dangling_extra_weight_symlink_is_ignored(ckpt: Path) -> None:
    (ckpt / "old-shard.safetensors").symlink_to(ckpt / "gone.safetensors")
    with bb.load(ckpt) as m:
        assert m.generate("Hello", max_tokens=2, temperature=0).usage["completion_tokens"] >= 1


def test_dangling_weights_symlink_is_named(ckpt: Path) -> None:
    (ckpt / "model.safetensors").unlink()
    (ckpt / "model.safetensors").symlink_to(ckpt / "gone.safetensors")
    err = load_error(ckpt)
    assert "model.safetensors" in err.path and "dangling symbolic link" in err.reason


def test_deeply_nested_header_is_typed(ckpt: Path) -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    (ckpt / "model.safetensors").write_bytes(len(body).to_bytes(8, "little") + body)
    assert "nested too deeply" in load_error(ckpt).reason


# -- config.json --------------------------------------------------------------------------------


def test_huge_layer_count_fails_at_once_in_bounded_memory(ckpt: Path) -> None:
    edit_config(ckpt, num_hidden_layers=10**6)
    out = load_isolated(ckpt, memory=2 * 1024**3)
    assert out["error"] == "CheckpointError"
    assert "num_hidden_layers is 1000000 but the weights hold 2 layer(s)" in out["message"]


def test_fewer_layers_than_the_weights_hold_is_refused(ckpt: Path) -> None:
    edit_config(ckpt, num_hidden_layers=1)
    assert "num_hidden_layers is 1" in load_error(ckpt).reason


@pytest.mark.parametrize("value", [10**8, 10**9, -1, 0, 2**31, "abc", None, 1.5, True])
def test_max_position_embeddings_is_range_checked(ckpt: Path, value: object) -> None:
    edit_config(ckpt, max_position_embeddings=value)
    out = load_isolated(ckpt, memory=2 * 1024**3)
    assert out["error"] == "CheckpointError"
    assert "'max_position_embeddings' must be an integer in [1, 1048576]" in out["message"]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("rms_norm_eps", float("nan")),
        ("rms_norm_eps", float("inf")),
        ("rms_norm_eps", "1e-5"),
        ("rope_theta", float("nan")),
        ("rope_theta", 1e300),
    ],
)
def test_non_finite_floats_are_refused(ckpt: Path, key: str, value: object) -> None:
    edit_config(ckpt, **{key: value})
    err = load_error(ckpt)
    assert err.path.endswith("config.json")
    assert f"'{key}' must be a finite positive number" in err.reason


@pytest.mark.parametrize("value", ["abc", {"a": 1}, [510, "x"], -3, True])
def test_malformed_eos_token_id_is_typed(ckpt: Path, value: object) -> None:
    edit_config(ckpt, eos_token_id=value)
    assert "'eos_token_id' must be a token id" in load_error(ckpt).reason


@pytest.mark.parametrize("value", [10**6, 4096])
def test_out_of_range_bos_is_refused_at_load(ckpt: Path, value: int) -> None:
    edit_config(ckpt, bos_token_id=value)
    err = load_error(ckpt)
    assert err.path.endswith("config.json") and "bos_token_id" in err.reason
    assert "outside the vocabulary" in err.reason


def test_non_integer_bos_is_typed(ckpt: Path) -> None:
    edit_config(ckpt, bos_token_id="x")
    assert "'bos_token_id' must be a token id" in load_error(ckpt).reason


def test_deeply_nested_or_huge_number_config_is_typed(ckpt: Path) -> None:
    (ckpt / "config.json").write_text("[" * 200_000 + "]" * 200_000)
    assert "nested too deeply" in load_error(ckpt).reason
    (ckpt / "config.json").write_text('{"hidden_size": 1' + "0" * 5000 + "}")
    assert "malformed config.json" in load_error(ckpt).reason


def test_tokenizer_larger_than_the_model_is_refused(ckpt: Path) -> None:
    from bitnet_backend.testing import corpus, train_tokenizer_json

    vocab = json.loads((ckpt / "config.json").read_text())["vocab_size"]
    (ckpt / "tokenizer.json").write_text(train_tokenizer_json(corpus(), 2 * vocab))
    err = load_error(ckpt)
    assert err.path.endswith("tokenizer.json")
    assert f"model's vocab_size is {vocab}" in err.reason


def test_chat_template_of_the_wrong_type_or_encoding_is_typed(ckpt: Path) -> None:
    cfg_path = ckpt / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg_path.write_text(json.dumps({**cfg, "chat_template": 12345}))
    err = load_error(ckpt)
    assert err.path.endswith("tokenizer_config.json") and "chat_template must be" in err.reason
    cfg_path.write_text(json.dumps(cfg))
    (ckpt / "chat_template.jinja").write_bytes(b"{{ 'caf\xe9' }}")
    err = load_error(ckpt)
    assert err.path.endswith("chat_template.jinja") and "not UTF-8" in err.reason


# -- weight values ------------------------------------------------------------------------------


def _fill(bits: int) -> Callable[[np.ndarray], np.ndarray]:
    return lambda a: np.full_like(a, bits)


def _one(bits: int, at: int) -> Callable[[np.ndarray], np.ndarray]:
    def make(a: np.ndarray) -> np.ndarray:
        a.reshape(-1)[at] = bits
        return a

    return make


@pytest.mark.parametrize(
    ("name", "make", "what"),
    [
        ("model.embed_tokens.weight", _fill(0x7FC0), "NaN or infinite value at 0"),
        ("model.embed_tokens.weight", _one(0x7FC0, 77), "NaN or infinite value at 77"),
        ("model.norm.weight", _fill(0x7F80), "NaN or infinite value"),
        ("model.layers.1.input_layernorm.weight", _one(0xFF80, 3), "NaN or infinite value at 3"),
        ("model.layers.0.self_attn.q_proj.weight_scale", _fill(0x7FC0), "NaN or infinite"),
        ("model.layers.0.mlp.down_proj.weight_scale", _fill(0), "zero weight scale"),
        ("model.layers.0.mlp.down_proj.weight_scale", _fill(0x8000), "zero weight scale"),
    ],
)
def test_bad_weight_values_are_refused(
    ckpt: Path, name: str, make: Callable[[np.ndarray], np.ndarray], what: str
) -> None:
    replace_tensor(ckpt, name, make)
    err = load_error(ckpt)
    assert repr(name) in err.reason and what in err.reason


def test_bf16_max_embedding_is_finite_and_loads(ckpt: Path) -> None:
    replace_tensor(ckpt, "model.embed_tokens.weight", _one(0x7F7F, 5))
    bb.load(ckpt).close()


def test_released_pages_read_back_unchanged(ckpt: Path) -> None:
    name = "model.embed_tokens.weight"
    with SafetensorsFile(ckpt / "model.safetensors") as st:
        view = st.array(name)
        before = view.copy()
        st.release_pages(name)
        assert np.array_equal(view, before)
        st.release_pages("no such tensor")  # ignored
