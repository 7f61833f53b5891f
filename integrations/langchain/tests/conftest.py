"""The models every test of this package runs on, and an offline guard.

LangChain's standard suites read their model settings from class properties, not fixtures,
so the choice is made once at configure time and handed over in environment variables:

- ``LANGCHAIN_BITNET_TINY``: a random-weight checkpoint of the "tiny" shape, written for this
  session. Its text is noise, but tool calls and JSON are decoded under a grammar, so they are
  still valid: enough for everything but the quality of answers.
- ``LANGCHAIN_BITNET_TRAINED``: a real trained model for the integration tests: the directory
  in ``BITNET_TEST_MODEL`` if set, else "default" (the model embedded in bitnet-backend), else
  empty, and the integration tests are skipped.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

import bitnet_backend as bb
from bitnet_backend.offline import block_network
from bitnet_backend.testing import write_checkpoint

TINY = "LANGCHAIN_BITNET_TINY"
TRAINED = "LANGCHAIN_BITNET_TRAINED"


def _trained_source() -> str:
    override = os.environ.get("BITNET_TEST_MODEL")
    if override:
        return override
    try:
        bb.load_shared(None)
    except bb.CheckpointError:
        return ""
    return "default"


def _unset(name: str) -> None:
    os.environ.pop(name, None)


def pytest_configure(config: pytest.Config) -> None:
    if TINY not in os.environ:
        tmp = tempfile.mkdtemp(prefix="langchain-bitnet-tiny-")
        config.add_cleanup(lambda: shutil.rmtree(tmp, ignore_errors=True))
        os.environ[TINY] = str(write_checkpoint(tmp, shape="tiny"))
        config.add_cleanup(lambda: _unset(TINY))
    if TRAINED not in os.environ:
        os.environ[TRAINED] = _trained_source()
        config.add_cleanup(lambda: _unset(TRAINED))


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail fast and loudly if anything (tiktoken files, the hub) goes online."""
    block_network(monkeypatch)
