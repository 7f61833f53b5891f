"""Checksums of the tensors ``bitnet convert`` writes in the engine's own layout.

The packed arena, head codes and scales of a converted checkpoint are read by the engine
as they are: no load-time check can tell a flipped byte from a weight. ``convert`` stores a
CRC-32 of each such tensor in the safetensors metadata and ``load`` recomputes them. CRC-32
detects corruption and accidental edits; it is not a signature (whoever can rewrite the file
can rewrite the checksums too). zlib computes it at about 1 GB/s per core and releases the
GIL, so the tensors are checked in parallel.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..errors import CheckpointError

METADATA_KEY = "bitnet_backend_crc32"
# Below this, starting threads costs more than it saves.
_PARALLEL_BYTES = 64 << 20


def crc32(data: np.ndarray) -> str:
    """The CRC-32 of an array's bytes, as 8 hex digits."""
    flat = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    return f"{zlib.crc32(flat.data):08x}"


def checksums(tensors: Mapping[str, np.ndarray], n_threads: int = 1) -> dict[str, str]:
    """name -> CRC-32 for each tensor (computed in ``n_threads`` threads)."""
    names = sorted(tensors)
    if n_threads <= 1 or sum(tensors[n].nbytes for n in names) < _PARALLEL_BYTES:
        return {n: crc32(tensors[n]) for n in names}
    with ThreadPoolExecutor(max(1, n_threads)) as pool:
        return dict(zip(names, pool.map(lambda n: crc32(tensors[n]), names), strict=True))


def verify(
    path: Path, metadata: Mapping[str, str], tensors: Mapping[str, np.ndarray], n_threads: int
) -> None:
    """CheckpointError unless every tensor of ``tensors`` matches its stored CRC-32.

    A converted checkpoint written before checksums existed has none and is not checked.
    """
    raw = metadata.get(METADATA_KEY)
    if raw is None:
        return
    try:
        stored = json.loads(raw)
    except (ValueError, RecursionError):
        stored = None
    if not isinstance(stored, dict):
        raise CheckpointError(path, f"__metadata__ {METADATA_KEY} is not a JSON object")
    missing = sorted(set(tensors) - set(stored))
    if missing:
        raise CheckpointError(path, f"no checksum for tensor(s) {', '.join(missing)}")
    actual = checksums(tensors, n_threads)
    for name in sorted(tensors):
        if actual[name] != stored[name]:
            raise CheckpointError(
                path,
                f"tensor {name!r} does not match the checksum written by bitnet convert "
                "(the file was modified or is corrupt)",
            )
