"""``bitnet run``: chat template by default, --raw, why a reply is empty, --verbose timings."""

from __future__ import annotations

import re

import pytest
from cli_helpers import Terminal, bitnet

import bitnet_backend as bb

QUESTION = "What is the capital of France?"
GREEDY = ("--temperature", "0")


@pytest.fixture(scope="module")
def model():
    with bb.load() as m:
        yield m


def test_a_prompt_goes_through_the_chat_template_by_default(model):
    expected = model.chat([{"role": "user", "content": QUESTION}], temperature=0).content
    assert expected  # a chat model answers the question
    r = bitnet("run", QUESTION, *GREEDY)
    assert r.returncode == 0, r.stderr
    assert r.stdout == expected + "\n"
    assert bitnet("run", "--chat", QUESTION, *GREEDY).stdout == r.stdout  # as before


def test_raw_continues_the_prompt_as_plain_text(model):
    expected = model.generate("Once upon a time", max_tokens=12, temperature=0).text
    r = bitnet("run", "--raw", "Once upon a time", "--max-tokens", "12", *GREEDY)
    assert r.returncode == 0, r.stderr
    assert r.stdout == expected + "\n"


def test_an_empty_reply_says_why_on_stderr(model):
    # A conversation whose answer is already complete: the chat model ends its turn at once.
    answered = f"User: {QUESTION}<|eot_id|>Assistant: Paris."
    out = model.generate(answered, temperature=0)
    assert (out.text, out.finish_reason) == ("", "stop")
    r = bitnet("run", "--raw", answered, *GREEDY)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "\n"
    assert "the model ended its reply at once (finish_reason=stop)" in r.stderr


def test_a_reply_with_text_says_nothing_on_stderr():
    r = bitnet("run", QUESTION, *GREEDY)
    assert r.returncode == 0 and r.stderr == ""


def test_verbose_prints_load_time_speeds_and_time_to_first_token(model):
    r = bitnet("run", "--verbose", "--raw", "Once upon a time", "--max-tokens", "8", *GREEDY)
    assert r.returncode == 0, r.stderr
    ms = r"([0-9.]+) ms"
    assert re.search(rf"load time: +{ms}", r.stderr), r.stderr
    prompt = re.search(rf"prompt eval: +{ms} / +(\d+) tokens \( *([0-9.]+) tokens/s\)", r.stderr)
    gen = re.search(rf"generation: +{ms} / +(\d+) tokens \( *([0-9.]+) tokens/s\)", r.stderr)
    assert prompt and gen, r.stderr
    assert int(prompt.group(2)) == len(model.tokenize("Once upon a time"))
    assert int(gen.group(2)) == 8
    assert float(gen.group(3)) > 0 and float(prompt.group(3)) > 0
    assert re.search(rf"time to first token: +{ms}", r.stderr)
    assert "finish reason: " in r.stderr


def test_quiet_turns_the_load_progress_off_on_a_terminal():
    argv = ("run", "--raw", "Hello", "--max-tokens", "1")
    with Terminal(*argv) as term:
        assert term.wait() == 0
        assert b"preparing weights" in term.output  # a terminal gets bars by default
    with Terminal(*argv, "--quiet") as term:
        assert term.wait() == 0
        assert b"preparing weights" not in term.output and b"shards" not in term.output
