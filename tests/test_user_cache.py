"""Every user cache the package writes (GGUF tokenizers, hub downloads, chat history) is under
XDG_CACHE_HOME, read when used, or ~/.cache without it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bitnet_backend.checkpoints.hub import hub_cache_dir
from bitnet_backend.cli.line_input import history_file
from bitnet_backend.user_cache import user_cache_dir


@pytest.fixture
def hub_env_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("hub_env_unset")
def test_caches_follow_xdg_cache_home_at_each_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("a", "b"):
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / name))
        assert user_cache_dir() == tmp_path / name
        assert hub_cache_dir() == tmp_path / name / "huggingface" / "hub"
        assert history_file() == tmp_path / name / "bitnet-backend" / "chat_history"


@pytest.mark.usefixtures("hub_env_unset")
def test_without_xdg_cache_home_the_cache_is_in_the_home_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert user_cache_dir() == tmp_path / ".cache"
    assert hub_cache_dir() == tmp_path / ".cache" / "huggingface" / "hub"
    # An empty value counts as unset, as the XDG rules say.
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    assert user_cache_dir() == tmp_path / ".cache"
