"""The network guard the integration test suites run under."""

from __future__ import annotations

import os
import socket

import pytest

from bitnet_backend.offline import block_network


def test_remote_hosts_fail_fast_and_local_ones_work(monkeypatch: pytest.MonkeyPatch) -> None:
    block_network(monkeypatch)
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    with pytest.raises(OSError, match="tests run offline"):
        socket.create_connection(("203.0.113.7", 443), timeout=1)
    with pytest.raises(OSError, match="tests run offline"):
        socket.getaddrinfo("huggingface.co", 443)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=5):
            pass
