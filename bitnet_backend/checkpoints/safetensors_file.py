"""A strict, memory-mapped safetensors reader and a streaming writer.

Layout: 8-byte little-endian header length N, N bytes of JSON header (``{"name": {"dtype",
"shape", "data_offsets": [begin, end]}, "__metadata__": {...}}``), then the data section;
offsets are relative to the start of the data section. Tensors are handed out as zero-copy
NumPy views on a read-only mmap; BF16 comes back as uint16 (NumPy has no bfloat16).
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError
from ..validation import check_regular_file

# safetensors dtype -> the NumPy dtype its bytes are viewed as (little-endian).
DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype("bool"),
    "U8": np.dtype("<u1"),
    "I8": np.dtype("<i1"),
    "U16": np.dtype("<u2"),
    "I16": np.dtype("<i2"),
    "U32": np.dtype("<u4"),
    "I32": np.dtype("<i4"),
    "U64": np.dtype("<u8"),
    "I64": np.dtype("<i8"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"),
    "F8_E4M3": np.dtype("<u1"),
    "F8_E5M2": np.dtype("<u1"),
}
_NUMPY_TO_DTYPE = {
    np.dtype("bool"): "BOOL",
    np.dtype("u1"): "U8",
    np.dtype("i1"): "I8",
    np.dtype("u2"): "U16",
    np.dtype("i2"): "I16",
    np.dtype("u4"): "U32",
    np.dtype("i4"): "I32",
    np.dtype("u8"): "U64",
    np.dtype("i8"): "I64",
    np.dtype("f2"): "F16",
    np.dtype("f4"): "F32",
    np.dtype("f8"): "F64",
}
# The reference implementation refuses headers above 100 MB; a real one is a few hundred KB.
MAX_HEADER_BYTES = 100 * 1024 * 1024
_HEADER_PAD = 8


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives inside a safetensors file."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int  # absolute byte offset in the file
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.begin


class SafetensorsFile:
    """One safetensors file, validated and memory-mapped read-only.

    Views returned by ``array`` keep the mapping alive on their own; ``close`` releases it
    as soon as no view is left.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._mmap: mmap.mmap | None = None
        check_regular_file(self.path)  # a FIFO or device would block open() or read forever
        try:
            with open(self.path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                self.metadata, self.tensors, data_start = _read_header(self.path, f, size)
                if size > 0:
                    self._mmap = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except FileNotFoundError:
            raise CheckpointError(self.path, "file is missing") from None
        except IsADirectoryError:
            raise CheckpointError(self.path, "is a directory, not a safetensors file") from None
        except OSError as exc:
            raise CheckpointError(self.path, f"cannot read file: {exc}") from None
        self.data_start = data_start

    def __contains__(self, name: object) -> bool:
        return name in self.tensors

    def array(self, name: str) -> np.ndarray:
        """A read-only zero-copy view of tensor ``name`` (BF16 as uint16, F8 as uint8)."""
        info = self.tensors.get(name)
        if info is None:
            raise CheckpointError(self.path, f"tensor {name!r} is not in this file")
        if self._mmap is None:
            raise CheckpointError(self.path, "file is closed")
        dt = DTYPES[info.dtype]
        count = info.nbytes // dt.itemsize
        if count == 0:
            return np.empty(info.shape, dtype=dt)
        return np.frombuffer(self._mmap, dtype=dt, count=count, offset=info.begin).reshape(
            info.shape
        )

    def release_pages(self, name: str) -> None:
        """Drop this process's pages of tensor ``name`` (the page cache keeps them; a later
        read re-faults): a load-time scan must not leave a table the engine reads a row at
        a time resident in RSS."""
        info = self.tensors.get(name)
        if info is None or self._mmap is None or info.nbytes == 0:
            return
        start = info.begin - info.begin % mmap.PAGESIZE
        self._mmap.madvise(mmap.MADV_DONTNEED, start, info.end - start)

    def close(self) -> None:
        """Drop the mapping. Views still alive keep their pages mapped until they die."""
        mm, self._mmap = self._mmap, None
        if mm is not None:
            # While NumPy views still export the buffer, close() refuses; the mapping then goes
            # away with the last view (each view holds a reference to it).
            with contextlib.suppress(BufferError):
                mm.close()

    def __enter__(self) -> SafetensorsFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_header(
    path: Path, f: Any, size: int
) -> tuple[dict[str, str], dict[str, TensorInfo], int]:
    if size < 8:
        raise CheckpointError(path, f"file is {size} bytes: too small to be a safetensors file")
    (n,) = struct.unpack("<Q", f.read(8))
    if n > MAX_HEADER_BYTES:
        raise CheckpointError(
            path, f"header length {n} is absurd (limit {MAX_HEADER_BYTES}): not a safetensors file"
        )
    if n > size - 8:
        raise CheckpointError(
            path, f"header length {n} runs past the end of the {size}-byte file (truncated?)"
        )
    raw = f.read(n)
    if len(raw) != n:
        raise CheckpointError(path, "file ended while reading the header")
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except (UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(path, f"header is not valid JSON: {exc}") from None
    except RecursionError:
        raise CheckpointError(path, "header is not valid JSON: nested too deeply") from None
    if not isinstance(header, dict):
        raise CheckpointError(path, "header must be a JSON object")

    data_start = 8 + n
    data_len = size - data_start
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise CheckpointError(path, "__metadata__ must map strings to strings")

    entries: list[tuple[str, str, tuple[int, ...], int, int]] = []
    for name, entry in header.items():
        entries.append(_parse_entry(path, name, entry))

    total = sum(e - b for _, _, _, b, e in entries)
    for name, _, _, begin, end in entries:
        if end > data_len:
            if total == max(e for *_, e in entries):
                raise CheckpointError(
                    path,
                    f"file is truncated: the header describes {total} bytes of tensor data "
                    f"but only {data_len} follow it",
                )
            raise CheckpointError(
                path,
                f"data_offsets [{begin}, {end}] of tensor {name!r} are out of range: the data "
                f"section holds {data_len} bytes",
            )
    pos = 0
    prev = ""
    for name, _, _, begin, end in sorted(entries, key=lambda e: (e[3], e[4])):
        if begin < pos:
            raise CheckpointError(path, f"tensors {prev!r} and {name!r} overlap")
        if begin > pos:
            raise CheckpointError(
                path, f"{begin - pos} unused bytes before tensor {name!r}: data must be contiguous"
            )
        pos, prev = end, name
    if pos != data_len:
        raise CheckpointError(
            path, f"{data_len - pos} bytes after the last tensor are not described by the header"
        )
    tensors = {
        name: TensorInfo(name, dtype, shape, data_start + b, data_start + e)
        for name, dtype, shape, b, e in entries
    }
    return metadata, tensors, data_start


def _parse_entry(
    path: Path, name: str, entry: object
) -> tuple[str, str, tuple[int, ...], int, int]:
    if not isinstance(entry, dict):
        raise CheckpointError(path, f"header entry {name!r} must be an object")
    for key in ("dtype", "shape", "data_offsets"):
        if key not in entry:
            raise CheckpointError(path, f"header entry {name!r} has no {key!r}")
    dtype = entry["dtype"]
    if not isinstance(dtype, str) or dtype not in DTYPES:  # a list or object is unhashable
        raise CheckpointError(path, f"tensor {name!r} has unknown dtype {dtype!r}")
    shape = entry["shape"]
    if not isinstance(shape, list) or not all(_is_uint(d) for d in shape):
        raise CheckpointError(path, f"tensor {name!r} has invalid shape {shape!r}")
    offsets = entry["data_offsets"]
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_is_uint(o) for o in offsets)
        or offsets[0] > offsets[1]
    ):
        raise CheckpointError(path, f"tensor {name!r} has invalid data_offsets {offsets!r}")
    begin, end = offsets
    numel = 1
    for d in shape:
        numel *= d
    expected = numel * DTYPES[dtype].itemsize
    if end - begin != expected:
        raise CheckpointError(
            path,
            f"tensor {name!r}: data_offsets [{begin}, {end}] span {end - begin} bytes but "
            f"{dtype} {shape} needs {expected}",
        )
    return name, dtype, tuple(shape), begin, end


def _is_uint(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


@dataclass(frozen=True)
class TensorSpec:
    """A tensor to write whose bytes are produced lazily, in C order, by ``chunks()``.

    Lets a writer emit multi-GB checkpoints one piece at a time with bounded memory.
    """

    dtype: str
    shape: tuple[int, ...]
    chunks: Callable[[], Iterable[np.ndarray]]

    @property
    def nbytes(self) -> int:
        n = DTYPES[self.dtype].itemsize
        for d in self.shape:
            n *= d
        return n

    @classmethod
    def of(cls, array: np.ndarray, dtype: str | None = None) -> TensorSpec:
        """Wrap an array; ``dtype`` overrides the inferred one (e.g. "BF16" for uint16)."""
        a = np.ascontiguousarray(array)
        if dtype is None:
            dtype = _NUMPY_TO_DTYPE.get(a.dtype.newbyteorder("="))
            if dtype is None:
                raise TypeError(f"no safetensors dtype for {a.dtype}")
        elif DTYPES[dtype].itemsize != a.dtype.itemsize:
            raise TypeError(f"{a.dtype} data cannot be stored as {dtype}")
        return cls(dtype, tuple(a.shape), lambda: (a,))


def write_safetensors(
    path: str | Path,
    tensors: Mapping[str, np.ndarray | TensorSpec],
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write ``tensors`` to ``path`` in safetensors format.

    Tensors are stored by decreasing item size (then in the given order) so every tensor
    starts on a multiple of its item size, as the reference writer does.
    """
    specs = {n: (t if isinstance(t, TensorSpec) else TensorSpec.of(t)) for n, t in tensors.items()}
    order = sorted(specs, key=lambda n: -DTYPES[specs[n].dtype].itemsize)
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = dict(metadata)
    pos = 0
    for name in order:
        spec = specs[name]
        header[name] = {
            "dtype": spec.dtype,
            "shape": list(spec.shape),
            "data_offsets": [pos, pos + spec.nbytes],
        }
        pos += spec.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % _HEADER_PAD)
    tmp = Path(f"{path}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(raw)))
            f.write(raw)
            for name in order:
                _write_tensor(f, name, specs[name])
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_tensor(f: Any, name: str, spec: TensorSpec) -> None:
    written = 0
    for chunk in spec.chunks():
        c = np.ascontiguousarray(chunk)
        if c.dtype.itemsize != DTYPES[spec.dtype].itemsize:
            raise TypeError(f"{name}: chunk of {c.dtype} for a {spec.dtype} tensor")
        if c.dtype.byteorder == ">":
            c = c.astype(c.dtype.newbyteorder("<"))
        f.write(c.data.cast("B"))
        written += c.nbytes
    if written != spec.nbytes:
        raise ValueError(f"{name}: wrote {written} bytes, expected {spec.nbytes}")
