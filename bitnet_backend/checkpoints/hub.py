"""Resolve a model source (local directory or Hugging Face Hub id) to a local directory.

huggingface_hub is imported only when a hub id is resolved: it costs a noticeable fraction
of a second and local loads never need it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import CheckpointError
from ..user_cache import user_cache_dir

# The files a BitNet checkpoint needs; anything else in a repo (GGUF, PyTorch .bin) is skipped.
ALLOW_PATTERNS = [
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    # Newer repos keep the chat template in its own file.
    "chat_template.jinja",
    "chat_template.json",
    "*.safetensors",
    "model.safetensors.index.json",
]
_GGUF_NAME = re.compile(r"^[A-Za-z0-9][\w.+-]{0,200}$")
_REPO_ID = re.compile(
    r"^(?P<repo>[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95})(?:@(?P<rev>[^\s@]+))?$"
)


def parse_repo_id(source: str) -> tuple[str, str | None] | None:
    """Split ``"owner/name[@revision]"`` into (repo_id, revision); None if not a hub id."""
    m = _REPO_ID.fullmatch(source)
    if m is None or ".." in m["repo"] or "--" in m["repo"] or m["repo"].endswith("."):
        return None
    return m["repo"], m["rev"]


def hub_cache_dir() -> Path:
    """The hub cache directory, from the environment as it is now (not at import time)."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(os.path.expandvars(explicit)).expanduser()
    home = os.environ.get("HF_HOME") or str(user_cache_dir() / "huggingface")
    return Path(os.path.expandvars(home)).expanduser() / "hub"


def hub_offline() -> bool:
    """Whether HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) forbids network access right now."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().upper() in ("1", "ON", "YES", "TRUE")


def resolve_source(source: str | Path) -> Path:
    """Return a local path for ``source``.

    An existing local path is returned as is. ``"owner/name"`` or ``"owner/name@revision"`` is
    fetched with huggingface_hub into its cache (only the files a checkpoint needs) and the
    snapshot directory is returned; ``"owner/name/file.gguf[@revision]"`` fetches that one
    GGUF file and returns its path; HF_HOME / HF_HUB_CACHE / HF_HUB_OFFLINE are honoured.
    Anything else raises CheckpointError.
    """
    local = Path(source).expanduser()
    if local.exists():
        return local
    text = str(source)
    # One GGUF file of a repo (repos often hold several quantizations of one model).
    in_repo = parse_repo_file(text) if isinstance(source, str) else None
    if in_repo is not None:
        repo_id, filename, revision = in_repo
        return _snapshot(repo_id, revision, [filename]) / filename
    parsed = parse_repo_id(text) if isinstance(source, str) else None
    if parsed is None:
        raise CheckpointError(text, "no such file or directory (and not a Hugging Face Hub id)")
    repo_id, revision = parsed
    return _snapshot(repo_id, revision)


def parse_repo_file(source: str) -> tuple[str, str, str | None] | None:
    """Split ``"owner/name/file.gguf[@revision]"`` into (repo_id, file, revision), else None."""
    head, sep, rev = source.partition("@")
    parts = head.split("/")
    if len(parts) != 3 or not parts[2].endswith(".gguf") or not _GGUF_NAME.fullmatch(parts[2]):
        return None
    parsed = parse_repo_id("/".join(parts[:2]) + (sep + rev if sep else ""))
    return None if parsed is None else (parsed[0], parts[2], parsed[1])


def _snapshot(repo_id: str, revision: str | None, patterns: list[str] | None = None) -> Path:
    import huggingface_hub
    from huggingface_hub import errors as hf_errors

    cache = hub_cache_dir()
    offline = hub_offline()
    rev = revision or "main"
    label = f"{repo_id}@{revision}" if revision else repo_id
    download_cmd = f"hf download {repo_id}" + (f" --revision {revision}" if revision else "")
    try:
        folder = huggingface_hub.snapshot_download(
            repo_id,
            revision=revision,
            cache_dir=cache,
            allow_patterns=patterns or ALLOW_PATTERNS,
            local_files_only=offline,
        )
    except hf_errors.RevisionNotFoundError:
        raise CheckpointError(label, f"revision {rev!r} does not exist on the Hub") from None
    except hf_errors.RepositoryNotFoundError:
        raise CheckpointError(
            label,
            "repository not found on the Hub (if it is private or gated, log in with "
            "`hf auth login` and accept its terms)",
        ) from None
    except hf_errors.LocalEntryNotFoundError as exc:
        incomplete = getattr(hf_errors, "IncompleteSnapshotError", ())
        if incomplete and isinstance(exc, incomplete):
            raise CheckpointError(
                label, f"the cached snapshot is incomplete: {_first_line(exc)}"
            ) from None
        if offline:
            reason = (
                f"not in the local Hugging Face cache ({cache}) and downloads are disabled "
                f"(HF_HUB_OFFLINE=1). Download it first with `{download_cmd}` while online, "
                "or point HF_HOME / HF_HUB_CACHE at a cache that holds it"
            )
        else:
            reason = (
                f"could not be downloaded and is not in the local Hugging Face cache ({cache}): "
                f"{_first_line(exc)}"
            )
        raise CheckpointError(label, reason) from None
    except (hf_errors.HfHubHTTPError, OSError, ValueError) as exc:
        raise CheckpointError(label, f"download failed: {_first_line(exc)}") from None
    return Path(folder)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
