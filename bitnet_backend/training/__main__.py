"""``python -m bitnet_backend.training``: retrain the embedded default model."""

from .train import main

raise SystemExit(main())
