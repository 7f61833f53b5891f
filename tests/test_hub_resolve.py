"""Resolving sources: local paths as is, hub ids through the huggingface_hub cache offline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bitnet_backend.checkpoints import load_checkpoint, resolve_source
from bitnet_backend.checkpoints.hub import parse_repo_id
from bitnet_backend.errors import CheckpointError
from bitnet_backend.testing import write_hub_cache

REPO = "bitnet-tests/tiny-random"


@pytest.fixture
def offline_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "hf" / "hub"
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def test_existing_local_directory_is_returned_unchanged(make_checkpoint) -> None:
    path = make_checkpoint()
    assert resolve_source(str(path)) == path
    assert resolve_source(path) == path


def test_missing_local_path_is_a_checkpoint_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "model"
    with pytest.raises(CheckpointError) as info:
        resolve_source(str(missing))
    assert info.value.path == str(missing) and "no such file" in info.value.reason


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("microsoft/bitnet-b1.58-2B-4T", ("microsoft/bitnet-b1.58-2B-4T", None)),
        ("owner/name@v1.0", ("owner/name", "v1.0")),
        ("owner/name@refs/pr/3", ("owner/name", "refs/pr/3")),
        ("./owner/name", None),
        ("/abs/path", None),
        ("a/b/c", None),
        ("owner/../x", None),
        ("model.gguf", None),
    ],
)
def test_hub_id_syntax(source: str, expected: tuple[str, str | None] | None) -> None:
    assert parse_repo_id(source) == expected


def test_hub_id_loads_offline_from_the_cache(make_checkpoint, offline_cache: Path) -> None:
    snapshot = write_hub_cache(offline_cache, REPO, make_checkpoint())
    resolved = resolve_source(REPO)
    assert resolved == snapshot
    assert (resolved / "model.safetensors").is_symlink()
    with load_checkpoint(resolved) as ck:
        assert ck.config.hidden_size == 64


def test_hub_id_with_revision_loads_that_revision(make_checkpoint, offline_cache: Path) -> None:
    write_hub_cache(offline_cache, REPO, make_checkpoint())
    other = write_hub_cache(offline_cache, REPO, make_checkpoint(seed=1), revision="v2")
    assert resolve_source(f"{REPO}@v2") == other
    assert resolve_source(REPO) != other


def test_hf_home_locates_the_cache(make_checkpoint, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snapshot = write_hub_cache(tmp_path / "home" / "hub", REPO, make_checkpoint())
    assert resolve_source(REPO) == snapshot


def test_uncached_hub_id_offline_fails_with_download_hint(offline_cache: Path) -> None:
    with pytest.raises(CheckpointError) as info:
        resolve_source("bitnet-tests/not-downloaded")
    err = info.value
    assert err.path == "bitnet-tests/not-downloaded"
    assert "not in the local Hugging Face cache" in err.reason
    assert "hf download bitnet-tests/not-downloaded" in err.reason
    assert str(offline_cache) in err.reason


def test_uncached_revision_offline_fails(make_checkpoint, offline_cache: Path) -> None:
    write_hub_cache(offline_cache, REPO, make_checkpoint())
    with pytest.raises(CheckpointError, match="not in the local Hugging Face cache"):
        resolve_source(f"{REPO}@never-downloaded")


def test_resolving_a_local_directory_does_not_import_huggingface_hub(make_checkpoint) -> None:
    code = (
        "import sys\n"
        "from bitnet_backend.checkpoints import load_checkpoint, resolve_source\n"
        f"load_checkpoint(resolve_source({str(make_checkpoint())!r})).close()\n"
        "assert 'huggingface_hub' not in sys.modules, 'huggingface_hub imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
