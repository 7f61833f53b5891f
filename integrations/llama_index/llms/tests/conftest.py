"""Fixtures shared by this package's tests: the one choice of test model, and an offline guard.

The model: the embedded default model when this installation has one (a small trained BitNet),
else a random-weight checkpoint of the "tiny" shape written once per session. Random weights
make noise for text, but tool calls and JSON are produced under a grammar, so they are still
valid; tests that need real answers are marked ``needs_trained_model`` and skipped without it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from llama_index.core import Settings
from llama_index.core.bridge.pydantic import Field
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.llms.bitnet import Bitnet
from llama_index.llms.bitnet.loading import load_shared

import bitnet_backend as bb
from bitnet_backend.offline import block_network
from bitnet_backend.testing import write_checkpoint

# Enough for a whole tool call or a small JSON object of the test schemas, small enough that
# the suite stays fast on two cores.
MAX_NEW_TOKENS = 96


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "needs_trained_model: needs the embedded trained default model for real answers; "
        "skipped while the installation has none",
    )


@pytest.fixture(scope="session")
def trained_model_available() -> bool:
    try:
        load_shared(None)  # the same cache the tests' Bitnet(model=None) will hit
    except bb.CheckpointError:
        return False
    return True


@pytest.fixture(scope="session")
def model_source(
    trained_model_available: bool, tmp_path_factory: pytest.TempPathFactory
) -> str | None:
    """What every test loads: None (the embedded model) or a random tiny checkpoint."""
    if trained_model_available:
        return None
    return str(write_checkpoint(tmp_path_factory.mktemp("bitnet-tiny"), shape="tiny"))


@pytest.fixture(autouse=True)
def _skip_without_trained_model(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("needs_trained_model") and not request.getfixturevalue(
        "trained_model_available"
    ):
        pytest.skip("needs the embedded trained default model, which is not bundled yet")


@pytest.fixture
def llm(model_source: str | None) -> Bitnet:
    """Greedy, so every call with the same input gives the same text."""
    return Bitnet(model=model_source, max_new_tokens=MAX_NEW_TOKENS, temperature=0.0)


@pytest.fixture
def settings_llm(llm: Bitnet) -> Iterator[Bitnet]:
    """``Settings.llm`` and ``Settings.tokenizer`` set to the test model, restored afterwards."""
    import llama_index.core

    saved = (Settings._llm, Settings._tokenizer, llama_index.core.global_tokenizer)
    Settings.llm = llm
    Settings.tokenizer = llm.tokenizer
    try:
        yield llm
    finally:
        Settings._llm, Settings._tokenizer, llama_index.core.global_tokenizer = saved


class _Recorder(BaseEventHandler):
    events: list[BaseEvent] = Field(default_factory=list)

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        self.events.append(event)


@pytest.fixture
def events() -> Iterator[list[BaseEvent]]:
    """Every instrumentation event dispatched during the test, in order."""
    root = get_dispatcher()
    recorder = _Recorder(events=[])
    root.add_event_handler(recorder)
    try:
        yield recorder.events
    finally:
        root.event_handlers = [h for h in root.event_handlers if h is not recorder]


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail fast and loudly if anything (nltk data, tiktoken files, the hub) goes online."""
    block_network(monkeypatch)
