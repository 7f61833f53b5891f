"""``bitnet convert`` progress, --quiet, and the hint that converting makes loads fast."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import Terminal, bitnet

import bitnet_backend as bb


@pytest.fixture(scope="module")
def ckpt(make_checkpoint) -> Path:
    return make_checkpoint(shape="small")


def _same_model(a: Path, b: Path) -> None:
    with bb.load(a) as x, bb.load(b) as y:
        ids = x.tokenize("The cat sat on the mat")
        np.testing.assert_allclose(x.logits(ids), y.logits(ids), rtol=1e-5, atol=1e-5)


def test_convert_shows_progress_on_a_terminal(ckpt, tmp_path):
    out = tmp_path / "converted"
    with Terminal("convert", str(ckpt), str(out)) as term:
        shown = term.expect(f"wrote {out}".encode())
        assert term.wait() == 0
    assert b"repacking" in shown and b"layer" in shown
    assert b"writing" in shown and b"B/s" in shown
    _same_model(ckpt, out)


def test_quiet_turns_progress_off(ckpt, tmp_path):
    out = tmp_path / "converted"
    with Terminal("convert", "--quiet", str(ckpt), str(out)) as term:
        assert term.wait() == 0
        shown = term.output
    assert b"repacking" not in shown and b"writing" not in shown
    assert f"wrote {out}".encode() in shown


def test_no_progress_when_stderr_is_not_a_terminal(ckpt, tmp_path):
    r = bitnet("convert", str(ckpt), str(tmp_path / "converted"))
    assert r.returncode == 0 and r.stderr == "", r.stderr


HINTED_LOADS = """
import sys
import bitnet_backend.loading as loading
import bitnet_backend.model as m
loading.LARGE_CHECKPOINT_BYTES = 0  # every checkpoint counts as large
for path in sys.argv[1:]:
    m.load(path, progress=False).close()
"""


def _load_in_a_fresh_process(*paths: Path) -> str:
    r = subprocess.run(
        [sys.executable, "-c", HINTED_LOADS, *map(str, paths)],
        cwd=tempfile.gettempdir(),  # not the checkout: the installed package must be imported
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    return r.stderr


def test_a_large_unconverted_checkpoint_suggests_convert_once(ckpt, tmp_path):
    err = _load_in_a_fresh_process(ckpt, ckpt)
    assert err.count("bitnet convert") == 1, err
    assert str(ckpt) in err and "Traceback" not in err
    converted = tmp_path / "converted"
    assert bitnet("convert", str(ckpt), str(converted)).returncode == 0
    assert _load_in_a_fresh_process(converted) == ""


def test_convert_writes_the_engine_memory_without_copying_it(ckpt):
    # Peak memory of a conversion stays near the output size: the repacked weights are
    # written straight from the engine (2B-4T shape: 2.2 GB peak with copies, 1.5 GB without).
    from bitnet_backend.backends.cpu import BACKEND
    from bitnet_backend.checkpoints.hf import load_checkpoint

    checkpoint = load_checkpoint(ckpt)
    engine = BACKEND.load(checkpoint, n_threads=1)
    layout = engine.export_layout()
    engine.close()
    checkpoint.close()
    assert layout
    for name, array in layout.items():
        assert not array.flags.owndata and not array.flags.writeable, name
    assert int(layout["bitnet.arena"].sum()) > 0  # still readable after close()
