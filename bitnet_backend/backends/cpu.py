"""The C++ engine (``bitnet_backend._engine``) as a backend: the default on every CPU."""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pluggy

from ..errors import (
    BitnetError,
    CheckpointError,
    ContextOverflowError,
    InvalidParameterError,
    NonFiniteOutputError,
)
from ..threads import check_n_threads
from .batching import check_batch, check_texts
from .cpu_format import STORED_HEADS, prepacked_head, prepacked_layout
from .native_config import native_config

if TYPE_CHECKING:
    from ..checkpoints.hf import Checkpoint
    from ..config import ModelConfig
    from ..sampling import SamplingParams

hookimpl = pluggy.HookimplMarker("bitnet_backend")

_ISAS = ("auto", "ref", "avx2", "avx512", "neon")
# Output head storage: int8 per row, 6-bit with a 7-bit scale per 16 columns, 4-bit per row
# (speed), f32 (exact reference); "auto" (default) picks per CPU, see resolve_choices.
_HEADS = ("auto", *STORED_HEADS)
# KV cache element type: float32 (exact), or bfloat16 (half the bytes decode reads per context
# position; ~3 significant digits).
_KV_CACHES = ("f32", "bf16")
# Ternary weight layouts: 2 bits per weight, or 5 base-3 digits per byte (~1.6 bits).
_LAYOUTS = ("auto", "i2_r16", "i1_r16")
# Named option sets: "quality" (default) and "speed" (4-bit head: ~45% fewer bytes per token
# for the head, at a measured quality cost; see README; and the dense ~1.6-bit layout where it
# decodes faster, see resolve_choices). "memory" always stores the ternary weights densely,
# which saves 20% of their memory; its speed depends on how cheaply the CPU extracts base-3
# digits.
_PRESETS = {
    "quality": {"weight_layout": "auto", "lm_head": "auto", "kv_cache": "f32"},
    "speed": {"weight_layout": "auto", "lm_head": "q4", "kv_cache": "bf16"},
    "memory": {"weight_layout": "i1_r16", "lm_head": "q4", "kv_cache": "bf16"},
}

# The 6-bit head reads 25% fewer bytes than the int8 one, which only saves time while the
# table streams from memory: an int8 table up to this size stays in the caches from one token
# to the next, and its 6-bit form would only add the unpacking.
HEAD_IN_CACHE_BYTES = 8 << 20

# How many of the largest logits of each position a quantized head recomputes in float32 from
# the checkpoint's table (greedy and top-k / top-p sampling then see float32 values).
DEFAULT_EXACT_LOGITS = 16


def _engine_module() -> Any:
    from .. import _engine  # type: ignore[attr-defined]

    return _engine


def _mapping_of(array: np.ndarray) -> mmap.mmap | None:
    """The ``mmap`` of a file that ``array`` is a view on, if any."""
    base: object = array
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    return base if isinstance(base, mmap.mmap) else None


def _is_file_mapped(array: np.ndarray) -> bool:
    """True when ``array`` is a view on a read-only ``mmap`` of a file."""
    return _mapping_of(array) is not None


def _file_location(checkpoint: Checkpoint, name: str) -> tuple[str, int]:
    """(file, byte offset) of a file-mapped tensor, or ("", 0) for one held in memory."""
    ref = checkpoint.tensors.get(name)
    mapping = None if ref is None else _mapping_of(ref.data)
    if ref is None or mapping is None:
        return "", 0
    start = np.frombuffer(mapping, dtype=np.uint8, count=1).ctypes.data
    return str(ref.file), int(ref.data.ctypes.data - start)


def _sampling_error(kind: str, message: str) -> BitnetError:
    """The error of a sampling the engine refused: broken logits, or bad options / mask."""
    if kind == "non_finite":
        return NonFiniteOutputError(message)
    return InvalidParameterError(message)


def _as_ids(ids: Sequence[int], vocab: int) -> np.ndarray:
    arr = np.asarray(ids, dtype=np.int64).reshape(-1)
    if arr.size and (arr.min() < 0 or arr.max() >= vocab):
        raise InvalidParameterError(
            f"token ids must be in [0, {vocab}), got {arr.min()}..{arr.max()}"
        )
    return arr.astype(np.int32)


class CpuSession:
    """One sequence with its KV cache in the C++ engine."""

    def __init__(self, engine: CpuEngine, n_ctx: int) -> None:
        self._engine = engine
        self._native: Any = engine._module.Session(engine._model, n_ctx)
        self._vocab = engine.config.vocab_size

    def _live(self) -> Any:
        """The native session; a typed error once closed (as the reference session raises)."""
        if self._native is None:
            raise InvalidParameterError("the session is closed")
        return self._native

    @property
    def n_past(self) -> int:
        return int(self._live().n_past)

    @property
    def n_ctx(self) -> int:
        return int(self._live().n_ctx)

    @property
    def tokens(self) -> list[int]:
        return list(self._live().tokens)

    def eval(self, ids: Sequence[int], all_logits: bool = False) -> np.ndarray | None:
        arr = _as_ids(ids, self._vocab)
        if arr.size == 0:
            raise InvalidParameterError("eval needs at least one token")
        if self.n_past + arr.size > self.n_ctx:
            raise ContextOverflowError(self.n_past + int(arr.size), self.n_ctx)
        output = self._engine._module.Output
        if all_logits:
            return np.asarray(self._live().eval(arr, output.all))
        self._live().eval(arr, output.last)
        return None

    def hidden(self, ids: Sequence[int]) -> np.ndarray:
        arr = _as_ids(ids, self._vocab)
        if self.n_past + arr.size > self.n_ctx:
            raise ContextOverflowError(self.n_past + int(arr.size), self.n_ctx)
        return np.asarray(self._live().eval(arr, self._engine._module.Output.hidden))

    def last_logits(self) -> np.ndarray:
        try:
            return np.asarray(self._live().last_logits())
        except RuntimeError as exc:
            raise InvalidParameterError(str(exc)) from None

    def sample(self, params: SamplingParams, mask: np.ndarray | None = None) -> int:
        try:
            return int(self._live().sample(*self._sample_row(params, mask)[1:]))
        except self._engine._module.NonFiniteLogitsError as exc:
            raise _sampling_error("non_finite", str(exc)) from None
        except (ValueError, RuntimeError) as exc:
            raise _sampling_error("invalid", str(exc)) from None

    def _sample_row(self, params: SamplingParams, mask: np.ndarray | None) -> tuple[Any, ...]:
        """The native arguments of ``sample`` (a row of the engine's ``sample_batch``)."""
        return (
            self._live(),
            float(params.temperature),
            int(params.top_k),
            float(params.top_p),
            float(params.min_p),
            float(params.repeat_penalty),
            int(params.repeat_last_n),
            None if mask is None else np.ascontiguousarray(mask, dtype=np.uint32),
        )

    def set_seed(self, seed: int) -> None:
        self._live().set_seed(int(seed) & ((1 << 64) - 1))

    def truncate(self, n: int) -> None:
        if not 0 <= n <= self.n_past:
            raise InvalidParameterError(f"truncate position {n} is outside [0, {self.n_past}]")
        self._live().truncate(int(n))

    def copy_prefix(self, src: CpuSession, n: int) -> None:
        """Hold the first ``n`` positions of ``src`` (a session of the same engine)."""
        if not (self._engine._owns(src) and self._engine._owns(self)):
            raise InvalidParameterError("copy_prefix needs open sessions of the same engine")
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= src.n_past:
            raise InvalidParameterError(f"copy_prefix position {n!r} is outside [0, {src.n_past}]")
        if n > self.n_ctx:
            raise ContextOverflowError(n, self.n_ctx)
        try:
            self._live().copy_prefix(src._live(), n)
        except (IndexError, ValueError) as exc:  # src changed meanwhile
            raise InvalidParameterError(str(exc)) from None

    def close(self) -> None:
        self._native = None


class CpuEngine:
    """A model loaded into the C++ engine (weights repacked once into the kernel layout)."""

    backend_name = "cpu"

    def __init__(
        self,
        checkpoint: Checkpoint,
        n_threads: int,
        isa: str,
        lm_head: str,
        layout: str,
        progress: Callable[[int, int], None] | None = None,
        kv_cache: str = "f32",
        exact_logits: int = DEFAULT_EXACT_LOGITS,
    ) -> None:
        self._module = _engine_module()
        # The engine reads the embedding table in place: keep its file mapping alive.
        self._checkpoint: Checkpoint | None = checkpoint
        self.config: ModelConfig = checkpoint.config
        c = self.config
        weight_layout = prepacked_layout(c.extra, checkpoint.path) or layout
        # Each ref's data is read once: a decoded tensor (GGUF) is made anew on every read.
        tensors = {
            name: (ref.dtype, tuple(ref.shape), ref.data)
            for name, ref in checkpoint.tensors.items()
        }
        # Repacked sources can leave RSS only if they are pages of a read-only file mapping.
        release_source_pages = all(_is_file_mapped(data) for _, _, data in tensors.values())
        stored_head = prepacked_head(c.extra, checkpoint.path)
        table = "model.embed_tokens.weight" if c.tie_word_embeddings else "lm_head.weight"
        table_file, table_offset = _file_location(checkpoint, table)
        try:
            self._model = self._module.Model(
                native_config(self._module, c),
                tensors,
                n_threads,
                isa=isa,
                lm_head=self._module.HeadKind.__members__[lm_head],
                progress=progress,
                kv_cache=self._module.KVType.__members__[kv_cache],
                weight_layout=self._module.WeightLayout.__members__[weight_layout],
                exact_logits=exact_logits,
                exact_logits_file=table_file,
                exact_logits_offset=table_offset,
                stored_head=self._module.HeadKind.__members__[stored_head] if stored_head else None,
                release_source_pages=release_source_pages,
            )
        except ValueError as exc:  # CheckpointContentError, or a config the engine refuses
            raise CheckpointError(checkpoint.path, str(exc)) from None
        except RuntimeError as exc:
            raise InvalidParameterError(str(exc)) from None

    def set_adaptive_threads(self, adaptive: bool) -> None:
        """Let the thread pool run a step's work on the calling thread alone while that is
        measured to be faster (other programs on the cores); results are the same bits."""
        self._model.adaptive_threads = bool(adaptive)

    def thread_stats(self) -> dict[str, int]:
        """The thread pool's counters: regions shared and run alone, chunks per side, waits."""
        return dict(self._model.thread_stats())

    @property
    def info(self) -> dict[str, Any]:
        return {
            "isa": self._model.isa,
            "n_threads": self._model.n_threads,
            "adaptive_threads": bool(self._model.adaptive_threads),
            "weight_format": self._model.weight_layout.name,
            "lm_head": self._model.lm_head.name,
            "exact_logits": int(self._model.exact_logits),
            "kv_dtype": self._model.kv_cache.name,
            "weight_bytes": int(self._model.weight_bytes),
            "scratch_bytes": int(self._model.scratch_bytes),
        }

    def export_layout(self) -> dict[str, np.ndarray]:
        """The repacked weights by name (what ``bitnet convert`` saves).

        Read-only views of the engine's memory, not copies; they keep it alive.
        """
        arrays = dict(self._model.export_layout())
        for array in arrays.values():
            array.flags.writeable = False
        return arrays

    def new_session(self, n_ctx: int) -> CpuSession:
        if not 1 <= n_ctx <= self.config.max_position_embeddings:
            raise InvalidParameterError(
                f"n_ctx must be in [1, {self.config.max_position_embeddings}], got {n_ctx}"
            )
        return CpuSession(self, n_ctx)

    def logits(self, ids: Sequence[int]) -> np.ndarray:
        n = len(ids)
        if n > self.config.max_position_embeddings:
            raise ContextOverflowError(n, self.config.max_position_embeddings)
        out = self.new_session(max(n, 1)).eval(ids, all_logits=True)
        assert out is not None
        return out

    def hidden_states(self, ids: Sequence[int]) -> np.ndarray:
        n = len(ids)
        if n > self.config.max_position_embeddings:
            raise ContextOverflowError(n, self.config.max_position_embeddings)
        return self.new_session(max(n, 1)).hidden(ids)

    def eval_batch(self, items: Sequence[tuple[CpuSession, Sequence[int]]]) -> None:
        """One forward over the new ids of several sessions (see ``backend.Engine``)."""
        checked = check_batch(items, self._owns, self.config.vocab_size)
        if not checked:
            return
        model = self._live_model()
        try:
            model.eval_batch([(session._native, ids) for session, ids in checked])
        except (IndexError, ValueError) as exc:  # a session changed after the checks
            raise InvalidParameterError(str(exc)) from None

    def sample_batch(
        self, rows: Sequence[tuple[CpuSession, SamplingParams, np.ndarray | None]]
    ) -> list[int | BitnetError]:
        """Each row's next token, as ``session.sample(params, mask)`` gives it, with the GIL
        released once for all rows; a row that fails gets its error, the others their token.

        Raises InvalidParameterError, before sampling any row, unless every session is an
        open session of this engine.
        """
        if not all(self._owns(session) for session, _, _ in rows):
            raise InvalidParameterError("sample_batch needs open sessions of this engine")
        native = [session._sample_row(params, mask) for session, params, mask in rows]
        return [
            tok if isinstance(tok, int) else _sampling_error(*tok)
            for tok in self._module.sample_batch(native)
        ]

    def hidden_states_batch(self, batch: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """Fresh forwards of several texts in shared steps (see ``backend.Engine``)."""
        c = self.config
        arrays = check_texts(batch, c.vocab_size, c.max_position_embeddings)
        if not arrays:
            return []
        return [np.asarray(h) for h in self._live_model().hidden_states_batch(arrays)]

    def _live_model(self) -> Any:
        if self._model is None:
            raise BitnetError("the engine is closed")
        return self._model

    def _owns(self, session: object) -> bool:
        return (
            isinstance(session, CpuSession)
            and session._engine is self
            and session._native is not None
        )

    def close(self) -> None:
        self._model = None
        self._checkpoint = None


@dataclass(frozen=True)
class EngineChoices:
    """The kernel family, output head and ternary layout an engine runs with (no "auto")."""

    isa: str
    lm_head: str
    weight_layout: str


def resolve_choices(
    isa: str | None = "auto",
    n_threads: int = 1,
    *,
    lm_head: str = "auto",
    weight_layout: str = "auto",
    favour_decode: bool = False,
    stored_head: str = "",
    head_bytes: int | None = None,
) -> EngineChoices:
    """Resolve the ``BITNET_ISA`` override and every "auto" choice, here and nowhere else.

    ``isa`` None, "" or "auto" takes ``BITNET_ISA`` when set, else the fastest kernel family
    built in that runs on this CPU; a named family is kept as given (loading checks that it
    runs here).

    ``lm_head="auto"``: the head a converted checkpoint stores (``stored_head``: it loads
    without requantizing the table), else 6-bit at 2 or more threads where the AVX-512 VNNI
    kernels run (decode is bound by memory there and the 6-bit head reads 25% fewer bytes)
    unless the int8 table (``head_bytes``: vocabulary x hidden size; None for a model of
    unknown size) fits in ``HEAD_IN_CACHE_BYTES``, else int8 (at 1 thread the 6-bit
    unpacking costs more than the bytes saved; AVX2 lacks VNNI). Either way the top logits
    are exact (``exact_logits``).

    ``weight_layout="auto"``: I2_R16, whose 2-bit weights decode faster than 5 base-3 digits
    per byte on every CPU measured, except decoding at 2 or more threads with AVX-512 VBMI,
    where I1_R16 is faster; ``favour_decode`` (the ``speed`` preset) takes it in that case.
    Figures: benchmarks/README.md, "Measured design choices".
    """
    engine = _engine_module()
    if isa in (None, "", "auto"):
        isa = os.environ.get("BITNET_ISA", "") or "auto"
    if isa not in _ISAS:
        raise InvalidParameterError(f"isa must be one of {_ISAS}, got {isa!r}")
    runs = str(engine.best_isa()) if isa == "auto" else isa
    if lm_head == "auto":
        streams = head_bytes is None or head_bytes > HEAD_IN_CACHE_BYTES
        six_bit = n_threads >= 2 and runs == "avx512" and streams
        lm_head = stored_head or ("q6" if six_bit else "int8")
    if weight_layout == "auto":
        dense = favour_decode and n_threads >= 2 and runs == "avx512"
        weight_layout = "i1_r16" if dense and engine.base3_uses_vbmi() else "i2_r16"
    return EngineChoices(isa=runs, lm_head=lm_head, weight_layout=weight_layout)


def default_layout(isa: str = "auto", n_threads: int = 1, favour_decode: bool = False) -> str:
    """The ternary layout for ``weight_layout="auto"`` (see ``resolve_choices``)."""
    return resolve_choices(isa, n_threads, favour_decode=favour_decode).weight_layout


def default_head(isa: str = "auto", n_threads: int = 1, head_bytes: int | None = None) -> str:
    """The output head for ``lm_head="auto"`` on a checkpoint without one (see
    ``resolve_choices``)."""
    return resolve_choices(isa, n_threads, head_bytes=head_bytes).lm_head


def head_table_bytes(config: ModelConfig) -> int:
    """Bytes of the output head stored as int8: one per vocabulary row and hidden column."""
    return config.vocab_size * config.hidden_size


class CpuBackend:
    """Backend plugin for the C++ engine."""

    name = "cpu"
    priority = 100
    description = "C++ ternary engine (AVX2 / AVX-512 VNNI / NEON kernels picked at run time)"

    def available(self) -> tuple[bool, str]:
        try:
            _engine_module()
        except ImportError as exc:
            return False, f"native extension not importable: {exc}"
        return True, ""

    def load(self, checkpoint: Checkpoint, *, n_threads: int, **options: Any) -> CpuEngine:
        isa = options.pop("isa", None)
        progress = options.pop("progress", None)
        preset_name = options.pop("preset", "quality")
        if preset_name not in _PRESETS:
            raise InvalidParameterError(
                f"preset must be one of {sorted(_PRESETS)}, got {preset_name!r}"
            )
        preset = _PRESETS[preset_name]
        lm_head = options.pop("lm_head", preset["lm_head"])
        layout = options.pop("weight_layout", preset["weight_layout"])
        if layout not in _LAYOUTS:
            raise InvalidParameterError(f"weight_layout must be one of {_LAYOUTS}, got {layout!r}")
        if lm_head not in _HEADS:
            raise InvalidParameterError(f"lm_head must be one of {_HEADS}, got {lm_head!r}")
        kv_cache = options.pop("kv_cache", preset["kv_cache"])
        if kv_cache not in _KV_CACHES:
            raise InvalidParameterError(f"kv_cache must be one of {_KV_CACHES}, got {kv_cache!r}")
        exact_logits = options.pop("exact_logits", DEFAULT_EXACT_LOGITS)
        if (
            isinstance(exact_logits, bool)
            or not isinstance(exact_logits, int)
            or not 0 <= exact_logits < 2**31
        ):
            raise InvalidParameterError(
                f"exact_logits must be an integer in [0, 2**31), got {exact_logits!r}"
            )
        if options:
            raise InvalidParameterError(f"unknown cpu backend options: {sorted(options)}")
        check_n_threads(n_threads)
        choices = resolve_choices(
            isa,
            n_threads,
            lm_head=lm_head,
            weight_layout=layout,
            favour_decode=preset_name == "speed",
            stored_head=prepacked_head(checkpoint.config.extra, checkpoint.path),
            head_bytes=head_table_bytes(checkpoint.config),
        )
        return CpuEngine(
            checkpoint,
            n_threads,
            choices.isa,
            choices.lm_head,
            choices.weight_layout,
            progress,
            kv_cache,
            exact_logits,
        )


BACKEND = CpuBackend()


@hookimpl
def bitnet_backend_register(registry: Any) -> None:
    """Register the C++ engine."""
    registry.add(BACKEND)
