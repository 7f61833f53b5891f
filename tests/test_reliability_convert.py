"""Converted checkpoints carry checksums of their engine-layout tensors; load verifies them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from backends import cpu_built

import bitnet_backend as bb
from bitnet_backend.checkpoints.integrity import METADATA_KEY
from bitnet_backend.checkpoints.safetensors_file import (
    SafetensorsFile,
    TensorSpec,
    write_safetensors,
)
from bitnet_backend.errors import CheckpointError

pytestmark = pytest.mark.skipif(not cpu_built(), reason="bitnet_backend._engine is not built")


@pytest.fixture
def converted(make_checkpoint: Callable[..., Path], tmp_path: Path) -> Path:
    from bitnet_backend.convert import convert

    return convert(make_checkpoint(), tmp_path / "converted")


def flip_byte(path: Path, tensor: str, index: int = 0) -> None:
    with SafetensorsFile(path) as st:
        offset = st.tensors[tensor].begin + index
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ 0x01]))


def test_convert_writes_checksums_and_a_clean_load_passes(converted: Path) -> None:
    with SafetensorsFile(converted / "model.safetensors") as st:
        sums = json.loads(st.metadata[METADATA_KEY])
        assert set(sums) == {n for n in st.tensors if n.startswith("bitnet.")}
    with bb.load(converted) as m:
        assert m.generate("Hello", max_tokens=2, temperature=0).usage["completion_tokens"] >= 1


@pytest.mark.parametrize(
    "tensor", ["bitnet.arena", "bitnet.head.codes", "bitnet.layers.1.down.scales"]
)
def test_a_tampered_engine_tensor_is_refused(converted: Path, tensor: str) -> None:
    flip_byte(converted / "model.safetensors", tensor, index=1)
    with pytest.raises(CheckpointError, match=f"tensor '{tensor}' does not match the checksum"):
        bb.load(converted)


def test_converted_checkpoint_without_checksums_still_loads(converted: Path) -> None:
    path = converted / "model.safetensors"
    with SafetensorsFile(path) as st:
        arrays = {n: st.array(n).copy() for n in st.tensors}
        dtypes = {n: st.tensors[n].dtype for n in st.tensors}
        metadata = {k: v for k, v in st.metadata.items() if k != METADATA_KEY}
    write_safetensors(path, {n: TensorSpec.of(a, dtypes[n]) for n, a in arrays.items()}, metadata)
    bb.load(converted).close()


def test_malformed_checksum_metadata_is_typed(converted: Path) -> None:
    path = converted / "model.safetensors"
    with SafetensorsFile(path) as st:
        arrays = {n: st.array(n).copy() for n in st.tensors}
        dtypes = {n: st.tensors[n].dtype for n in st.tensors}
        metadata = {**st.metadata, METADATA_KEY: "[" * 100_000}
    write_safetensors(path, {n: TensorSpec.of(a, dtypes[n]) for n, a in arrays.items()}, metadata)
    with pytest.raises(CheckpointError, match="is not a JSON object"):
        bb.load(converted)


def test_verify_false_skips_the_checks(converted: Path) -> None:
    flip_byte(converted / "model.safetensors", "bitnet.layers.0.qkv.scales", index=1)
    bb.load(converted, verify=False).close()


def test_convert_into_a_file_is_typed(make_checkpoint: Callable[..., Path], tmp_path: Path) -> None:
    from bitnet_backend.convert import convert

    (tmp_path / "afile").write_text("x")
    with pytest.raises(bb.InvalidParameterError, match="cannot create the output directory"):
        convert(make_checkpoint(), tmp_path / "afile")
