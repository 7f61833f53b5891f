"""The backends API tests run on: the NumPy reference always, the C++ engine when it is built."""

from __future__ import annotations

import importlib.util

import pytest


def cpu_built() -> bool:
    """True when the native extension bitnet_backend._engine can be imported."""
    try:
        return importlib.util.find_spec("bitnet_backend._engine") is not None
    except ImportError:
        return False


BACKENDS = [
    "reference",
    pytest.param(
        "cpu",
        marks=pytest.mark.skipif(not cpu_built(), reason="bitnet_backend._engine is not built"),
    ),
]
