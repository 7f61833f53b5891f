"""Every failure of the ``bitnet`` command is one ``bitnet: error:`` line and status 2;
Ctrl-C is status 130. Never a traceback, also for failures no check anticipated."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import assert_one_error_line, bitnet, spawn


@pytest.fixture(scope="module")
def ckpt(make_checkpoint) -> Path:
    return make_checkpoint()


def _edited(ckpt: Path, tmp_path: Path, **config: object) -> Path:
    out = tmp_path / "model"
    shutil.copytree(ckpt, out)
    cfg = json.loads((out / "config.json").read_text())
    cfg.update(config)
    (out / "config.json").write_text(json.dumps(cfg))
    return out


def test_a_config_value_of_the_wrong_type(ckpt, tmp_path):
    bad = _edited(ckpt, tmp_path, max_position_embeddings="abc")
    assert_one_error_line(bitnet("run", "hi", "-m", str(bad)))


def test_a_dangling_weights_symlink(ckpt, tmp_path):
    bad = tmp_path / "model"
    shutil.copytree(ckpt, bad)
    (bad / "model.safetensors").unlink()
    (bad / "model.safetensors").symlink_to(tmp_path / "nowhere")
    assert_one_error_line(bitnet("run", "hi", "-m", str(bad)), "model.safetensors")


def test_an_option_beyond_the_engine_range():
    r = bitnet("run", "hi", "--top-k", "3000000000")
    assert_one_error_line(r, "--top-k", "3000000000")


def test_info_with_a_malformed_eos_token_id(ckpt, tmp_path):
    bad = _edited(ckpt, tmp_path, eos_token_id={})
    assert_one_error_line(bitnet("info", str(bad)))


def test_convert_to_an_unwritable_place(ckpt):
    r = bitnet("convert", str(ckpt), "/proc/no-such-dir/out")
    assert_one_error_line(r, "/proc/no-such-dir")


def test_a_prompt_on_stdin_that_is_not_utf8():
    r = bitnet("run", "-", "--max-tokens", "2", stdin=b"caf\xe9 \xff\xfe")
    assert_one_error_line(r, "UTF-8")


def test_usage_errors_name_the_help_of_the_command():
    r = bitnet("bench", "-p", "x")
    assert_one_error_line(r, "-p", "bitnet bench --help")


@pytest.fixture(scope="module")
def interpreter_startup() -> float:
    """Seconds a bare interpreter needs to start: a signal before then is Python's own
    start-up, before any code of the package can run."""
    start = time.monotonic()
    subprocess.run([sys.executable, "-c", "pass"], check=True, timeout=60)
    return time.monotonic() - start


@pytest.mark.parametrize("delay", [0.0, 0.1, 0.3, 0.6])
def test_ctrl_c_during_startup_exits_130_quietly(interpreter_startup, delay):
    proc = spawn("run", "Hello", "--max-tokens", "4")
    # From well past the interpreter's own start (a busy machine doubles it) through the
    # imports of numpy, the tokenizer and the engine, and on to the model load.
    time.sleep(3 * interpreter_startup + delay)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    # Interrupted, or already done when the signal came (a fast machine): never a traceback.
    assert proc.returncode in (130, 0), err
    assert b"Traceback" not in err and b"KeyboardInterrupt" not in err, err


def test_ctrl_c_after_the_command_is_done_keeps_its_exit_status(ckpt):
    # The console script's own steps, with the Ctrl-C landing after the command has printed
    # its result, while the interpreter exits: not a traceback, nor death by signal 2.
    script = (
        "import os, signal, sys\n"
        "from bitnet_backend.cli import console_main\n"
        f"sys.argv = ['bitnet', 'info', {str(ckpt)!r}]\n"
        "status = console_main()\n"
        "os.kill(os.getpid(), signal.SIGINT)\n"
        "sys.exit(status)\n"
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert b"Traceback" not in r.stderr and b"KeyboardInterrupt" not in r.stderr, r.stderr


def test_an_error_raised_because_of_ctrl_c_counts_as_ctrl_c():
    # numpy turns an import interrupted by Ctrl-C into an ImportError.
    from bitnet_backend.cli.errors import caused_by_interrupt

    def interrupted_import() -> None:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:
            raise ImportError("numpy failed to import") from exc

    with pytest.raises(ImportError) as info:
        interrupted_import()
    assert caused_by_interrupt(info.value)
    assert not caused_by_interrupt(ImportError("no module named x"))
