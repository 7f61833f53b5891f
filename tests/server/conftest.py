"""Fixtures of the server tests: the embedded model and a tiny generated one, served live."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from live_server import LiveServer

import bitnet_backend as bb
from bitnet_backend.server import ServerSettings, create_app

# Both the load and the bad-input tests need the server's threads, not the machine's cores:
# one engine thread keeps the suite polite on a shared 2-core machine.
THREADS = 1


@pytest.fixture(scope="session")
def models(make_checkpoint: Callable[..., Path]) -> Iterator[dict[str, bb.Model]]:
    served = {
        "bitnet": bb.load(n_threads=THREADS),
        "tiny": bb.load(make_checkpoint(), n_threads=THREADS),
    }
    yield served
    for m in served.values():
        m.close()


@pytest.fixture(scope="session")
def server(models: dict[str, bb.Model]) -> Iterator[LiveServer]:
    """The two models behind one server, no API key."""
    app = create_app(ServerSettings(models=dict.fromkeys(models)), models=models)
    with LiveServer(app) as srv:
        yield srv


@pytest.fixture
def serve(models: dict[str, bb.Model]) -> Iterator[Callable[..., LiveServer]]:
    """``serve(**settings)``: a server of its own for one test (stopped after it)."""
    started: list[LiveServer] = []

    def start(**settings: Any) -> LiveServer:
        app = create_app(ServerSettings(models=dict.fromkeys(models), **settings), models=models)
        srv = LiveServer(app).__enter__()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.__exit__(None, None, None)
