"""Threads: the default count (physical cores of the CPUs this process may use, under a CPU
quota), the cap on n_threads, identical results at every thread count, the adaptive team of
the default count only (and its identical results), and fork safety (a model loaded before
os.fork() works in the child)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import bitnet_backend as bb
from bitnet_backend import model as model_module
from bitnet_backend import threads
from bitnet_backend.errors import InvalidParameterError

CHILD_TIMEOUT_S = 120


def _topology(root: Path, siblings: dict[int, str]) -> Path:
    for cpu, text in siblings.items():
        d = root / f"cpu{cpu}" / "topology"
        d.mkdir(parents=True)
        (d / "thread_siblings_list").write_text(text + "\n")
    return root


def test_physical_cores_counts_hyperthread_siblings_once(tmp_path: Path) -> None:
    sys_cpu = _topology(tmp_path, {0: "0,2", 1: "1,3", 2: "0,2", 3: "1,3"})
    assert threads.physical_cores([0, 1, 2, 3], sys_cpu) == 2
    # Only the CPUs the process may use count: one sibling of each core.
    assert threads.physical_cores([0, 1], sys_cpu) == 2
    assert threads.physical_cores([0, 2], sys_cpu) == 1


def test_physical_cores_without_topology_counts_each_cpu(tmp_path: Path) -> None:
    assert threads.physical_cores([0, 1, 5], tmp_path) == 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [("max 100000\n", None), ("150000 100000\n", 1.5), ("200000 100000", 2.0), ("junk", None)],
)
def test_cpu_quota(tmp_path: Path, text: str, expected: float | None) -> None:
    f = tmp_path / "cpu.max"
    f.write_text(text)
    assert threads.cpu_quota(f) == expected


def test_cpu_quota_missing_file(tmp_path: Path) -> None:
    assert threads.cpu_quota(tmp_path / "absent") is None


def test_default_threads_is_within_the_usable_cpus() -> None:
    n = threads.default_threads()
    assert 1 <= n <= len(threads.usable_cpus())
    assert n == model_module.default_threads()


def test_default_threads_follows_the_quota(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads, "physical_cores", lambda cpus: 8)
    monkeypatch.setattr(threads, "cpu_quota", lambda: 2.5)
    assert threads.default_threads() == 3
    monkeypatch.setattr(threads, "cpu_quota", lambda: 0.2)
    assert threads.default_threads() == 1


@pytest.mark.parametrize("n", [0, -1, 1.5, True, "2", 2**31, 10**6])
def test_load_rejects_bad_thread_counts(n: object) -> None:
    with pytest.raises(InvalidParameterError, match="n_threads"):
        bb.load(n_threads=n)  # type: ignore[arg-type]


def test_load_caps_thread_count() -> None:
    limit = threads.max_threads()
    assert 8 <= limit <= threads.MAX_THREADS
    with pytest.raises(InvalidParameterError, match=f"at most {limit}"):
        bb.load(n_threads=limit + 1)


def test_cpu_backend_checks_thread_count() -> None:
    from bitnet_backend.backends.cpu import BACKEND
    from bitnet_backend.checkpoints.hf import load_checkpoint
    from bitnet_backend.model import DEFAULT_MODEL_DIR

    ckpt = load_checkpoint(DEFAULT_MODEL_DIR)
    try:
        with pytest.raises(InvalidParameterError, match="n_threads"):
            BACKEND.load(ckpt, n_threads=2**31)
    finally:
        ckpt.close()


def test_logits_identical_at_every_thread_count() -> None:
    """Prefill and decode go through shared regions at 2+ threads: the same bits as 1 thread,
    also with more threads than this machine has cores. (The head is pinned: its automatic
    choice depends on the thread count.)"""
    prompt = "Once upon a time, in a small town by the sea, " * 6
    results = {}
    for n in (1, 2, 3, 8):
        with bb.load(n_threads=n, lm_head="int8") as model:
            logits = model.logits(model.tokenize(prompt))
            text = model.generate("Hello", max_tokens=12, temperature=0).text
            results[n] = (logits, text)
    logits_1, text_1 = results[1]
    for n, (logits, text) in results.items():
        assert np.array_equal(logits, logits_1), n
        assert text == text_1, n


def test_only_the_default_thread_count_adapts() -> None:
    with bb.load() as model:
        assert model.engine.info["adaptive_threads"] is True
    # A count the user gives is used as given, even the default one.
    for n in sorted({1, 2, threads.default_threads()}):
        with bb.load(n_threads=n) as model:
            assert model.engine.info["adaptive_threads"] is False, n


def test_engines_without_an_adaptive_pool_are_left_alone() -> None:
    assert threads.adapt_to_busy_cores(object()) is False
    with bb.load(backend="reference") as model:
        assert "adaptive_threads" not in model.engine.info


def test_adaptive_pool_gives_the_same_logits() -> None:
    """The adaptive pool probes both modes (shared, alone) within its first milliseconds of
    shared-size regions; every prefill gives the bits of a fixed pool."""
    from bitnet_backend.backends.cpu import BACKEND
    from bitnet_backend.checkpoints.hf import load_checkpoint
    from bitnet_backend.model import DEFAULT_MODEL_DIR

    ckpt = load_checkpoint(DEFAULT_MODEL_DIR)
    fixed = BACKEND.load(ckpt, n_threads=2, lm_head="int8")
    adaptive = BACKEND.load(ckpt, n_threads=2, lm_head="int8")
    try:
        assert threads.adapt_to_busy_cores(adaptive) is True
        ids = [int(t) for t in np.random.default_rng(0).integers(0, 4000, 96)]
        expected = fixed.logits(ids)
        assert fixed.thread_stats()["solo_regions"] == 0
        assert fixed.thread_stats()["short_regions"] == 0
        for _ in range(200):  # each prefill is ~40 shared-size regions
            assert np.array_equal(adaptive.logits(ids), expected)
            stats = adaptive.thread_stats()
            if stats["solo_regions"] > 0 and stats["shared_regions"] > 0:
                break
        assert stats["solo_regions"] > 0 and stats["shared_regions"] > 0, stats
        assert stats["caller_chunks"] + stats["worker_chunks"] > 0
        # Regions measured too short to share are among those run alone.
        assert 0 <= stats["short_regions"] <= stats["solo_regions"], stats
    finally:
        adaptive.close()
        fixed.close()
        ckpt.close()


def test_adaptive_pool_chooses_within_its_first_call() -> None:
    """A small model's call is a few milliseconds of regions: the first probe's blocks are
    short enough that one long prompt already runs regions both shared and alone."""
    from bitnet_backend.backends.cpu import BACKEND
    from bitnet_backend.checkpoints.hf import load_checkpoint
    from bitnet_backend.model import DEFAULT_MODEL_DIR

    ckpt = load_checkpoint(DEFAULT_MODEL_DIR)
    engine = BACKEND.load(ckpt, n_threads=2, lm_head="int8")
    try:
        threads.adapt_to_busy_cores(engine)
        # 512 tokens: over a billion multiply-accumulates in regions worth sharing, many
        # milliseconds on any machine.
        ids = [int(t) for t in np.random.default_rng(1).integers(0, 4000, 512)]
        engine.logits(ids)
        stats = engine.thread_stats()
        assert stats["solo_regions"] > 0 and stats["shared_regions"] > 0, stats
    finally:
        engine.close()
        ckpt.close()


FORK_SCRIPT = textwrap.dedent(
    """
    import os, sys
    import bitnet_backend as bb

    model = bb.load(n_threads=2)
    # A long prompt: its prefill goes through the pool's shared regions.
    prompt = "Once upon a time, in a small town by the sea, there lived " * 4
    expected = model.generate(prompt, max_tokens=8, temperature=0).text
    pid = os.fork()
    if pid == 0:
        got = model.generate(prompt, max_tokens=8, temperature=0).text
        again = model.generate(prompt + "x", max_tokens=4, temperature=0).text
        os._exit(0 if got == expected and again else 3)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, status
    # The parent's pool is untouched.
    assert model.generate(prompt, max_tokens=8, temperature=0).text == expected
    model.close()
    print("ok")
    """
)

MULTIPROCESSING_SCRIPT = textwrap.dedent(
    """
    import multiprocessing as mp
    import bitnet_backend as bb

    model = bb.load(n_threads=2)
    PROMPT = "Once upon a time, in a small town by the sea, there lived " * 4

    def work(_):
        return model.generate(PROMPT, max_tokens=6, temperature=0).text

    if __name__ == "__main__":
        expected = work(0)
        with mp.get_context("fork").Pool(2) as pool:
            assert pool.map(work, range(4)) == [expected] * 4
        print("ok")
    """
)


@pytest.mark.parametrize("script", [FORK_SCRIPT, MULTIPROCESSING_SCRIPT], ids=["fork", "mp"])
def test_generate_after_fork(script: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
