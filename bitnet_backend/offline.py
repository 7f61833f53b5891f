"""A network guard for test suites: the project's tests and the integrations' run offline.

Anything that tries to reach a non-local host (the hub, tokenizer or NLTK downloads in a
framework) fails at once with a clear OSError instead of hanging on a missing network.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any


def _is_local(host: Any) -> bool:
    if not isinstance(host, str) or host == "localhost":
        return True  # AF_UNIX paths and the like
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def block_network(monkeypatch: Any) -> None:
    """Make non-local connects and name lookups raise; set HF_HUB_OFFLINE=1.

    ``monkeypatch`` is pytest's fixture (anything with ``setattr`` / ``setenv``), so the
    guard is undone after the test.
    """
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> None:
        host = address[0] if isinstance(address, tuple) else address
        if not _is_local(host):
            raise OSError(f"tests run offline; something tried to connect to {address!r}")
        real_connect(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not _is_local(host if isinstance(host, str) else host.decode()):
            raise OSError(f"tests run offline; something tried to resolve {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
