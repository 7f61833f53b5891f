"""The backends API tests run on: the NumPy reference always, the C++ engine when it is built."""

from __future__ import annotations

import importlib.util

import pytest

from bitnet_backend.backend import Engine
from bitnet_backend.sampling import SamplingParams


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

GREEDY = SamplingParams(temperature=0.0)


def greedy(engine: Engine, prompt: list[int], n_new: int) -> list[int]:
    """``n_new`` tokens decoded greedily after ``prompt``, one eval per token as a chat runs."""
    session = engine.new_session(len(prompt) + n_new)
    session.eval(prompt)
    out: list[int] = []
    for _ in range(n_new):
        out.append(session.sample(GREEDY))
        session.eval(out[-1:])
    session.close()
    return out
