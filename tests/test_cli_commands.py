"""The ``bitnet`` command line: run, chat, info, plugins, and clean errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from backends import BACKENDS

import bitnet_backend as bb
from bitnet_backend.cli import main

GREEDY = ["--temperature", "0"]
INSTALL_ROOT = Path(bb.__file__).parent.parent


@pytest.fixture(scope="module")
def ckpt(make_checkpoint) -> Path:
    return make_checkpoint()


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def model(ckpt, backend):
    with bb.load(ckpt, backend=backend) as m:
        yield m


def bitnet(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(bb.__file__).parent.parent), env.get("PYTHONPATH", "")]
    )
    return subprocess.run(
        [sys.executable, "-m", "bitnet_backend.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        # `python -m` puts the working directory first on sys.path: run from where the
        # imported package lives, not from a source tree without the built extension.
        cwd=INSTALL_ROOT,
        timeout=300,
    )


def test_run_streams_the_completion_to_stdout(ckpt, backend, model):
    r = bitnet(
        *f"run --raw -m {ckpt} --backend {backend} --max-tokens 12".split(),
        "The cat sat on the",
        *GREEDY,
    )
    assert r.returncode == 0, r.stderr
    expected = model.generate("The cat sat on the", max_tokens=12, temperature=0).text
    assert r.stdout == expected + "\n"


def test_run_reads_the_prompt_from_stdin(ckpt, backend, model):
    argv = f"run --raw - -m {ckpt} --backend {backend} --max-tokens 5".split()
    r = bitnet(*argv, *GREEDY, stdin="The cat")
    assert r.returncode == 0, r.stderr
    assert r.stdout == model.generate("The cat", max_tokens=5, temperature=0).text + "\n"


def test_run_passes_sampling_flags(ckpt, backend, model, capsys):
    flags = "--temperature 1.3 --top-k 20 --top-p 0.9 --min-p 0.01 --repeat-penalty 1.1 --seed 42"
    argv = f"run --raw -m {ckpt} --backend {backend} --max-tokens 10 {flags}".split()
    assert main([*argv, "Water boils at"]) == 0
    expected = model.generate(
        "Water boils at",
        max_tokens=10,
        temperature=1.3,
        top_k=20,
        top_p=0.9,
        min_p=0.01,
        repeat_penalty=1.1,
        seed=42,
    )
    assert capsys.readouterr().out == expected.text + "\n"


def test_run_stop_flag_cuts_the_output(ckpt, backend, model, capsys):
    full = model.generate("The teacher reads", max_tokens=20, temperature=0).text
    stop = full.strip()[3:5]
    argv = f"run --raw -m {ckpt} --backend {backend} --max-tokens 20".split()
    assert main([*argv, "--stop", stop, *GREEDY, "The teacher reads"]) == 0
    assert capsys.readouterr().out == full[: full.find(stop)] + "\n"


def test_run_chat_flag_sends_a_user_message(ckpt, backend, model, capsys):
    argv = f"run --chat -m {ckpt} --backend {backend} --max-tokens 8".split()
    assert main([*argv, *GREEDY, "Hello, who are you?"]) == 0
    messages = [{"role": "user", "content": "Hello, who are you?"}]
    reply = model.chat(messages, max_tokens=8, temperature=0)
    assert capsys.readouterr().out == reply.content + "\n"


def test_chat_reads_turns_from_piped_stdin_until_exit(ckpt, backend, model):
    turns = "Hello, who are you?\n\nWrite a short poem.\n/exit\nnever sent\n"
    argv = f"chat -m {ckpt} --backend {backend} --max-tokens 6".split()
    r = bitnet(*argv, "--system", "Be brief.", *GREEDY, stdin=turns)
    assert r.returncode == 0, r.stderr
    history = [{"role": "system", "content": "Be brief."}]
    expected = []
    for turn in ("Hello, who are you?", "Write a short poem."):
        history.append({"role": "user", "content": turn})
        reply = model.chat(history, max_tokens=6, temperature=0).content
        history.append({"role": "assistant", "content": reply})
        expected.append(reply + "\n")
    assert r.stdout == "".join(expected)


def test_chat_ends_at_end_of_input(ckpt):
    r = bitnet(*f"chat -m {ckpt} --backend reference --max-tokens 2".split(), stdin="Hi\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("\n") == 1


def test_info_prints_the_model_description(ckpt, backend, capsys):
    assert main(["info", str(ckpt), "--backend", backend]) == 0
    out = capsys.readouterr().out
    assert "BitNetForCausalLM" in out
    lines = dict(line.split(None, 1) for line in out.splitlines())
    assert lines["backend"] == backend
    assert lines["context_length"] == "4096"


def test_info_json_is_machine_readable(ckpt, capsys):
    assert (
        main(["info", "--model", str(ckpt), "--backend", "reference", "--json", "--ctx", "64"]) == 0
    )
    info = json.loads(capsys.readouterr().out)
    assert info["context_length"] == 64
    assert info["backend"] == "reference"


def test_info_json_shows_the_cpu_head_options(ckpt, capsys):
    argv = ["info", str(ckpt), "--backend", "cpu", "--json", "--lm-head", "q4"]
    assert main([*argv, "--exact-logits", "5"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["engine"]["lm_head"], info["engine"]["exact_logits"]) == ("q4", 5)


def test_plugins_lists_the_builtin_backends(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "reference" in out and "cpu" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "x", "-m", "{missing}"], "no such file or directory"),
        (["run", "x", "-m", "{ckpt}", "--backend", "nope"], "unknown backend 'nope'"),
        (
            ["run", "x", "-m", "{ckpt}", "--backend", "reference", "--temperature", "-2"],
            "temperature",
        ),
        (
            ["run", "x" * 200, "-m", "{ckpt}", "--backend", "reference", "--ctx", "8"],
            "context overflow",
        ),
        (["run", "x", "-m", "{ckpt}", "--backend", "reference", "--threads", "0"], "n_threads"),
        (["info", "{missing}"], "no such file or directory"),
    ],
)
def test_user_errors_print_one_clean_line_and_exit_2(ckpt, tmp_path, capsys, argv, message):
    argv = [a.format(ckpt=ckpt, missing=tmp_path / "missing") for a in argv]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("bitnet: error: ")
    assert message in captured.err
    assert captured.err.count("\n") == 1
    assert "Traceback" not in captured.err


def test_user_error_exit_status_from_the_console_entry_point(tmp_path):
    r = bitnet("info", str(tmp_path / "missing"))
    assert r.returncode == 2
    assert r.stderr.startswith("bitnet: error: ") and "Traceback" not in r.stderr


def test_usage_errors_exit_2_with_one_line_pointing_to_help():
    r = bitnet("run")
    assert r.returncode == 2
    assert r.stderr.startswith("bitnet: error: ") and r.stderr.count("\n") == 1
    assert "bitnet run --help" in r.stderr


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_interrupt_exits_130_without_a_traceback(ckpt):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(bb.__file__).parent.parent), env.get("PYTHONPATH", "")]
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bitnet_backend.cli",
            "chat",
            "-m",
            str(ckpt),
            "--backend",
            "reference",
            "--max-tokens",
            "2",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=INSTALL_ROOT,
        # A test run started in the background of a non-interactive shell inherits SIGINT
        # ignored, and so would the child: give it the default disposition a terminal has.
        preexec_fn=_default_sigint,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("Hi\n")
    proc.stdin.flush()
    proc.stdout.readline()  # the first reply: the REPL now waits for the next line
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "Traceback" not in err
