"""Checks on untrusted input: checkpoint files, config values, weight values and prompts.

Everything here runs once per load or once per call, before any work that scales with the
checked values, and turns bad input into a typed error (errors.py) that names what is wrong.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CheckpointError, InvalidParameterError

# Dimensions reach the engine as C ints.
MAX_DIMENSION = 2**31 - 1
# RoPE tables hold max_position_embeddings * head_dim floats (8 bytes per pair); 2**20
# positions cover every published context length and keep the tables under a gigabyte.
MAX_POSITIONS = 2**20
FLOAT32_MAX = float(np.finfo(np.float32).max)
# Elements scanned per step of the finiteness check: bounds the scratch memory.
_SCAN_CHUNK = 1 << 22
_LAYER_NAME = re.compile(r"^(?:model|bitnet)\.layers\.(\d+)\.")
# (mask of exponent + mantissa, smallest non-finite pattern) for each float dtype.
_NONFINITE_BITS: dict[str, tuple[np.dtype[Any], int, int]] = {
    "BF16": (np.dtype("<u2"), 0x7FFF, 0x7F80),
    "F16": (np.dtype("<u2"), 0x7FFF, 0x7C00),
    "F32": (np.dtype("<u4"), 0x7FFFFFFF, 0x7F800000),
}


# -- files ------------------------------------------------------------------------------------


def check_regular_file(path: Path) -> None:
    """CheckpointError unless ``path`` is a regular file (or a symlink to one).

    Opening a FIFO or a device would block or read forever; a dangling symlink is named as
    such rather than reported as a missing file.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if os.path.islink(path):
            raise CheckpointError(path, "is a dangling symbolic link") from None
        raise CheckpointError(path, "file is missing") from None
    except OSError as exc:
        raise CheckpointError(path, f"cannot read file: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        raise CheckpointError(path, "is a directory, not a file")
    if not stat.S_ISREG(mode):
        raise CheckpointError(path, "is not a regular file (a FIFO, socket or device?)")


def existing_weight_files(directory: Path) -> list[Path]:
    """The ``*.safetensors`` entries of a directory that are readable regular files.

    Dangling symlinks and other leftovers are skipped: they are not part of the checkpoint
    unless config or index names them, and then loading names them.
    """
    out = []
    for p in sorted(directory.glob("*.safetensors")):
        try:
            if stat.S_ISREG(os.stat(p).st_mode):
                out.append(p)
        except OSError:
            continue
    return out


def parse_json(path: object, text: str | bytes, what: str = "JSON") -> Any:
    """``json.loads`` whose every failure (syntax, nesting depth, huge numbers) is typed."""
    try:
        return json.loads(text)
    except RecursionError:
        raise CheckpointError(path, f"malformed {what}: nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise CheckpointError(path, f"malformed {what}: {exc}") from None


def read_text(path: Path, what: str) -> str:
    """A checkpoint text file as UTF-8, with typed errors naming the file."""
    check_regular_file(path)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CheckpointError(path, f"{what} is not UTF-8 text: {exc}") from None
    except OSError as exc:
        raise CheckpointError(path, f"cannot read {what}: {exc.strerror or exc}") from None


# -- config.json ------------------------------------------------------------------------------


def check_config_values(raw: Mapping[str, Any], path: object) -> None:
    """Range and type checks on config.json fields the engine sizes memory by.

    Runs before anything is allocated from them; the structural checks (heads divide,
    architecture, ...) stay in ModelConfig.from_dict.
    """
    for key in (
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "head_dim",
        "vocab_size",
    ):
        v = raw.get(key)
        if v is not None and _is_int(v) and v > MAX_DIMENSION:
            raise CheckpointError(path, f"'{key}' is {v}: larger than {MAX_DIMENSION}")
    if "max_position_embeddings" in raw:
        v = raw["max_position_embeddings"]
        if not _is_int(v) or not 1 <= v <= MAX_POSITIONS:
            raise CheckpointError(
                path,
                f"'max_position_embeddings' must be an integer in [1, {MAX_POSITIONS}], got {v!r}",
            )
    rope = raw.get("rope_parameters") or raw.get("rope_scaling") or {}
    theta = rope.get("rope_theta") if isinstance(rope, Mapping) else None
    for key, value in (("rope_theta", theta), ("rope_theta", raw.get("rope_theta"))):
        if value is not None:
            _check_positive_float(key, value, path)
    if raw.get("rms_norm_eps") is not None:
        _check_positive_float("rms_norm_eps", raw["rms_norm_eps"], path)
    for key in ("bos_token_id", "pad_token_id"):
        v = raw.get(key)
        if v is not None and (not _is_int(v) or v < 0):
            raise CheckpointError(path, f"'{key}' must be a token id (an integer >= 0), got {v!r}")
    eos = raw.get("eos_token_id")
    items = eos if isinstance(eos, list) else [eos] if eos is not None else []
    if not all(_is_int(e) and e >= 0 for e in items):
        raise CheckpointError(
            path, f"'eos_token_id' must be a token id or a list of them, got {eos!r}"
        )


def check_token_ids(config: Any, eos_token_ids: Iterable[int], path: object) -> None:
    """bos / eos / pad ids must name tokens of the model's vocabulary."""
    n = config.vocab_size
    named = [("bos_token_id", config.bos_token_id), ("pad_token_id", config.pad_token_id)]
    named += [("eos_token_id", e) for e in eos_token_ids]
    for key, v in named:
        if v is not None and not 0 <= v < n:
            raise CheckpointError(path, f"{key} {v} is outside the vocabulary [0, {n})")


def check_layer_count(config: Any, names: Iterable[str], path: object) -> None:
    """num_hidden_layers must match the layers the tensors hold (checked before any table
    of per-layer tensor names is built, so a huge count fails at once)."""
    present = {int(m.group(1)) for m in map(_LAYER_NAME.match, names) if m}
    have = max(present) + 1 if present else 0
    if config.num_hidden_layers != have:
        raise CheckpointError(
            path,
            f"num_hidden_layers is {config.num_hidden_layers} but the weights hold {have} layer(s)",
        )


def check_tokenizer_fits(tokenizer_file: object, tokenizer_size: int, vocab_size: int) -> None:
    """A tokenizer with ids past the embedding table would make prompts the model cannot read."""
    if tokenizer_size > vocab_size:
        raise CheckpointError(
            tokenizer_file,
            f"the tokenizer has {tokenizer_size} tokens but the model's vocab_size is {vocab_size}",
        )


def _check_positive_float(key: str, value: object, path: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not 0 < value <= FLOAT32_MAX
    ):
        raise CheckpointError(path, f"'{key}' must be a finite positive number, got {value!r}")


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# -- weight values ----------------------------------------------------------------------------


def first_nonfinite(data: np.ndarray, dtype: str) -> int | None:
    """Index of the first NaN or infinity in a float tensor's raw data (None: all finite).

    Works on the bit patterns (BF16 arrives as uint16) in bounded chunks: one pass of two
    vectorised operations, no float conversion.
    """
    spec = _NONFINITE_BITS.get(dtype)
    if spec is None:
        return None
    view_dtype, magnitude, first_bad = spec
    flat = data.reshape(-1).view(view_dtype)
    scratch = np.empty(min(flat.size, _SCAN_CHUNK), dtype=view_dtype)
    for start in range(0, flat.size, _SCAN_CHUNK):
        part = flat[start : start + _SCAN_CHUNK]
        buf = scratch[: part.size]
        np.bitwise_and(part, magnitude, out=buf)
        if buf.max() >= first_bad:
            return start + int(np.argmax(buf >= first_bad))
    return None


def check_finite(name: str, dtype: str, data: np.ndarray, path: object) -> None:
    """CheckpointError naming the tensor and element if it holds a NaN or an infinity."""
    bad = first_nonfinite(data, dtype)
    if bad is not None:
        raise CheckpointError(path, f"tensor {name!r} holds a NaN or infinite value at {bad}")


def check_nonzero_scale(name: str, dtype: str, data: np.ndarray, path: object) -> None:
    """Weight scales divide (bitlinear) or multiply every output: zero (either sign) makes
    garbage."""
    spec = _NONFINITE_BITS.get(dtype)
    if spec is None:
        return
    view_dtype, magnitude, _ = spec
    if np.any((data.reshape(-1).view(view_dtype) & magnitude) == 0):
        raise CheckpointError(path, f"tensor {name!r} holds a zero weight scale")


# -- prompts ----------------------------------------------------------------------------------


def check_prompt_type(prompt: object) -> None:
    """Bytes are neither text nor token ids: refuse them instead of reading bytes as ids."""
    if isinstance(prompt, (bytes, bytearray, memoryview)):
        raise InvalidParameterError(
            "the prompt must be a str or a list of token ids, got bytes (decode it first)"
        )


def utf8_length(text: str) -> int:
    """Bytes of ``text`` in UTF-8; InvalidParameterError for lone surrogates."""
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidParameterError(
            f"the prompt is not valid Unicode text: {exc.reason} at position {exc.start}"
        ) from None


def min_token_count(n_bytes: int, longest_token_bytes: int | None) -> int:
    """A lower bound on the tokens of an n_bytes text: no token covers more than the longest
    one. Lets a prompt far too long for the context fail before it is tokenized."""
    if not longest_token_bytes:
        return 0
    return -(-n_bytes // longest_token_bytes)


# -- generation options -----------------------------------------------------------------------
# The checks options.py declares for each option: each returns the value to use.

# top_k, repeat_last_n and max_tokens reach the engine as C ints.
INT32_MAX = 2**31 - 1


def check_max_tokens(v: Any) -> int:
    if not _is_integer(v) or not (v >= 1 or v == -1):
        raise InvalidParameterError(f"max_tokens must be an integer >= 1 or -1, got {v!r}")
    return int(v)


def check_temperature(v: Any) -> Any:
    if not _is_real(v) or v < 0:
        raise InvalidParameterError(f"temperature must be a finite number >= 0, got {v!r}")
    return v


def check_top_k(v: Any) -> Any:
    if not _is_integer(v) or not 0 <= v <= INT32_MAX:
        raise InvalidParameterError(
            f"top_k must be an integer in [0, {INT32_MAX}] (0 disables it), got {v!r}"
        )
    return v


def check_top_p(v: Any) -> Any:
    if not _is_real(v) or not 0 < v <= 1:
        raise InvalidParameterError(f"top_p must be in (0, 1], got {v!r}")
    return v


def check_min_p(v: Any) -> Any:
    if not _is_real(v) or not 0 <= v <= 1:
        raise InvalidParameterError(f"min_p must be in [0, 1], got {v!r}")
    return v


def check_repeat_penalty(v: Any) -> Any:
    if not _is_real(v) or v <= 0:
        raise InvalidParameterError(f"repeat_penalty must be a finite number > 0, got {v!r}")
    return v


def check_repeat_last_n(v: Any) -> Any:
    if not _is_integer(v) or not 0 <= v <= INT32_MAX:
        raise InvalidParameterError(
            f"repeat_last_n must be an integer in [0, {INT32_MAX}], got {v!r}"
        )
    return v


def check_seed(v: Any) -> Any:
    """None (a fresh seed per call) or any integer (used modulo 2**64)."""
    if v is not None and not _is_integer(v):
        raise InvalidParameterError(f"seed must be an integer or None, got {v!r}")
    return v


# Alternatives a generated token's log-probability entry may list (OpenAI's chat limit).
MAX_TOP_LOGPROBS = 20


def check_logprobs(v: Any) -> Any:
    """None (no log-probabilities) or how many alternatives to list, 0 to 20."""
    if v is not None and (not _is_integer(v) or not 0 <= v <= MAX_TOP_LOGPROBS):
        raise InvalidParameterError(
            f"logprobs must be None or an integer in [0, {MAX_TOP_LOGPROBS}] (alternatives "
            f"listed per token), got {v!r}"
        )
    return None if v is None else int(v)


def _is_real(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_integer(v: object) -> bool:
    """An int or a NumPy integer, not a bool."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def check_batch(items: Any, name: str) -> list[Any]:
    """The items of a batch call (``generate_batch`` prompts, ``chat_batch`` conversations)."""
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
        raise InvalidParameterError(f"{name} must be a list, got {type(items).__name__}")
    return list(items)
