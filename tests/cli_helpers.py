"""Running the installed ``bitnet`` console script in tests: pipes, or a pseudo-terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

BITNET = Path(sys.executable).with_name("bitnet")
TIMEOUT = 120.0


def bitnet_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("BITNET_DEBUG", None)
    env.update(extra)
    return env


def _default_sigint() -> None:
    # A test run in the background of a non-interactive shell inherits SIGINT ignored, and
    # so would the child: give it the default disposition a terminal has.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def bitnet(
    *args: str, stdin: bytes | str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``bitnet ARGS`` to completion; stdout and stderr as text."""
    data = stdin.encode() if isinstance(stdin, str) else stdin
    r = subprocess.run(
        [str(BITNET), *args],
        input=data,
        capture_output=True,
        env=env or bitnet_env(),
        timeout=TIMEOUT,
        preexec_fn=_default_sigint,
    )
    return subprocess.CompletedProcess(
        r.args, r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")
    )


def assert_one_error_line(r: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """``r`` failed the way every ``bitnet`` failure must: status 2, one error line."""
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert r.stderr.startswith("bitnet: error: "), r.stderr
    assert r.stderr.count("\n") == 1, r.stderr
    assert "Traceback" not in r.stderr
    for fragment in fragments:
        assert fragment in r.stderr, r.stderr


def spawn(*args: str, stdin: int | None = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(BITNET), *args],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=bitnet_env(),
        preexec_fn=_default_sigint,
    )


class Terminal:
    """``bitnet ARGS`` on a pseudo-terminal, as a user at a keyboard would run it."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # the child: the pty is its controlling terminal
            try:
                os.execve(str(BITNET), [str(BITNET), *args], env or bitnet_env())
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        # A new pty is 0x0; programs that size their output to the terminal need a real one.
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
        self.output = b""  # everything read so far
        self._seen = 0  # how much of it expect() has consumed
        self.status: int | None = None

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def expect(self, text: bytes, timeout: float = TIMEOUT) -> bytes:
        """Read until ``text`` appears after what earlier calls consumed; returns the output
        from there up to and including it."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.output.find(text, self._seen)
            if found >= 0:
                start, self._seen = self._seen, found + len(text)
                return self.output[start : self._seen]
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(left):
                raise AssertionError(f"{text!r} not seen; output so far: {self.output!r}")

    def wait(self, timeout: float = TIMEOUT) -> int:
        """The exit status (as a shell reports it: 128+N for signal N)."""
        deadline = time.monotonic() + timeout
        while self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
                if self.status < 0:
                    self.status = 128 - self.status
                break
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"bitnet did not exit; output: {self.output!r}")
            self._read(0.05)
        while self._read(0.05):
            pass
        return self.status

    def kill(self) -> None:
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            self.status = -9

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        if not ready:
            return False
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # the child closed the terminal
            return False
        self.output += data
        return bool(data)

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
        os.close(self.fd)
