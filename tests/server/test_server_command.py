"""``bitnet serve`` as a user runs it, and the package without the server extra."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

START_TIMEOUT_S = 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_bitnet_serve_serves_named_models_behind_a_key(
    make_checkpoint: Callable[..., Path],
) -> None:
    port = _free_port()
    env = {**os.environ, "BITNET_API_KEY": "k3y"}
    cmd = [
        sys.executable,
        "-m",
        "bitnet_backend.cli",
        "serve",
        "--model",
        f"tiny={make_checkpoint()}",
        "--port",
        str(port),
        "--threads",
        "1",
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert proc.poll() is None, proc.communicate()[1].decode()
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "bitnet serve did not start"
            time.sleep(0.1)
        assert httpx.get(f"{url}/v1/models", timeout=30).status_code == 401
        models = httpx.get(
            f"{url}/v1/models", headers={"Authorization": "Bearer k3y"}, timeout=30
        ).json()
        assert [m["id"] for m in models["data"]] == ["tiny"]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == 0


def test_without_the_server_extra_serve_names_the_install_command() -> None:
    code = (
        "import sys\n"
        "sys.modules['fastapi'] = None  # as if the extra were not installed\n"
        "from bitnet_backend.cli import main\n"
        "sys.exit(main(['serve']))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and 'pip install "bitnet-backend[server]"' in lines[0]


def test_importing_the_package_does_not_import_the_server_stack() -> None:
    code = (
        "import sys, bitnet_backend, bitnet_backend.cli\n"
        "heavy = [m for m in ('fastapi', 'uvicorn', 'starlette', 'ray', 'prometheus_client')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ""
