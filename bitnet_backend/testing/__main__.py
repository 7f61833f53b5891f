"""``python -m bitnet_backend.testing``: see ``bitnet_backend.testing.cli``."""

from __future__ import annotations

import os

from .cli import main

if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    raise SystemExit(main())
