"""Replay the fuzz seeds and every input that once escaped a fuzz target (fuzz/regressions/).

Each target's inputs run in a child process with a time and memory limit, since a
regression there could be a crash.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from isolated import run_isolated

FUZZ_DIR = Path(__file__).resolve().parents[1] / "fuzz"
TARGETS = (
    "safetensors_header",
    "config_json",
    "converted_checkpoint",
    "gguf_file",
    "chat_template",
    "schema",
)


@pytest.mark.parametrize("target", TARGETS)
def test_fuzz_inputs_replay_cleanly(target: str) -> None:
    files = sorted(
        str(p)
        for d in (FUZZ_DIR / "seeds" / target, FUZZ_DIR / "regressions" / target)
        if d.is_dir()
        for p in d.iterdir()
        if p.is_file()
    )
    assert files, f"no seed inputs for {target}"
    out = run_isolated(
        """
        import importlib.util, pathlib
        spec = importlib.util.spec_from_file_location("target", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for f in files:
            module.check(pathlib.Path(f).read_bytes())
        report(len(files))
        """,
        path=str(FUZZ_DIR / "targets" / f"{target}.py"),
        files=files,
        timeout=300,
    )
    assert out.get("ok") == len(files), out


def test_harness_lists_every_target() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("harness", FUZZ_DIR / "harness.py")
    assert spec is not None and spec.loader is not None
    harness = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(harness)
    assert set(harness.TARGETS) == set(TARGETS)
    assert {p.stem for p in (FUZZ_DIR / "targets").glob("*.py")} == set(TARGETS)
