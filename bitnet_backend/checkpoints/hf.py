"""Hugging Face checkpoint directories (config.json + tokenizer + safetensors) for BitNet.

``load_checkpoint`` maps every safetensors shard read-only and checks that each tensor the
BitNet forward needs is present with the right shape and dtype, so a bad download fails at
load with the name of the file at fault instead of deep inside the engine.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..backends.cpu_format import LAYOUT_KEY
from ..config import ModelConfig
from ..errors import CheckpointError, UnsupportedModelError
from ..validation import (
    check_finite,
    check_layer_count,
    check_nonzero_scale,
    check_token_ids,
    parse_json,
    read_text,
)
from .integrity import verify
from .safetensors_file import SafetensorsFile
from .ternary import bf16_to_f32

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
FLOAT_DTYPES = ("BF16", "F16", "F32")
# Scanned tensors from this size on are dropped from RSS again (the embedding of a
# converted checkpoint is otherwise only read a row at a time).
_RELEASE_AFTER_SCAN_BYTES = 16 << 20


@dataclass(frozen=True, eq=False)
class TensorRef:
    """One tensor of a checkpoint: a zero-copy view on the mmap of ``file``."""

    name: str
    dtype: str  # safetensors dtype string: "U8", "BF16", "F16", "F32", ...
    shape: tuple[int, ...]
    data: np.ndarray = field(repr=False)  # BF16 is stored as uint16
    file: Path

    def to_float32(self) -> np.ndarray:
        """The values as float32 (a new array unless the tensor already is F32)."""
        if self.dtype == "BF16":
            return bf16_to_f32(self.data)
        if self.dtype in ("F16", "F32"):
            return self.data.astype(np.float32, copy=False)
        raise CheckpointError(self.file, f"{self.name}: {self.dtype} is not a float dtype")


class DecodedTensorRef(TensorRef):
    """A TensorRef decoded from its file on each read of ``data`` (GGUF ternary linears, read
    as packed weights), so that a backend's own copy is the only one kept after loading."""

    def __init__(
        self,
        name: str,
        dtype: str,
        shape: tuple[int, ...],
        data: np.ndarray | Callable[[], np.ndarray],
        file: Path,
    ) -> None:
        for key, value in (("name", name), ("dtype", dtype), ("shape", shape), ("file", file)):
            object.__setattr__(self, key, value)
        object.__setattr__(self, "_source", data)

    @property
    def data(self) -> np.ndarray:
        """The tensor, decoded now (an array given at construction is returned as is)."""
        source = self._source  # type: ignore[attr-defined]
        return source() if callable(source) else source


class Checkpoint:
    """A validated, memory-mapped BitNet checkpoint directory."""

    def __init__(
        self,
        path: Path,
        config: ModelConfig,
        generation_config: dict[str, Any],
        tensors: dict[str, TensorRef],
        tokenizer_file: Path,
        tokenizer_config: dict[str, Any],
        eos_token_ids: tuple[int, ...],
        files: list[SafetensorsFile],
    ) -> None:
        self.path = path
        self.config = config
        self.generation_config = generation_config
        self.tensors = tensors
        self.tokenizer_file = tokenizer_file
        self.tokenizer_config = tokenizer_config
        self.eos_token_ids = eos_token_ids
        self._files = files

    def tensor(self, name: str) -> TensorRef:
        """The tensor called ``name``; CheckpointError if the checkpoint has none."""
        ref = self.tensors.get(name)
        if ref is None:
            raise CheckpointError(self.path, f"tensor {name!r} is not in the checkpoint")
        return ref

    @property
    def format(self) -> str:
        """How the weights are stored, e.g. ``"GGUF I2_S (bitnet-b1.58)"``."""
        c = self.config
        gguf = c.extra.get("gguf")
        if isinstance(gguf, dict):
            types = gguf.get("tensor_types") or {}
            ternary = [t for t in ("TQ1_0", "TQ2_0", "I2_S") if t in types]
            others = ", ".join(f"{n} x{k}" for n, k in types.items() if n not in ternary)
            return f"GGUF {'/'.join(ternary)} ({gguf.get('architecture')}; {others})"
        if LAYOUT_KEY in c.extra:
            return "safetensors, converted to the kernel layout"
        linears = "packed 2-bit linears" if c.packed_weights else f"{c.torch_dtype} linears"
        return f"safetensors, {linears} ({c.linear_class}, {c.quantization_mode})"

    @property
    def files(self) -> tuple[Path, ...]:
        """The safetensors files backing the tensors."""
        return tuple(f.path for f in self._files)

    def close(self) -> None:
        """Release the memory maps (views handed out earlier stay valid while referenced)."""
        self.tensors = {}
        for f in self._files:
            f.close()
        self._files = []

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Checkpoint({str(self.path)!r}, {len(self.tensors)} tensors)"


def load_checkpoint(path: str | Path, progress: bool = False, verify: bool = True) -> Checkpoint:
    """Open a Hugging Face BitNet checkpoint directory and validate it.

    Needs config.json, tokenizer.json, tokenizer_config.json and either model.safetensors or
    model.safetensors.index.json with its shards; generation_config.json is optional.
    Raises CheckpointError (UnsupportedModelError for a readable but unsupported model)
    naming the file at fault. ``progress`` shows a bar while the shards are mapped.
    ``verify`` (default True) scans the float tensors for NaN/Inf and checks the checksums
    of a converted checkpoint: one read of those tensors (see docs/reliability.md).
    """
    d = Path(path)
    if not d.exists():
        raise CheckpointError(d, "checkpoint directory does not exist")
    if d.is_file() and d.suffix == ".gguf":
        return _load_gguf(d)
    if d.is_dir() and not (d / "config.json").exists():
        from .gguf import find_gguf

        gguf_file = find_gguf(d)
        if gguf_file is not None:
            return _load_gguf(gguf_file)
    if not d.is_dir():
        raise CheckpointError(
            d,
            "is a file, not a checkpoint directory (expected a directory holding config.json, "
            "tokenizer.json and *.safetensors)",
        )
    config_path = d / "config.json"
    if not config_path.is_file():
        raise CheckpointError(
            config_path, "config.json is missing: not a Hugging Face checkpoint directory"
        )
    config = ModelConfig.from_file(config_path)

    gen_path = d / "generation_config.json"
    generation_config = _read_json(gen_path) if gen_path.exists() else {}
    eos = _eos_ids(gen_path, generation_config.get("eos_token_id"))
    check_token_ids(config, config.eos_token_ids, config_path)
    check_token_ids(config, eos, gen_path)
    eos_ids = tuple(dict.fromkeys((*eos, *config.eos_token_ids)))

    tokenizer_file = d / "tokenizer.json"
    if not tokenizer_file.is_file():
        raise CheckpointError(tokenizer_file, "tokenizer.json is missing")
    tok_cfg_path = d / "tokenizer_config.json"
    if not tok_cfg_path.is_file():
        raise CheckpointError(tok_cfg_path, "tokenizer_config.json is missing")
    tokenizer_config = _read_json(tok_cfg_path)

    layout = _shard_layout(d)
    files: list[SafetensorsFile] = []
    try:
        tensors: dict[str, TensorRef] = {}
        shard_names = list(layout)
        bar = _progress(shard_names, progress)
        for shard in bar:
            st = SafetensorsFile(d / shard)
            files.append(st)
            wanted = layout[shard]
            names = list(st.tensors) if wanted is None else wanted
            for name in names:
                if name not in st:
                    raise CheckpointError(
                        st.path, f"tensor {name!r} listed in {INDEX_FILE} is not in this shard"
                    )
                info = st.tensors[name]
                tensors[name] = TensorRef(name, info.dtype, info.shape, st.array(name), st.path)
        _validate_tensors(d, config, tensors)
        if verify:
            _validate_values(config, tensors, files)
            if LAYOUT_KEY in config.extra:
                _verify_converted(tensors, files)
    except BaseException:
        for f in files:
            f.close()
        raise
    return Checkpoint(
        d, config, generation_config, tensors, tokenizer_file, tokenizer_config, eos_ids, files
    )


def _load_gguf(path: Path) -> Checkpoint:
    """A GGUF file as a Checkpoint (checkpoints/gguf.py maps it to Hugging Face names)."""
    from .gguf import read_gguf

    contents = read_gguf(path)
    config = ModelConfig.from_dict(contents.config, path)
    tensors = {
        name: DecodedTensorRef(name, dtype, shape, data, path)
        if callable(data)
        else TensorRef(name, dtype, shape, data, path)
        for name, (dtype, shape, data) in contents.tensors.items()
    }
    _validate_tensors(path, config, tensors)
    eos = tuple(dict.fromkeys((*contents.eos_token_ids, *config.eos_token_ids)))
    return Checkpoint(
        path,
        config,
        {},
        tensors,
        contents.tokenizer_file,
        contents.tokenizer_config,
        eos,
        [],
    )


def required_tensors(config: ModelConfig) -> dict[str, tuple[tuple[int, ...], tuple[str, ...]]]:
    """Every tensor the forward of ``config``'s family reads: name -> (shape, allowed dtypes)."""
    h, i = config.hidden_size, config.intermediate_size
    q_out = config.num_attention_heads * config.head_dim
    kv_out = config.num_key_value_heads * config.head_dim
    packed = config.packed_weights
    need: dict[str, tuple[tuple[int, ...], tuple[str, ...]]] = {
        "model.embed_tokens.weight": ((config.vocab_size, h), FLOAT_DTYPES),
        "model.norm.weight": ((h,), FLOAT_DTYPES),
    }
    if not config.tie_word_embeddings:
        need["lm_head.weight"] = ((config.vocab_size, h), FLOAT_DTYPES)
    linears = {
        "self_attn.q_proj": (q_out, h),
        "self_attn.k_proj": (kv_out, h),
        "self_attn.v_proj": (kv_out, h),
        "self_attn.o_proj": (h, q_out),
        "mlp.gate_proj": (i, h),
        "mlp.up_proj": (i, h),
        "mlp.down_proj": (h, i),
    }
    # A directory written by `bitnet convert` holds the linears already in the kernel layout
    # (sizes checked by the engine, which knows the layout); the rest is unchanged.
    converted = LAYOUT_KEY in config.extra
    if converted:
        need["bitnet.arena"] = ((-1,), ("U8",))
        need["bitnet.head.codes"] = ((-1,), ("U8",))
        need["bitnet.head.scales"] = ((-1,), ("F32",))
    for layer in range(config.num_hidden_layers):
        p = f"model.layers.{layer}."
        need[p + "input_layernorm.weight"] = ((h,), FLOAT_DTYPES)
        need[p + "post_attention_layernorm.weight"] = ((h,), FLOAT_DTYPES)
        arch = config.architecture
        if arch.attn_sub_norm is not None:
            need[p + arch.attn_sub_norm] = ((h,), FLOAT_DTYPES)
        if arch.ffn_sub_norm is not None:
            need[p + arch.ffn_sub_norm] = ((i,), FLOAT_DTYPES)
        if arch.linear_norm is not None:
            for lin, (_, inp) in linears.items():
                need[f"{p}{lin}.{arch.linear_norm}"] = ((inp,), FLOAT_DTYPES)
        if converted:
            for part in ("qkv", "o", "gate_up", "down"):
                need[f"bitnet.layers.{layer}.{part}.scales"] = ((-1,), ("F32",))
            continue
        for lin, (out, inp) in linears.items():
            if packed:
                need[p + lin + ".weight"] = ((out // 4, inp), ("U8",))
                need[p + lin + ".weight_scale"] = ((1,), FLOAT_DTYPES)
            else:
                need[p + lin + ".weight"] = ((out, inp), FLOAT_DTYPES)
    return need


def _validate_tensors(d: Path, config: ModelConfig, tensors: dict[str, TensorRef]) -> None:
    # ``d`` is a checkpoint directory, or a GGUF file that holds config and tensors alike.
    cfg_path = d if d.is_file() else d / "config.json"
    q_out = config.num_attention_heads * config.head_dim
    if q_out != config.hidden_size and config.architecture.attn_sub_norm is not None:
        # The attention sub-norm has hidden_size weights but normalises the concatenated heads.
        raise UnsupportedModelError(
            cfg_path,
            f"num_attention_heads * head_dim = {q_out} must equal hidden_size {config.hidden_size}",
        )
    converted = LAYOUT_KEY in config.extra
    if config.packed_weights and not converted:
        kv_out = config.num_key_value_heads * config.head_dim
        for what, n in (("hidden_size", q_out), ("k/v width", kv_out)):
            if n % 4:
                raise UnsupportedModelError(
                    cfg_path, f"{what} {n} is not a multiple of 4: cannot hold packed weights"
                )
        if config.intermediate_size % 4:
            raise UnsupportedModelError(
                cfg_path,
                f"intermediate_size {config.intermediate_size} is not a multiple of 4: cannot "
                "hold packed weights",
            )
    check_layer_count(config, tensors, cfg_path)
    for name, (shape, dtypes) in required_tensors(config).items():
        ref = tensors.get(name)
        if ref is None:
            where = INDEX_FILE if (d / INDEX_FILE).exists() else SINGLE_FILE
            raise CheckpointError(
                d if d.is_file() else d / where, f"required tensor {name!r} is missing"
            )
        if ref.dtype not in dtypes:
            raise CheckpointError(
                ref.file, f"tensor {name!r} has dtype {ref.dtype}, expected {' or '.join(dtypes)}"
            )
        if ref.shape != shape and not (shape == (-1,) and len(ref.shape) == 1):
            raise CheckpointError(
                ref.file, f"tensor {name!r} has shape {list(ref.shape)}, expected {list(shape)}"
            )


def _validate_values(
    config: ModelConfig, tensors: dict[str, TensorRef], files: list[SafetensorsFile]
) -> None:
    """Every float the forward reads is finite and no weight scale is zero (one pass over
    the float tensors; the packed ternary codes are checked by the engine)."""
    by_path = {f.path: f for f in files}
    for name in required_tensors(config):
        ref = tensors[name]
        check_finite(name, ref.dtype, ref.data, ref.file)
        if name.endswith(".weight_scale"):
            check_nonzero_scale(name, ref.dtype, ref.data, ref.file)
        if ref.data.nbytes >= _RELEASE_AFTER_SCAN_BYTES:
            by_path[ref.file].release_pages(name)


def _verify_converted(tensors: dict[str, TensorRef], files: list[SafetensorsFile]) -> None:
    """The engine-layout tensors of a converted checkpoint match the checksums convert wrote."""
    arena = tensors["bitnet.arena"]
    metadata = next((f.metadata for f in files if f.path == arena.file), {})
    own = {n: ref.data for n, ref in tensors.items() if n.startswith("bitnet.")}
    verify(arena.file, metadata, own, n_threads=min(4, os.cpu_count() or 1))


def _shard_layout(d: Path) -> dict[str, list[str] | None]:
    """shard file name -> tensor names it must provide (None: every tensor in the file)."""
    if (d / SINGLE_FILE).exists() or (d / SINGLE_FILE).is_symlink():
        return {SINGLE_FILE: None}  # a dangling or odd file is named when it is opened
    index_path = d / INDEX_FILE
    if not index_path.exists():
        others = sorted(p.name for p in d.glob("*.bin")) + sorted(p.name for p in d.glob("*.pt"))
        hint = f" (found {', '.join(others)}: only safetensors is supported)" if others else ""
        raise CheckpointError(d, f"no {SINGLE_FILE} or {INDEX_FILE}{hint}")
    index = _read_json(index_path)
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(index_path, "'weight_map' must be a non-empty object")
    layout: dict[str, list[str] | None] = {}
    for name, shard in weight_map.items():
        if not isinstance(shard, str) or not shard or Path(shard).name != shard:
            raise CheckpointError(index_path, f"invalid shard file name {shard!r} for {name!r}")
        names = layout.setdefault(shard, [])
        assert names is not None
        names.append(name)
    for shard in layout:
        if not (d / shard).is_file() and not (d / shard).is_symlink():
            raise CheckpointError(d / shard, f"shard listed in {INDEX_FILE} is missing")
    return layout


def _read_json(path: Path) -> dict[str, Any]:
    raw = parse_json(path, read_text(path, path.name), "JSON")
    if not isinstance(raw, dict):
        raise CheckpointError(path, "must contain a JSON object")
    return raw


def _eos_ids(path: Path, eos: object) -> tuple[int, ...]:
    if eos is None:
        return ()
    items = eos if isinstance(eos, list) else [eos]
    if not all(isinstance(e, int) and not isinstance(e, bool) and e >= 0 for e in items):
        raise CheckpointError(path, f"eos_token_id must be an integer or a list of them: {eos!r}")
    return tuple(items)


def _progress(items: list[str], enabled: bool) -> Any:
    if not enabled:
        return items
    # tqdm.auto would import asyncio (and ssl with it): ~7 MB resident for a progress bar.
    from tqdm import tqdm

    return tqdm(items, desc="Mapping shards", unit="shard")
