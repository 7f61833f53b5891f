"""A checkpoint laid out as a huggingface_hub cache entry, so hub ids load offline."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def write_hub_cache(
    cache_dir: str | Path, repo_id: str, checkpoint_dir: str | Path, revision: str = "main"
) -> Path:
    """Store ``checkpoint_dir`` in a huggingface_hub cache as ``repo_id`` at ``revision``.

    ``cache_dir`` is the hub cache (``$HF_HUB_CACHE``, by default ``$HF_HOME/hub``). Writes
    ``models--owner--name/{blobs,snapshots/<commit>,refs/<revision>}`` as huggingface_hub
    does (snapshot files are relative symlinks to content-addressed blobs) and returns the
    snapshot directory.
    """
    owner_name = repo_id.split("/")
    if len(owner_name) != 2 or not all(owner_name):
        raise ValueError(f"repo_id must look like 'owner/name', got {repo_id!r}")
    storage = Path(cache_dir) / f"models--{owner_name[0]}--{owner_name[1]}"
    blobs = storage / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in Path(checkpoint_dir).iterdir() if p.is_file())
    digests: dict[str, str] = {}
    for f in files:
        h = hashlib.sha256()
        with open(f, "rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
        digests[f.name] = h.hexdigest()
        blob = blobs / digests[f.name]
        if not blob.exists():
            shutil.copyfile(f, blob)
    if _COMMIT.match(revision):
        commit = revision
    else:
        listing = "".join(f"{n}\0{d}\n" for n, d in digests.items())
        commit = hashlib.sha1(listing.encode(), usedforsecurity=False).hexdigest()
        ref = storage / "refs" / revision
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(commit)
    snapshot = storage / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for name, digest in digests.items():
        link = snapshot / name
        if link.is_symlink() or link.exists():
            link.unlink()
        try:
            link.symlink_to(Path("..") / ".." / "blobs" / digest)
        except OSError:
            # Filesystems without symlinks: huggingface_hub then stores plain copies too.
            shutil.copyfile(blobs / digest, link)
    return snapshot
