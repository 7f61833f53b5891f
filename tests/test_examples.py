"""Every script in examples/ runs offline on the embedded default model and does its job.

Each script runs once per session; the tests check what it printed: first the structure
(a tool call to the right tool, an answer, JSON of the schema), then the values themselves.
The examples' inputs are ones the embedded model gets right, greedily; a retrained model that
gets one wrong fails here, and the input (or the model) has to change.
"""

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

_outputs: dict[str, str] = {}


def run(*cmd: str) -> str:
    # The interpreter's bin/ first, so the `bitnet` script installed with it is the one run.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "PATH": path, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, env=env, cwd=EXAMPLES.parent
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def output(script: str) -> str:
    """What ``script`` printed (run once per session)."""
    if script not in _outputs:
        if script.endswith(".sh"):
            _outputs[script] = run("bash", str(EXAMPLES / script))
        else:
            _outputs[script] = run(sys.executable, str(EXAMPLES / script))
    return _outputs[script]


def line(out: str, prefix: str) -> str:
    return next(x for x in out.splitlines() if x.startswith(prefix))


CAVEAT = "(the demo model embedded in bitnet-backend is tiny and can be wrong)"


def test_quickstart() -> None:
    out = output("quickstart.py")
    assert line(out, "model: default, ")
    assert CAVEAT in out
    assert line(out, "reading: ").removeprefix("reading: ").strip()
    assert line(out, "tool call: get_weather {'city': ")
    assert line(out, "answer: ").removeprefix("answer: ").strip()
    assert line(out, "json: {'city': ").endswith("}")  # the whole object, parsed


def test_quickstart_values() -> None:
    out = output("quickstart.py")
    assert "reading: Porto" in out
    assert "tool call: get_weather {'city': 'Lisbon'}" in out
    assert "21" in line(out, "answer:") and "sunny" in line(out, "answer:")
    assert "json: {'city': 'Porto', 'has_dog': True}" in out


def test_bitnet_run() -> None:
    out = output("bitnet_run.sh")
    assert "engine.isa" in out  # bitnet info
    assert len([x for x in out.splitlines() if x.strip()]) > 10  # and three replies


def test_bitnet_run_values() -> None:
    lines = [x.strip().rstrip(".") for x in output("bitnet_run.sh").splitlines()]
    assert "Riga" in lines and "Oslo" in lines


QUESTIONS = {
    "Where does Ida Novak live? -> ": "Riga",
    "What does Kestrel Works make? -> ": "telescopes",
    "When was Nina Perez born? -> ": "1985",
}


@pytest.mark.parametrize("script", ["langchain_rag.py", "llama_index_rag.py"])
def test_rag_chains(script: str) -> None:
    out = output(script)
    assert line(out, "model: bitnet-default ") == f"model: bitnet-default {CAVEAT}"
    for question in QUESTIONS:
        assert line(out, question).removeprefix(question).strip()


@pytest.mark.parametrize("script", ["langchain_rag.py", "llama_index_rag.py"])
def test_rag_chains_values(script: str) -> None:
    out = output(script)
    for question, answer in QUESTIONS.items():
        assert line(out, question) == question + answer


def test_langchain_tools() -> None:
    out = output("langchain_tools.py")
    assert CAVEAT in line(out, "model: bitnet-default ")
    assert line(out, "tool call: get_weather {'city': ")
    answer = line(out, "answer:").removeprefix("answer:").strip()
    assert answer and not answer.startswith("{")  # a reply in words after the tool's result


def test_langchain_tools_values() -> None:
    out = output("langchain_tools.py")
    assert "tool call: get_weather {'city': 'Madrid'}" in out
    assert "9" in line(out, "answer:") and "rain" in line(out, "answer:")


def test_llama_index_agent() -> None:
    out = output("llama_index_agent.py")
    assert CAVEAT in line(out, "model: bitnet-default ")
    assert line(out, "tool: get_weather({'city': ")
    assert '{"temperature": 14, "condition": "windy"}' in out  # the tool's result came back
    assert line(out, "answer: ").removeprefix("answer: ").strip()


def test_llama_index_agent_values() -> None:
    out = output("llama_index_agent.py")
    assert "tool: get_weather({'city': 'Oslo'})" in out
    assert "14" in line(out, "answer:") and "wind" in line(out, "answer:")
