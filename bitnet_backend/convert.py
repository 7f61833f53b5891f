"""``bitnet convert``: save a checkpoint with its weights already in the engine's kernel layout.

Loading a Hugging Face checkpoint repacks every ternary linear and quantizes the output head
(seconds for 2B-4T). A converted directory stores the result, so a later load is a copy into
huge-page memory (well under a second). It keeps config.json (with a ``bitnet_backend_layout``
entry), the tokenizer files, the norms and the embedding table as they were.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .backends.cpu_format import LAYOUT_FORMATS, LAYOUT_KEY, prepacked_head, prepacked_layout
from .checkpoints.hf import load_checkpoint
from .checkpoints.integrity import METADATA_KEY as CHECKSUM_KEY
from .checkpoints.integrity import checksums
from .checkpoints.safetensors_file import TensorSpec, write_safetensors
from .errors import InvalidParameterError
from .threads import default_threads

# Re-exported: the converted format is the cpu backend's; older code imports it from here.
__all__ = ["LAYOUT_FORMATS", "LAYOUT_KEY", "convert", "prepacked_head", "prepacked_layout"]
_PIECE_BYTES = 16 << 20  # written at a time: a progress bar that moves, bounded copies
_COPIED_FILES = (
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)


def convert(
    source: str | Path,
    out_dir: str | Path,
    *,
    lm_head: str = "auto",
    weight_layout: str = "auto",
    n_threads: int = 1,
    progress: bool = False,
) -> Path:
    """Write ``source`` (a checkpoint directory) to ``out_dir`` in the kernel layout.

    ``progress`` shows bars (on stderr) for the repacking and the writing.
    """
    # Deferred: loading the cpu backend loads the native engine, which only convert needs.
    from .backends.cpu import BACKEND, default_head, head_table_bytes

    src = Path(source)
    out = Path(out_dir)
    if out.resolve() == src.resolve():
        raise InvalidParameterError("convert needs an output directory different from the source")
    ckpt = load_checkpoint(src, progress=progress)
    if LAYOUT_KEY in ckpt.config.extra:
        raise InvalidParameterError(f"{src} is already converted")
    if lm_head == "auto":
        # The head a load with the default thread count (every usable CPU) picks.
        lm_head = default_head("auto", default_threads(), head_table_bytes(ckpt.config))
    with _bar(progress, ckpt.config.num_hidden_layers, "repacking", "layer") as bar:
        engine = BACKEND.load(
            ckpt,
            n_threads=n_threads,
            lm_head=lm_head,
            weight_layout=weight_layout,
            progress=_layer_updates(bar),
        )
    layout_format = engine.info["weight_format"]
    layout: dict[str, Any] = engine.export_layout()
    tensors: dict[str, TensorSpec] = {}
    for name, ref in ckpt.tensors.items():
        keep = not name.endswith(("_proj.weight", "_proj.weight_scale"))
        if keep:
            tensors[name] = TensorSpec.of(ref.data, ref.dtype)
    for name, array in layout.items():
        tensors[name] = TensorSpec.of(array)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        engine.close()
        ckpt.close()
        raise InvalidParameterError(
            f"cannot create the output directory {out}: {exc.strerror or exc}"
        ) from None
    sums = checksums(layout, n_threads)
    total = sum(spec.nbytes for spec in tensors.values())
    with _bar(progress, total, "writing", "B") as bar:
        write_safetensors(
            out / "model.safetensors",
            {name: _pieces(spec, bar) for name, spec in tensors.items()},
            metadata={
                "format": "pt",
                LAYOUT_KEY: layout_format,
                "lm_head": lm_head,
                CHECKSUM_KEY: json.dumps(sums, sort_keys=True),
            },
        )
    config = dict(ckpt.config.extra)
    config[LAYOUT_KEY] = {"format": layout_format, "lm_head": lm_head}
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    for name in _COPIED_FILES:
        if (src / name).is_file():
            shutil.copyfile(src / name, out / name)
    engine.close()
    ckpt.close()
    return out


def _bar(enabled: bool, total: int, desc: str, unit: str) -> Any:
    if not enabled:
        return contextlib.nullcontext(None)
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, unit_scale=unit == "B", leave=False)


def _layer_updates(bar: Any) -> Callable[[int, int], None] | None:
    if bar is None:
        return None

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return update


def _pieces(spec: TensorSpec, bar: Any) -> TensorSpec:
    """``spec`` written in pieces of at most _PIECE_BYTES, each counted on ``bar``."""

    def chunks() -> Iterator[np.ndarray]:
        for chunk in spec.chunks():
            flat = np.ascontiguousarray(chunk).reshape(-1)
            step = max(1, _PIECE_BYTES // max(1, flat.itemsize))
            for start in range(0, flat.size, step):
                piece = flat[start : start + step]
                yield piece
                if bar is not None:
                    bar.update(piece.nbytes)

    return TensorSpec(spec.dtype, spec.shape, chunks)
