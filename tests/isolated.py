"""Run a snippet in a child process with a wall-clock timeout and an address-space cap.

For inputs that used to crash, hang or exhaust memory: a regression then fails the test
instead of taking the test process down. The child prints one JSON line describing the
outcome: ``{"ok": value}`` or ``{"error": type name, "message": text}``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
from typing import Any

_PRELUDE = """
import json, resource, sys
limit = {memory}
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
def report(value=None):
    print(json.dumps({{"ok": value}}, default=repr), flush=True)
try:
{body}
except BaseException as exc:
    print(json.dumps({{"error": type(exc).__name__, "message": str(exc)[:2000]}}), flush=True)
"""


def run_isolated(
    body: str, *, timeout: float = 60.0, memory: int = 3 * 1024**3, **values: Any
) -> dict[str, Any]:
    """Run ``body`` (Python; ``report(x)`` records a result) with ``values`` bound as names.

    Returns the child's outcome; a signal, a non-zero exit or a timeout fails with the
    child's stderr in the message.
    """
    assigns = "".join(f"{k} = {v!r}\n" for k, v in values.items())
    code = _PRELUDE.format(
        memory=int(memory), body=textwrap.indent(assigns + textwrap.dedent(body), "    ")
    )
    proc = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", code],
        # Not the checkout: `-c` puts the working directory first on sys.path, and the
        # source tree has no compiled engine; the installed package must be imported.
        cwd=tempfile.gettempdir(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert proc.returncode == 0 and lines, (
        f"child failed (rc {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    )
    out: dict[str, Any] = json.loads(lines[-1])
    return out
