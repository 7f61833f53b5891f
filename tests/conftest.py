"""Shared test setup: eager torch for the transformers oracle, cached random checkpoints, a
tokenizer cache in tmp for GGUF tests, the saved states of a training run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# transformers' BitNet quant helpers are wrapped in torch.compile; eager mode gives the
# documented math without a compile step. Must be set before torch is imported.
os.environ["TORCHDYNAMO_DISABLE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def make_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``make_checkpoint(**kwargs)`` -> a directory from ``testing.write_checkpoint(**kwargs)``.

    Written once per distinct kwargs for the whole session: treat the result as read-only
    (copy it with shutil.copytree before changing anything).
    """
    from bitnet_backend.testing import write_checkpoint

    cache: dict[str, Path] = {}

    def make(**kwargs: Any) -> Path:
        key = json.dumps(kwargs, sort_keys=True)
        if key not in cache:
            out = tmp_path_factory.mktemp("ckpt") / "model"
            cache[key] = write_checkpoint(out, **kwargs)
        return cache[key]

    return make


@pytest.fixture(scope="module")
def gguf_tokenizer_cache_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """XDG_CACHE_HOME in tmp for one module, so the tokenizer.json that loading a GGUF rebuilds
    is cached there, not in the user's cache. A module takes it with
    ``pytestmark = pytest.mark.usefixtures("gguf_tokenizer_cache_in_tmp")``.
    """
    with pytest.MonkeyPatch.context() as env:
        cache = tmp_path_factory.mktemp("cache")
        env.setenv("XDG_CACHE_HOME", str(cache))
        yield cache


@pytest.fixture
def saved_training_states(monkeypatch: pytest.MonkeyPatch) -> dict[int, bytes]:
    """Every training state a run in this test saves, by step, as the bytes written then.

    A run keeps one state file and overwrites it; resume tests need the earlier states too.
    """
    from bitnet_backend.training import state

    saved: dict[int, bytes] = {}
    real_save = state.save

    def keep_every_state(path: Path, **kw: Any) -> None:
        real_save(path, **kw)
        saved[int(kw["step"])] = Path(path).read_bytes()

    monkeypatch.setattr(state, "save", keep_every_state)
    return saved
