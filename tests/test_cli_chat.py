"""``bitnet chat`` on a real pseudo-terminal: banner, commands, multi-line input, Ctrl-C,
line editing and a history that outlives the session."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from cli_helpers import Terminal, bitnet_env

import bitnet_backend as bb

PROMPT = b">>> "
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b[=>]")
GREEDY = ("--temperature", "0")


def clean(raw: bytes) -> str:
    """Terminal output as text: no escape sequences, no carriage returns."""
    return ANSI.sub(b"", raw).replace(b"\r", b"").decode(errors="replace")


@pytest.fixture(scope="module")
def model():
    with bb.load() as m:
        yield m


@pytest.fixture()
def env(tmp_path: Path) -> dict[str, str]:
    return bitnet_env(XDG_CACHE_HOME=str(tmp_path / "cache"), TERM="xterm")


def reply_of(term: Terminal) -> str:
    """The reply after the echoed input line, up to the next prompt."""
    text = clean(term.expect(PROMPT))
    return text.split("\n", 1)[1].rsplit("\n", 1)[0]


def test_banner_names_model_backend_and_isa_and_commands_work(model, env):
    info = model.info
    with Terminal("chat", "--max-tokens", "6", *GREEDY, env=env) as term:
        banner = clean(term.expect(PROMPT))
        assert "model default" in banner
        assert f"backend {info['backend']}" in banner
        assert f"ISA {info['kernel_isa']}" in banner
        assert "/help" in banner
        term.send(b"/help\r")
        help_text = clean(term.expect(PROMPT))
        assert "/reset" in help_text and "/exit" in help_text and '"""' in help_text
        term.send(b"Hello\r")
        first = reply_of(term)
        expected = model.chat([{"role": "user", "content": "Hello"}], max_tokens=6, temperature=0)
        assert first == expected.content
        term.send(b"/reset\r")
        assert "forgotten" in clean(term.expect(PROMPT))
        term.send(b"Hello\r")
        assert reply_of(term) == first  # a fresh conversation again
        term.send(b"/exit\r")
        assert term.wait() == 0


def test_multi_line_messages(model, env):
    message = "Say hello\nto Anna"
    expected = model.chat(
        [{"role": "user", "content": message}], max_tokens=6, temperature=0
    ).content
    with Terminal("chat", "--max-tokens", "6", *GREEDY, env=env) as term:
        term.expect(PROMPT)
        term.send(b"Say hello\\\r")
        term.expect(b"... ")
        term.send(b"to Anna\r")
        assert reply_of(term) == expected
        term.send(b"/reset\r")  # the same message again, in a fresh conversation
        term.expect(PROMPT)
        term.send(b'"""\r')
        term.expect(b"... ")
        term.send(b"Say hello\r")
        term.expect(b"... ")
        term.send(b"to Anna\r")
        term.expect(b"... ")
        term.send(b'"""\r')
        assert reply_of(term) == expected
        term.send(b"\x04")  # Ctrl-D
        assert term.wait() == 0


@pytest.fixture(scope="module")
def endless(make_checkpoint) -> Path:
    # Random weights and a long context: a greedy reply that goes on for many seconds.
    return make_checkpoint(shape={"base": "small", "max_position_embeddings": 32768})


def interrupt_at_prompt(term: Terminal) -> None:
    """Ctrl-C at a prompt, as a person sends it: after the prompt is up. A SIGINT that lands
    while readline is still drawing the prompt, before it waits for input, is lost inside
    readline (the interpreter's handler runs, but readline's wait does not return)."""
    time.sleep(0.3)
    term.send(b"\x03")


def test_ctrl_c_stops_the_reply_not_the_session(endless, env):
    argv = ("chat", "-m", str(endless), "--max-tokens", "-1", *GREEDY)
    with Terminal(*argv, env=env) as term:
        term.expect(PROMPT)
        term.send(b"Tell me everything\r")
        term.expect(b"Tell me everything")
        term.expect(b"\n")
        term._read(60)  # the reply has started
        term.send(b"\x03")
        assert "(reply stopped)" in clean(term.expect(PROMPT, timeout=60))
        term.send(b"/help\r")  # the session goes on
        assert "/reset" in clean(term.expect(PROMPT))
        interrupt_at_prompt(term)
        assert "Ctrl-C again" in clean(term.expect(b"quits"))
        term.expect(PROMPT)
        interrupt_at_prompt(term)
        assert term.wait() == 130
        assert "Traceback" not in clean(term.output)


def test_line_editing_and_history_across_sessions(model, env, tmp_path):
    expected = model.chat([{"role": "user", "content": "Hello"}], max_tokens=4, temperature=0)
    with Terminal("chat", "--max-tokens", "4", *GREEDY, env=env) as term:
        term.expect(PROMPT)
        term.send(b"Helpp\x7f\x7flo\r")  # two backspaces
        assert reply_of(term) == expected.content
        term.send(b"/exit\r")
        assert term.wait() == 0
    history = Path(env["XDG_CACHE_HOME"]) / "bitnet-backend" / "chat_history"
    assert "Hello" in history.read_text()
    with Terminal("chat", "--max-tokens", "4", *GREEDY, env=env) as term:
        term.expect(PROMPT)
        term.send(b"\x1b[A")  # Up: the last line of the previous session comes back
        term.expect(b"/exit")
        term.send(b"\x1b[A\r")  # once more: "Hello", sent again
        assert reply_of(term).endswith(expected.content)
        term.send(b"\x04")
        assert term.wait() == 0
