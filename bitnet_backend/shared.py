"""One loaded model per set of load settings, shared by every framework object that asks.

A RAG pipeline typically builds a chat model and an embedding model over the same checkpoint,
and frameworks (LangChain, LlamaIndex) copy model objects freely; loading the weights once per
object would multiply memory and start-up time. A ``Model`` is safe to share between threads
(each generation runs in its own session), so the cache hands out the same instance.

The cache holds its models strongly, on purpose: integrations load a per-call ``model=``
override through it without keeping a reference, and weak references would read those weights
again on every call. A model leaves the cache when it is closed (its owner's way of saying it
is no longer wanted): the next ``load_shared`` of any settings drops it, and the next one of
its own settings loads it afresh.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from .model import Model, load

_lock = threading.Lock()
_models: dict[str, Model] = {}


def _source_key(source: str | None) -> str | None:
    if source is None:
        return None
    path = Path(source).expanduser()
    # Two spellings of one directory must share a model; hub ids stay as written.
    return str(path.resolve()) if path.exists() else source


def cache_key(
    source: str | None,
    backend: str = "auto",
    n_threads: int | None = None,
    n_ctx: int | None = None,
    options: dict[str, Any] | None = None,
) -> str:
    """The key under which a model loaded with these settings is shared."""
    return json.dumps(
        [_source_key(source), backend, n_threads, n_ctx, options or {}],
        sort_keys=True,
        default=repr,
    )


def load_shared(
    source: str | None = None,
    backend: str = "auto",
    n_threads: int | None = None,
    n_ctx: int | None = None,
    options: dict[str, Any] | None = None,
) -> Model:
    """``bitnet_backend.load`` with these settings, loaded at most once per process.

    ``source`` is a checkpoint directory, a hub id, or None for the embedded default model;
    ``options`` go to the backend (``preset``, ``lm_head``, ...). Errors of ``load`` (e.g.
    ``CheckpointError``) propagate and nothing is cached. A cached model that was closed is
    replaced by a fresh load.
    """
    key = cache_key(source, backend, n_threads, n_ctx, options)
    # One lock for all loads: a second caller of the same settings waits for the first
    # instead of reading the weights again, and concurrent loads would compete for the same
    # cores anyway.
    with _lock:
        _drop_closed()
        model = _models.get(key)
        if model is None:
            model = load(
                source, backend=backend, n_threads=n_threads, n_ctx=n_ctx, **(options or {})
            )
            _models[key] = model
        return model


def _drop_closed() -> None:
    """Forget the models their users closed, so the cache does not keep them alive."""
    for key in [key for key, model in _models.items() if model.closed]:
        del _models[key]
