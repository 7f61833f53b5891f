"""The safetensors reader: zero-copy views, and strict rejection of malformed files."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from bitnet_backend.checkpoints.safetensors_file import (
    SafetensorsFile,
    TensorSpec,
    write_safetensors,
)
from bitnet_backend.errors import CheckpointError


def raw_file(path: Path, header: object, data: bytes = b"", length: int | None = None) -> Path:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    n = len(raw) if length is None else length
    path.write_bytes(struct.pack("<Q", n) + raw + data)
    return path


def assert_rejected(path: Path, *words: str) -> None:
    with pytest.raises(CheckpointError) as info:
        SafetensorsFile(path)
    assert info.value.path == str(path)
    for w in words:
        assert w in info.value.reason


def test_written_file_reads_back_as_zero_copy_views(tmp_path: Path) -> None:
    f32 = np.arange(12, dtype=np.float32).reshape(3, 4)
    u8 = np.arange(5, dtype=np.uint8)
    bf16 = np.array([0x3F80, 0x4000], dtype=np.uint16)
    path = tmp_path / "a.safetensors"
    write_safetensors(path, {"u8": u8, "f": f32, "b": TensorSpec.of(bf16, "BF16")}, {"k": "v"})
    with SafetensorsFile(path) as st:
        assert st.metadata == {"k": "v"}
        assert st.tensors["b"].dtype == "BF16"
        a = st.array("f")
        np.testing.assert_array_equal(a, f32)
        np.testing.assert_array_equal(st.array("u8"), u8)
        np.testing.assert_array_equal(st.array("b"), bf16)
        assert not a.flags.writeable
        assert not a.flags.owndata  # a view on the mapping, not a copy
        # Wider items first keep every tensor aligned to its item size.
        assert st.tensors["f"].begin % 4 == 0 and st.tensors["b"].begin % 2 == 0


def test_reference_library_reads_our_file(tmp_path: Path) -> None:
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    path = tmp_path / "a.safetensors"
    x = np.random.default_rng(0).standard_normal((7, 3)).astype(np.float32)
    write_safetensors(path, {"x": x, "y": np.arange(3, dtype=np.uint8)}, {"format": "pt"})
    loaded = safetensors_numpy.load_file(str(path))
    np.testing.assert_array_equal(loaded["x"], x)


def test_we_read_the_reference_library_file(tmp_path: Path) -> None:
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    path = tmp_path / "ref.safetensors"
    x = np.random.default_rng(1).standard_normal((4, 5)).astype(np.float16)
    safetensors_numpy.save_file({"x": x, "i": np.arange(6, dtype=np.int32)}, str(path))
    with SafetensorsFile(path) as st:
        np.testing.assert_array_equal(st.array("x"), x)
        np.testing.assert_array_equal(st.array("i"), np.arange(6, dtype=np.int32))


def test_views_outlive_close(tmp_path: Path) -> None:
    path = tmp_path / "a.safetensors"
    write_safetensors(path, {"x": np.arange(4, dtype=np.float32)})
    st = SafetensorsFile(path)
    view = st.array("x")
    st.close()
    np.testing.assert_array_equal(view, np.arange(4, dtype=np.float32))
    with pytest.raises(CheckpointError, match="closed"):
        st.array("x")


def test_missing_file_is_rejected(tmp_path: Path) -> None:
    assert_rejected(tmp_path / "nope.safetensors", "missing")


def test_file_shorter_than_the_length_prefix_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "x.safetensors"
    path.write_bytes(b"\x01\x02")
    assert_rejected(path, "too small")


def test_header_length_past_end_of_file_is_rejected(tmp_path: Path) -> None:
    assert_rejected(raw_file(tmp_path / "x.safetensors", {}, length=1000), "header length 1000")


def test_absurd_header_length_is_rejected(tmp_path: Path) -> None:
    assert_rejected(raw_file(tmp_path / "x.safetensors", {}, length=1 << 60), "absurd")


def test_header_that_is_not_json_is_rejected(tmp_path: Path) -> None:
    assert_rejected(raw_file(tmp_path / "x.safetensors", b"{not json"), "not valid JSON")


def test_header_that_is_not_utf8_is_rejected(tmp_path: Path) -> None:
    assert_rejected(raw_file(tmp_path / "x.safetensors", b"\xff\xfe{}"), "not valid JSON")


def test_header_that_is_a_list_is_rejected(tmp_path: Path) -> None:
    assert_rejected(raw_file(tmp_path / "x.safetensors", []), "JSON object")


def test_duplicate_tensor_names_are_rejected(tmp_path: Path) -> None:
    entry = '{"dtype":"U8","shape":[1],"data_offsets":[0,1]}'
    header = f'{{"a":{entry},"a":{entry}}}'.encode()
    assert_rejected(raw_file(tmp_path / "x.safetensors", header, b"\0"), "duplicate")


@pytest.mark.parametrize("missing", ["dtype", "shape", "data_offsets"])
def test_entry_missing_a_field_is_rejected(tmp_path: Path, missing: str) -> None:
    entry = {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}
    del entry[missing]
    assert_rejected(raw_file(tmp_path / "x.safetensors", {"t": entry}, b"\0\0"), missing)


def test_unknown_dtype_is_rejected(tmp_path: Path) -> None:
    header = {"t": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 2]}}
    assert_rejected(raw_file(tmp_path / "x.safetensors", header, b"\0\0"), "unknown dtype")


@pytest.mark.parametrize("shape", [[-1], [2.0], "2", [True]])
def test_invalid_shape_is_rejected(tmp_path: Path, shape: object) -> None:
    header = {"t": {"dtype": "U8", "shape": shape, "data_offsets": [0, 2]}}
    assert_rejected(raw_file(tmp_path / "x.safetensors", header, b"\0\0"), "invalid shape")


@pytest.mark.parametrize("offsets", [[2, 0], [0], [-2, 0], "0,2"])
def test_malformed_offsets_are_rejected(tmp_path: Path, offsets: object) -> None:
    header = {"t": {"dtype": "U8", "shape": [2], "data_offsets": offsets}}
    assert_rejected(raw_file(tmp_path / "x.safetensors", header, b"\0\0"), "data_offsets")


def test_offsets_not_matching_shape_times_itemsize_are_rejected(tmp_path: Path) -> None:
    header = {"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}
    assert_rejected(raw_file(tmp_path / "x.safetensors", header, b"\0" * 4), "needs 8")


def test_offsets_out_of_range_are_rejected(tmp_path: Path) -> None:
    header = {
        "a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
        "b": {"dtype": "U8", "shape": [4], "data_offsets": [100, 104]},
    }
    assert_rejected(raw_file(tmp_path / "x.safetensors", header, b"\0" * 8), "out of range")


def test_overlapping_tensors_are_rejected(tmp_path: Path) -> None:
    header = {
        "a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
        "b": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]},
    }
    assert_rejected(raw_file(tmp_path / "x.safetensors", header, b"\0" * 6), "overlap")


def test_gap_between_tensors_is_rejected(tmp_path: Path) -> None:
    header = {
        "a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},
        "b": {"dtype": "U8", "shape": [2], "data_offsets": [4, 6]},
    }
    assert_rejected(raw_file(tmp_path / "x.safetensors", header, b"\0" * 6), "unused bytes")


def test_trailing_bytes_are_rejected(tmp_path: Path) -> None:
    header = {"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}}
    assert_rejected(raw_file(tmp_path / "x.safetensors", header, b"\0" * 5), "after the last")


def test_truncated_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "x.safetensors"
    write_safetensors(path, {"x": np.zeros((16, 16), dtype=np.float32)})
    path.write_bytes(path.read_bytes()[:-10])
    assert_rejected(path, "truncated")


def test_bad_metadata_is_rejected(tmp_path: Path) -> None:
    header = {"__metadata__": {"format": 1}}
    assert_rejected(raw_file(tmp_path / "x.safetensors", header), "__metadata__")


def test_writer_refuses_chunks_of_the_wrong_total_size(tmp_path: Path) -> None:
    spec = TensorSpec("F32", (4,), lambda: [np.zeros(3, dtype=np.float32)])
    with pytest.raises(ValueError, match="expected 16"):
        write_safetensors(tmp_path / "x.safetensors", {"x": spec})
    assert list(tmp_path.iterdir()) == []


def test_streamed_chunks_concatenate_in_order(tmp_path: Path) -> None:
    full = np.arange(20, dtype=np.float32).reshape(5, 4)
    spec = TensorSpec("F32", (5, 4), lambda: [full[:2], full[2:3], full[3:]])
    write_safetensors(tmp_path / "x.safetensors", {"x": spec})
    with SafetensorsFile(tmp_path / "x.safetensors") as st:
        np.testing.assert_array_equal(st.array("x"), full)
