"""A real uvicorn server on 127.0.0.1 (ephemeral port) in a thread, for the server tests."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


class LiveServer:
    """``with LiveServer(app) as srv:`` serves ``app`` at ``srv.url`` until the block ends."""

    def __init__(self, app: Any) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def __enter__(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(STOP_TIMEOUT_S)
        self._sock.close()
        if self._thread.is_alive():
            raise RuntimeError("the test server did not stop")
