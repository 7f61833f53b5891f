"""Loading a model: where its files are, reading and preparing the weights, its tokenizer.

``Model``'s ``load`` (model.py) is the public entry point; this module does the work up to
the point where a Model is made of the parts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import plugins, validation
from .convert_hint import suggest_convert
from .errors import CheckpointError, InvalidParameterError
from .scheduler import resolve_limits
from .threads import adapt_to_busy_cores, check_n_threads, default_threads
from .tokenizer import Tokenizer, find_chat_template

if TYPE_CHECKING:
    from .backend import Engine
    from .checkpoints.hf import Checkpoint

DEFAULT_MODEL_DIR = Path(__file__).parent / "data" / "default-model"
# Above this many bytes of weights, loading shows a progress bar when asked to decide itself.
LARGE_CHECKPOINT_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class LoadedParts:
    """What a Model is made of: the prepared engine, its checkpoint and tokenizer."""

    engine: Engine
    checkpoint: Checkpoint
    tokenizer: Tokenizer | None
    n_ctx: int
    n_threads: int
    backend_name: str


def load_parts(
    source: str | os.PathLike[str] | None,
    backend: str,
    n_threads: int | None,
    n_ctx: int | None,
    progress: bool | None,
    *,
    max_batch: int | None,
    kv_budget: int | None,
    queue_timeout: float | None,
    verify: bool,
    options: dict[str, Any],
) -> LoadedParts:
    """Check the arguments of ``load``, then read and prepare the checkpoint on the backend.

    Every argument is checked before the weights are read; the checkpoint is closed again
    when anything fails after it was opened.
    """
    default_team = n_threads is None
    n_threads = check_n_threads(default_threads() if n_threads is None else n_threads)
    if n_ctx is not None and (isinstance(n_ctx, bool) or not isinstance(n_ctx, int) or n_ctx < 1):
        raise InvalidParameterError(f"n_ctx must be an integer >= 1, got {n_ctx!r}")
    chosen = plugins.get_backend(backend)  # before reading gigabytes of weights
    path = resolve_source(source)
    large = checkpoint_bytes(path) >= LARGE_CHECKPOINT_BYTES
    if progress is None:
        progress = large

    from .checkpoints.hf import load_checkpoint

    ckpt = load_checkpoint(path, progress=bool(progress), verify=bool(verify))
    try:
        if large:
            suggest_convert(ckpt)
        max_pos = ckpt.config.max_position_embeddings
        if n_ctx is not None and n_ctx > max_pos:
            raise InvalidParameterError(
                f"n_ctx {n_ctx} is larger than the model's context length {max_pos}"
            )
        resolve_limits(n_ctx or max_pos, n_threads, max_batch, kv_budget, queue_timeout)
        tokenizer = make_tokenizer(ckpt)
        if progress:
            with LayerProgress(ckpt.config.num_hidden_layers) as bar:
                engine = chosen.load(ckpt, n_threads=n_threads, progress=bar.update, **options)
        else:
            engine = chosen.load(ckpt, n_threads=n_threads, **options)
        if default_team:
            adapt_to_busy_cores(engine)
    except BaseException:
        ckpt.close()
        raise
    return LoadedParts(
        engine=engine,
        checkpoint=ckpt,
        tokenizer=tokenizer,
        n_ctx=n_ctx or ckpt.config.max_position_embeddings,
        n_threads=n_threads,
        backend_name=chosen.name,
    )


def resolve_source(source: str | os.PathLike[str] | None) -> Path:
    """The local path of ``source``: the default model, a path, or a hub id downloaded."""
    if source is None:
        if not (DEFAULT_MODEL_DIR / "config.json").is_file():
            raise CheckpointError(
                DEFAULT_MODEL_DIR,
                "no default model is bundled with this installation; pass a model directory "
                "or a Hugging Face hub id",
            )
        return DEFAULT_MODEL_DIR
    if not isinstance(source, (str, os.PathLike)):
        raise InvalidParameterError(f"source must be a path or a hub id, got {source!r}")
    if not str(source).strip():
        raise InvalidParameterError("source is an empty string: pass a path or a hub id")
    path = Path(source).expanduser()
    try:
        if path.exists():
            return path
    except OSError as exc:  # e.g. a name too long for the file system
        raise CheckpointError(str(source)[:200], f"cannot access: {exc.strerror}") from None
    try:
        from .checkpoints.hub import resolve_source as resolve_hub_id
    except ImportError:
        raise CheckpointError(source, "no such file or directory") from None
    return Path(resolve_hub_id(str(source)))


def checkpoint_bytes(path: Path) -> int:
    """Bytes of weight files under a local checkpoint path (0 when it is not local)."""
    if path.is_file():
        return path.stat().st_size
    if not path.is_dir():
        return 0
    return sum(f.stat().st_size for f in validation.existing_weight_files(path))


class LayerProgress:
    """A tqdm bar over the layers a backend prepares (repacking is the slow part of a load)."""

    def __init__(self, total: int) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=total, desc="preparing weights", unit="layer", leave=False)

    def update(self, done: int, total: int) -> None:
        self._bar.total = total
        self._bar.n = done
        self._bar.refresh()

    def __enter__(self) -> LayerProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.close()


def make_tokenizer(ckpt: Checkpoint) -> Tokenizer | None:
    """The tokenizer of a checkpoint (None when it has none), checked against its vocabulary."""
    tok_file = getattr(ckpt, "tokenizer_file", None)
    if tok_file is None or not Path(tok_file).is_file():
        return None
    cfg = ckpt.tokenizer_config or {}
    tokenizer = Tokenizer(
        tok_file,
        cfg,
        chat_template=find_chat_template(Path(tok_file).parent, cfg),
        bos_token_id=ckpt.config.bos_token_id,
        eos_token_ids=ckpt.eos_token_ids,
        vocab_size=ckpt.config.vocab_size,
    )
    validation.check_tokenizer_fits(tok_file, tokenizer.tokenizer_size, ckpt.config.vocab_size)
    return tokenizer
