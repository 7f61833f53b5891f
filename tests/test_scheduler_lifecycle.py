"""Admission limits, the queue, close() under load, and a closed model's refusals."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from backends import BACKENDS, cpu_built
from results import uncached

import bitnet_backend as bb

PROMPT = "The teacher reads a good story"
GREEDY = {"temperature": 0.0}
# Greedy text of the random test weights settles into a loop without an end-of-sequence
# token: the generation fills the whole context window.
ENDLESS = {"max_tokens": -1, "temperature": 0.0}


@pytest.fixture(scope="module")
def ckpt(make_checkpoint) -> Path:
    return make_checkpoint()


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll ``condition`` (bounded); fail the test when it never holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


@pytest.mark.parametrize(
    "bad",
    [
        {"max_batch": 0},
        {"max_batch": "8"},
        {"max_batch": True},
        {"kv_budget": 0},
        {"kv_budget": 1.5},
        {"queue_timeout": 0},
        {"queue_timeout": -1.0},
        {"queue_timeout": "1"},
    ],
)
def test_load_rejects_bad_scheduler_options(ckpt, bad):
    with pytest.raises(bb.InvalidParameterError, match=next(iter(bad))):
        bb.load(ckpt, backend="reference", **bad)


def test_defaults_and_limits_show_in_info(ckpt):
    with bb.load(ckpt, backend="reference", n_threads=2, n_ctx=512) as m:
        info = m.info["scheduler"]
        assert (info["max_batch"], info["kv_budget"], info["queue_timeout"]) == (8, 8192, None)
        assert info["steps"] == 0
    with bb.load(ckpt, backend="reference", max_batch=3, kv_budget=700, queue_timeout=2.5) as m:
        info = m.info["scheduler"]
        assert (info["max_batch"], info["kv_budget"], info["queue_timeout"]) == (3, 700, 2.5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_full_kv_budget_queues_the_request_until_a_sequence_ends(ckpt, backend):
    # Each request reserves prompt + max_tokens positions: two do not fit in the budget.
    with bb.load(ckpt, backend=backend, n_threads=1, n_ctx=1024, kv_budget=1024) as m:
        expected = uncached(m.generate(PROMPT, max_tokens=4, **GREEDY))
        first = m.stream(PROMPT, **ENDLESS)
        next(first)
        result: list[bb.Completion] = []
        second = threading.Thread(
            target=lambda: result.append(m.generate(PROMPT, max_tokens=4, **GREEDY))
        )
        second.start()
        wait_for(lambda: m.stats()["queued"] == 1)
        assert m.stats()["active"] == 1
        first.close()  # frees its sequence and its reservation
        second.join(timeout=60)
        assert [uncached(c) for c in result] == [expected]
        assert m.stats()["max_sequences_per_step"] == 1


def test_queue_timeout_raises_a_typed_error(ckpt):
    with bb.load(ckpt, backend="reference", max_batch=1, queue_timeout=0.05) as m:
        first = m.stream(PROMPT, **ENDLESS)
        next(first)
        with pytest.raises(bb.QueueTimeoutError, match="queue"):
            m.generate(PROMPT, max_tokens=2)
        first.close()
        assert m.generate(PROMPT, max_tokens=2).usage["completion_tokens"] <= 2


def test_a_closed_model_refuses_every_call(ckpt):
    m = bb.load(ckpt, backend="reference")
    m.generate(PROMPT, max_tokens=2)
    m.close()
    messages = [{"role": "user", "content": "Hi"}]
    calls: list[Callable[[], object]] = [
        lambda: m.generate(PROMPT, max_tokens=2),
        lambda: m.stream(PROMPT, max_tokens=2),
        lambda: m.chat(messages, max_tokens=2),
        lambda: m.stream_chat(messages, max_tokens=2),
        lambda: m.embed("x"),
        lambda: m.logits([1, 2]),
        lambda: m.generate_batch([PROMPT], max_tokens=2),
        lambda: m.chat_batch([messages], max_tokens=2),
        lambda: asyncio.run(m.agenerate(PROMPT, max_tokens=2)),
        lambda: asyncio.run(m.achat(messages, max_tokens=2)),
        lambda: asyncio.run(m.aembed("x")),
    ]
    for call in calls:
        with pytest.raises(bb.BitnetError, match="closed"):
            call()


def test_close_ends_a_running_stream_with_a_bitnet_error(ckpt):
    m = bb.load(ckpt, backend="reference")
    stream = m.stream(PROMPT, **ENDLESS)
    next(stream)
    m.close()
    with pytest.raises(bb.BitnetError, match="closed"):
        for _ in stream:
            pass


CLOSE_UNDER_LOAD = """
import asyncio, sys, threading
import bitnet_backend as bb

# Endless requests reserve the whole context each: room for four of them.
model = bb.load(sys.argv[1], backend=sys.argv[2], n_threads=1, max_batch=4, kv_budget=4 * 4096)
endless = dict(max_tokens=-1, temperature=0.0)  # fills the context window
started = threading.Barrier(10)
errors = []

def stream(i):
    try:
        it = model.stream("The teacher reads a good story", **endless)
        next(it)
        started.wait()
        for _ in it:
            pass
        errors.append("a stream ended without an error")
    except bb.BitnetError as exc:
        errors.append("ok" if "closed" in str(exc) else repr(exc))

def call(i):
    started.wait()
    try:
        model.generate("Water boils at", **endless)
        errors.append("a call ended without an error")
    except bb.BitnetError as exc:
        errors.append("ok" if "closed" in str(exc) else repr(exc))

async def achat():
    started.wait()
    try:
        await model.achat([{"role": "user", "content": "Hi"}], **endless)
        errors.append("achat ended without an error")
    except bb.BitnetError as exc:
        errors.append("ok" if "closed" in str(exc) else repr(exc))

threads = [threading.Thread(target=stream, args=(i,)) for i in range(4)]
threads += [threading.Thread(target=call, args=(i,)) for i in range(4)]
threads.append(threading.Thread(target=lambda: asyncio.run(achat())))
for t in threads:
    t.start()
started.wait()  # four streams run, five calls queue behind them
model.close()
for t in threads:
    t.join(timeout=60)
assert not any(t.is_alive() for t in threads), "a caller hangs"
assert errors == ["ok"] * 9, errors
print("closed cleanly")
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_close_under_load_ends_every_request_and_never_hangs(ckpt, backend):
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CLOSE_UNDER_LOAD), str(ckpt), backend],
        cwd=tempfile.gettempdir(),  # not the checkout: the installed package must be imported
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "closed cleanly" in out.stdout


def test_close_waits_for_direct_engine_calls(ckpt):
    if not cpu_built():
        pytest.skip("bitnet_backend._engine is not built")
    m = bb.load(ckpt, backend="cpu", n_threads=1)
    ids = m.tokenize(PROMPT * 40)[:1000]
    outcomes: list[str] = []

    def forward() -> None:
        for _ in range(50):
            try:
                m.logits(ids)
            except bb.BitnetError:
                outcomes.append("refused")
                return
        outcomes.append("finished")

    worker = threading.Thread(target=forward)
    worker.start()
    time.sleep(0.05)
    m.close()  # must not free the weights under a running forward
    worker.join(timeout=120)
    assert outcomes in (["refused"], ["finished"])
