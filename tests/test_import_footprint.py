"""Modules a process holds only once it needs them: loading a model (progress bars included) and
generating from token ids imports neither jinja2 (chat templates), OpenSSL's hashlib backend
(tool-call ids) nor asyncio and ssl (the async API; ~7 MB resident); a chat render imports
jinja2 then. Each check runs in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from backends import cpu_built

pytestmark = pytest.mark.skipif(not cpu_built(), reason="bitnet_backend._engine is not built")

LAZY = ("jinja2", "_hashlib", "asyncio", "ssl")


def _modules_after(code: str) -> dict[str, bool]:
    script = (
        "import json, sys\n"
        f"{code}\n"
        f"print(json.dumps({{name: name in sys.modules for name in {LAZY!r}}}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    result: dict[str, bool] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture(scope="module")
def model_dir(make_checkpoint: Callable[..., Path]) -> Path:
    return make_checkpoint(shape="tiny", seed=3)


def test_generating_from_token_ids_imports_none_of_them(model_dir: Path) -> None:
    code = (
        "import bitnet_backend as bb\n"
        f"model = bb.load({str(model_dir)!r}, n_threads=1, progress=True)\n"
        "model.generate([1, 2, 3], max_tokens=2, temperature=0.0)\n"
        "model.detokenize([1, 2, 3])\n"
    )
    assert _modules_after(code) == dict.fromkeys(LAZY, False)


def test_a_chat_render_imports_jinja2_when_it_is_needed(model_dir: Path) -> None:
    code = (
        "from bitnet_backend.tokenizer import Tokenizer\n"
        f"tok = Tokenizer.from_dir({str(model_dir)!r})\n"
        "assert 'jinja2' not in sys.modules\n"
        "tok.apply_chat_template([{'role': 'user', 'content': 'hi'}])\n"
    )
    assert _modules_after(code)["jinja2"] is True
