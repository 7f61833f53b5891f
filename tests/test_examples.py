"""Every script in examples/ runs offline on the embedded default model and does its job."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bitnet_backend.model import DEFAULT_MODEL_DIR

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

pytestmark = pytest.mark.skipif(
    not (DEFAULT_MODEL_DIR / "config.json").is_file(), reason="no default model bundled"
)


def run(*cmd: str) -> str:
    # The interpreter's bin/ first, so the `bitnet` script installed with it is the one run.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "PATH": path, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, env=env, cwd=EXAMPLES.parent
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_quickstart() -> None:
    out = run(sys.executable, str(EXAMPLES / "quickstart.py"))
    assert "reading: Porto" in out
    assert "tool call: get_weather {'city': 'Lisbon'}" in out
    answer = next(line for line in out.splitlines() if line.startswith("answer:"))
    assert "21" in answer and "sunny" in answer
    assert "json: {'name': 'Mara Lind', 'city': 'Porto'}" in out


def test_bitnet_run() -> None:
    out = run("bash", str(EXAMPLES / "bitnet_run.sh"))
    lines = out.splitlines()
    assert any("Paris" in line for line in lines)
    assert any(line.strip().rstrip(".") == "Riga" for line in lines)
    assert any(line.strip().rstrip(".") == "Oslo" for line in lines)


def test_langchain_rag() -> None:
    out = run(sys.executable, str(EXAMPLES / "langchain_rag.py"))
    assert "Where does Omar Weber live? -> Glasgow" in out
    assert "What does Kestrel Works make? -> telescopes" in out.replace("Telescopes", "telescopes")


def test_langchain_tools() -> None:
    out = run(sys.executable, str(EXAMPLES / "langchain_tools.py"))
    assert "tool call: get_weather {'city': 'Bergen'}" in out
    answer = next(line for line in out.splitlines() if line.startswith("answer:"))
    assert "9" in answer and "rain" in answer


def test_llama_index_rag() -> None:
    out = run(sys.executable, str(EXAMPLES / "llama_index_rag.py"))
    assert "Where does Omar Weber live? -> Glasgow" in out
    assert "What does Kestrel Works make? -> telescopes" in out.replace("Telescopes", "telescopes")


def test_llama_index_agent() -> None:
    out = run(sys.executable, str(EXAMPLES / "llama_index_agent.py"))
    assert "tool: get_weather({'city': 'Oslo'})" in out
    answer = next(line for line in out.splitlines() if line.startswith("answer:"))
    assert "14" in answer and "wind" in answer
