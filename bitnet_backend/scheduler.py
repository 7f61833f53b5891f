"""The scheduler: one thread per Model that runs every request in shared forward steps.

Requests are admitted first in, first out while there is a free sequence (``max_batch``) and
room in the KV budget (each reserves min(n_ctx, prompt + max_tokens) positions); the others
wait in the queue. Each step evaluates the next token of every running generation, then
chunks of admitted prompts up to a token budget (a long prompt is prefilled over several
steps, so it never stalls the running streams), in one batched engine call without the GIL;
then the next token of every generation is sampled, each with its own options, in one more
engine call, then each caller is handed all of its chunks of the step at once: each call
that releases the GIL may wait for it while callers hold it, so a step makes two however
many sequences it carries, and a caller wakes once per step, after the last of them.
Embedding requests share the thread: one batch of texts per step.

A cancelled request is dropped at the next step, a failing one fails alone, and ``close``
ends every request with a BitnetError after the current step.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict

from . import engine_ops
from .errors import BitnetError, InvalidParameterError, QueueTimeoutError
from .prefix_cache import PrefixCache
from .requests import EmbeddingRequest, GenerationRequest

if TYPE_CHECKING:
    from .backend import Engine

# Prompt tokens a step may carry next to running generations. Past a few rows a step costs
# about as much as its tokens, so this bounds how long a newly admitted prompt holds up the
# others' next tokens: on the 2B-4T shape at 2 threads a 16-token chunk stretches a running
# stream's step to ~4x a decode step, a 64-token one to ~15x, for prompts that take ~10%
# longer to prefill beside running streams (benchmarks/README.md, "Prompt chunks").
PREFILL_CHUNK = 16
# When no generation is waiting for its next token nothing is held up: prompts that arrive
# together are evaluated together (then their generations decode in step with one another,
# instead of the first ones waiting on the others' prompt chunks at every token).
PREFILL_ALONE = 2048


def default_max_batch(n_threads: int) -> int:
    """Sequences per step when none is asked: about four per thread, from 8 to 16.

    Decode reads every weight once per step whatever the number of rows, and each thread's
    kernel applies a weight tile to a few rows (about four with 256-bit SIMD) for nearly the
    cost of one; past that a step is bound by arithmetic, and more rows only make every
    stream's step longer.
    """
    return min(16, max(8, 4 * n_threads))


@dataclass(frozen=True)
class SchedulerLimits:
    """Validated admission limits: ``max_batch`` sequences, ``kv_budget`` KV positions."""

    max_batch: int
    kv_budget: int
    queue_timeout: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_batch", "kv_budget"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InvalidParameterError(f"{name} must be an integer >= 1, got {v!r}")
        t = self.queue_timeout
        if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float)) or not t > 0):
            raise InvalidParameterError(f"queue_timeout must be a number > 0 or None, got {t!r}")

    def as_dict(self) -> dict[str, int | float | None]:
        return {
            "max_batch": self.max_batch,
            "kv_budget": self.kv_budget,
            "queue_timeout": self.queue_timeout,
        }


def resolve_limits(
    n_ctx: int,
    n_threads: int,
    max_batch: int | None = None,
    kv_budget: int | None = None,
    queue_timeout: float | None = None,
) -> SchedulerLimits:
    """The limits asked for, defaults filled in (InvalidParameterError for bad values)."""
    if max_batch is None:
        max_batch = default_max_batch(n_threads)
    if kv_budget is None and not (isinstance(max_batch, bool) or not isinstance(max_batch, int)):
        kv_budget = default_kv_budget(n_ctx, max_batch)
    return SchedulerLimits(max_batch, kv_budget, queue_timeout)  # type: ignore[arg-type]


def default_kv_budget(n_ctx: int, max_batch: int) -> int:
    """KV positions shared by the running sequences when no budget is asked.

    One full-length sequence always fits; otherwise 1024 positions per sequence, which holds
    a typical chat prompt plus its reply, so ``max_batch`` of them run at once.
    """
    return max(n_ctx, 1024 * max_batch)


class SchedulerStats(TypedDict):
    """Counters of a Model's scheduler (``Model.stats()``)."""

    steps: int
    batched_steps: int  # steps that carried more than one sequence
    max_sequences_per_step: int
    tokens_evaluated: int
    tokens_sampled: int
    active: int
    queued: int
    prefix_cache_hits: int
    prefix_cache_tokens: int  # prompt tokens copied from the cache instead of computed
    mean_step_seconds: float
    # Engine calls of the scheduler thread: each runs without the GIL, and each return waits
    # for it. A step makes at most two, however many sequences it carries: the forward, then
    # the sampling of every sequence's next token.
    engine_calls: int
    # Hand-overs of chunks to callers: at most one per request and step.
    wakeups: int


class Scheduler:
    """Runs a Model's requests on one thread, started by a request and ended when idle."""

    def __init__(
        self, engine: Engine, limits: SchedulerLimits, prefix_cache: PrefixCache | None
    ) -> None:
        self._engine = engine
        self.limits = limits
        self._cache = prefix_cache
        self._lock = threading.Lock()
        self._queue: deque[GenerationRequest] = deque()  # guarded by _lock
        self._embeds: deque[EmbeddingRequest] = deque()  # guarded by _lock
        self._running: list[GenerationRequest] = []  # the scheduler thread's own
        self._reserved = 0
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._steps = self._batched_steps = self._max_rows = 0
        self._tokens_evaluated = self._tokens_sampled = 0
        self._engine_calls = self._wakeups = 0
        self._step_seconds = 0.0

    # -- callers' side -------------------------------------------------------------------------

    def submit(self, request: GenerationRequest | EmbeddingRequest) -> None:
        """Queue ``request`` (BitnetError once the scheduler is closed)."""
        with self._lock:
            if self._stopping:
                raise BitnetError("the model is closed")
            if isinstance(request, EmbeddingRequest):
                self._embeds.append(request)  # needs no KV budget: never waits for one
            else:
                if self.limits.queue_timeout is not None:
                    request.deadline = time.monotonic() + self.limits.queue_timeout
                self._queue.append(request)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name="bitnet-scheduler", daemon=True
                )
                self._thread.start()

    def close(self) -> None:
        """Stop after the current step; every unfinished request fails with BitnetError."""
        with self._lock:
            self._stopping = True
            thread = self._thread
        if thread is not None:
            thread.join()  # a step is bounded: at most max_batch tokens plus a prefill chunk
        self._end_all(BitnetError("the model is closed"))
        if self._cache is not None:
            self._cache.clear()

    def stats(self) -> SchedulerStats:
        steps = self._steps
        return SchedulerStats(
            steps=steps,
            batched_steps=self._batched_steps,
            max_sequences_per_step=self._max_rows,
            tokens_evaluated=self._tokens_evaluated,
            tokens_sampled=self._tokens_sampled,
            active=len(self._running),
            queued=len(self._queue),
            prefix_cache_hits=self._cache.hits if self._cache is not None else 0,
            prefix_cache_tokens=self._cache.reused_tokens if self._cache is not None else 0,
            mean_step_seconds=self._step_seconds / steps if steps else 0.0,
            engine_calls=self._engine_calls,
            wakeups=self._wakeups,
        )

    # -- the scheduler thread ------------------------------------------------------------------

    def _serve(self) -> None:
        try:
            while self._has_work():
                self._step()
        except BaseException as exc:  # a fault of the scheduler itself, not of one request
            self._end_all(_as_bitnet_error(exc) if isinstance(exc, Exception) else exc)
            with self._lock:
                if not self._stopping:
                    self._thread = None  # the next request starts afresh
            raise

    def _has_work(self) -> bool:
        """True while there is something to run; an idle thread ends (no thread sits idle,
        and a Model that is dropped without ``close`` is not kept alive by it)."""
        with self._lock:
            if self._stopping:
                return False  # close() ends the requests once this thread has stopped
            if self._queue or self._embeds or self._running:
                return True
            self._thread = None  # the next submit starts a new thread
            return False

    def _end_all(self, error: BaseException) -> None:
        """Fail every running and queued request with ``error`` and free their sequences."""
        with self._lock:
            waiting: list[GenerationRequest | EmbeddingRequest] = [*self._queue, *self._embeds]
            self._queue.clear()
            self._embeds.clear()
        running, self._running = self._running, []
        self._reserved = 0
        for request in [*running, *waiting]:
            request.fail(error)
        for request in running:
            self._free(request, keep=False)

    def _step(self) -> None:
        self._drop_cancelled()
        self._admit()
        self._embed_some()
        if not self._running:
            return
        items = []
        stepping = []
        for r in self._running:
            if not r.prefilling:
                items.append((r.session, r.decode_input()))
                stepping.append(r)
        budget = PREFILL_CHUNK if items else PREFILL_ALONE
        for r in self._running:
            if r.prefilling and budget > 0:
                chunk = r.prompt_chunk(budget)
                budget -= len(chunk)
                items.append((r.session, chunk))
                stepping.append(r)
        start = time.perf_counter()
        errors = engine_ops.eval_batch(self._engine, items)  # type: ignore[arg-type]
        self._engine_calls += 1
        self._step_seconds += time.perf_counter() - start
        self._steps += 1
        self._batched_steps += len(items) > 1
        self._max_rows = max(self._max_rows, len(items))
        self._tokens_evaluated += sum(len(ids) for _, ids in items)
        sampling = []
        for r, error in zip(stepping, errors, strict=True):
            if error is None and r.prefilling:
                continue  # more of its prompt next step
            try:
                if error is not None:
                    raise error
                sampling.append((r, r.sampling()))
            except Exception as exc:
                self._drop(r, exc)
        if sampling:
            tokens = engine_ops.sample_batch(self._engine, [row for _, row in sampling])
            self._engine_calls += 1
            for (r, _), tok in zip(sampling, tokens, strict=True):
                try:
                    if isinstance(tok, BaseException):
                        raise tok
                    self._tokens_sampled += 1
                    if r.accept(tok):
                        self._retire(r, keep=True)
                except Exception as exc:
                    self._drop(r, exc)
                # Its caller wakes now, once, with all of the step's chunks: its thread gets
                # going while this one finishes the other rows, and takes the GIL when the
                # next forward releases it (this thread releases it nowhere before).
                self._wakeups += r.publish()

    def _drop(self, r: GenerationRequest, exc: Exception) -> None:
        """End ``r`` alone with ``exc``; the step's other requests go on."""
        r.fail(_as_bitnet_error(exc))
        self._retire(r, keep=False)

    def _drop_cancelled(self) -> None:
        for r in [r for r in self._running if r.cancelled]:
            self._retire(r, keep=True)  # its sequence is consistent: worth caching

    def _admit(self) -> None:
        admitted = []
        now = time.monotonic()
        limits = self.limits
        with self._lock:
            running = len(self._running)
            reserved = self._reserved
            while self._queue:
                r = self._queue[0]
                if r.cancelled:
                    self._queue.popleft()
                    continue
                if r.deadline is not None and now > r.deadline:
                    self._queue.popleft()
                    r.fail(QueueTimeoutError(limits.queue_timeout or 0.0))
                    continue
                fits = reserved + r.reservation <= limits.kv_budget or running == 0
                if running >= limits.max_batch or not fits:
                    break  # first in, first out: the others wait behind it
                self._queue.popleft()
                admitted.append(r)
                running += 1
                reserved += r.reservation
        for r in admitted:
            self._start(r)

    def _start(self, r: GenerationRequest) -> None:
        if r.room <= 0:  # the prompt fills the context window: nothing to generate
            r.finish("length")
            self._wakeups += r.publish()
            return
        try:
            if self._cache is not None:
                session, cached = self._cache.session_for(r.prompt, r.reservation)
            else:
                session, cached = self._engine.new_session(r.reservation), 0
        except Exception as exc:
            r.fail(_as_bitnet_error(exc))
            return
        self._running.append(r)
        self._reserved += r.reservation
        try:
            r.begin(session, cached)
        except Exception as exc:
            self._drop(r, exc)

    def _retire(self, r: GenerationRequest, keep: bool) -> None:
        self._running.remove(r)
        self._reserved -= r.reservation
        self._free(r, keep)

    def _free(self, r: GenerationRequest, keep: bool) -> None:
        session, r.session = r.session, None
        if session is None:
            return
        if keep and self._cache is not None:
            self._cache.store(session)
        else:
            session.close()

    def _embed_some(self) -> None:
        """Embed up to ``max_batch`` queued texts in one engine call."""
        rows: list[tuple[EmbeddingRequest, int]] = []
        with self._lock:
            while self._embeds and len(rows) < self.limits.max_batch:
                r = self._embeds[0]
                if r.cancelled:
                    self._embeds.popleft()
                    continue
                while r.next_row < len(r.id_lists) and len(rows) < self.limits.max_batch:
                    rows.append((r, r.next_row))
                    r.next_row += 1
                if r.next_row == len(r.id_lists):
                    self._embeds.popleft()
        if not rows:
            return
        try:
            hidden = engine_ops.hidden_states_batch(
                self._engine, [r.id_lists[row] for r, row in rows]
            )
            self._engine_calls += 1
        except Exception as exc:
            for r in {id(r): r for r, _ in rows}.values():
                r.fail(_as_bitnet_error(exc))
            return
        for (r, row), h in zip(rows, hidden, strict=True):
            if not r.cancelled:
                r.fill(row, h)
        for r in {id(r): r for r, _ in rows}.values():
            r.publish()


def _as_bitnet_error(exc: Exception) -> BitnetError:
    """Errors reach callers as BitnetError; an unexpected one keeps its cause attached."""
    if isinstance(exc, BitnetError):
        return exc
    error = BitnetError(f"generation failed: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error
