"""One request as the scheduler runs it: a generation or an embedding, and its results.

A GenerationRequest carries a validated prompt and Plan, the sequence (Session) it runs in
while admitted, and the Channel its chunks go to. The scheduler thread calls ``begin``,
feeds prompt chunks, then after every forward that produced its logits asks for its
``sampling`` (session, options, grammar mask), samples the token with the step's other rows
and hands it to ``accept``, which assembles text and emits chunks. Emitted items wait in the
request until the scheduler calls ``publish`` once the token is taken, so the caller wakes
once per step, after the step's last engine call. Its work per token does not grow with the
prompt, the text or the vocabulary.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

import numpy as np

from .async_bridge import Channel
from .clock import GenerationClock
from .completion import Completion, CompletionChunk, FinishReason, TokenLogprob, make_usage
from .errors import BitnetError
from .generation import TextAssembler
from .logprobs import token_logprob

if TYPE_CHECKING:
    from .backend import Session
    from .constraints import Grammar, GrammarState
    from .sampling import SamplingParams

T = TypeVar("T")


# Sequences are sized in blocks of this many positions, so that a finished sequence can be
# taken over by a follow-up prompt a little longer than it (the prefix cache of an engine
# that cannot copy prefixes takes cached sequences over; prefix_cache.py).
KV_BLOCK = 256


@dataclass(frozen=True)
class Plan:
    """The validated options of one generation."""

    params: SamplingParams
    seed: int
    max_tokens: int
    stops: tuple[str, ...]
    grammar: Grammar | None = None  # constrains every sampled token (json_schema, tools)
    logprobs: int | None = None  # alternatives per token entry; None: no entries


class Request(Generic[T]):
    """What every request has: its output Channel, cancellation and a queue deadline."""

    def __init__(self) -> None:
        self.channel: Channel[T] = Channel()
        self.cancelled = False
        self.deadline: float | None = None  # time.monotonic() after which it may not wait
        self._outbox: list[T] = []  # emitted, not yet handed to the caller

    def cancel(self) -> None:
        """The caller is gone: the scheduler drops the request at its next step."""
        self.cancelled = True

    def emit(self, item: T) -> None:
        """Queue ``item`` for the caller; it gets it at the next ``publish``."""
        self._outbox.append(item)

    def publish(self) -> bool:
        """Hand the emitted items to the caller at once; True when there were any."""
        if not self._outbox:
            return False
        items, self._outbox = self._outbox, []
        if not self.channel.put_many(items):
            self.cancel()
        return True

    def fail(self, error: BaseException) -> None:
        """End the request with ``error`` (raised in the caller, after the items emitted
        before it); nothing else follows."""
        self.cancelled = True
        self.publish()
        self.channel.fail(error)


class GenerationRequest(Request[CompletionChunk]):
    """One generation: prompt, options, its sequence while admitted, and its output."""

    def __init__(
        self,
        prompt: list[int],
        plan: Plan,
        n_ctx: int,
        token_bytes: Sequence[bytes] | None,
        eos: frozenset[int],
    ) -> None:
        super().__init__()
        self.prompt = prompt
        self.plan = plan
        wanted = n_ctx if plan.max_tokens == -1 else len(prompt) + plan.max_tokens
        # Tokens it may generate: a sequence never outgrows the context window.
        self.room = min(n_ctx, wanted) - len(prompt)
        # KV positions its sequence holds, counted against the KV budget.
        self.reservation = min(n_ctx, -(-wanted // KV_BLOCK) * KV_BLOCK)
        self.session: Session | None = None
        self.fed = 0  # prompt tokens in the session so far
        self.cached_tokens = 0
        self._token_bytes = token_bytes
        self._eos = eos
        self._assembler: TextAssembler | None = None
        self._guide: GrammarState | None = None
        self._generated: list[int] = []
        self._unsent: list[int] = []
        # The entries of the unsent tokens; None when the call asked for none.
        self._unsent_logprobs: list[TokenLogprob] | None = [] if plan.logprobs is not None else None
        # From the call on: time to first token includes the wait in the queue.
        self._clock = GenerationClock()
        self._sampled = False

    @property
    def prefilling(self) -> bool:
        return self.fed < len(self.prompt)

    def begin(self, session: Session, cached_tokens: int) -> None:
        """Take ``session``, which already holds the first ``cached_tokens`` prompt tokens."""
        self.session = session
        self.fed = self.cached_tokens = cached_tokens
        session.set_seed(self.plan.seed)
        self._assembler = TextAssembler(self._token_bytes or [], self.plan.stops)
        if self.plan.grammar is not None:
            self._guide = self.plan.grammar.start()

    def prompt_chunk(self, budget: int) -> list[int]:
        """The next at most ``budget`` prompt tokens to evaluate (counted as fed)."""
        chunk = self.prompt[self.fed : self.fed + budget]
        self.fed += len(chunk)
        return chunk

    def decode_input(self) -> list[int]:
        """The token to evaluate this step: the one sampled last."""
        return self._generated[-1:]

    def sampling(self) -> tuple[Session, SamplingParams, np.ndarray | None]:
        """What its next token is sampled with, from the logits just computed: its session,
        options and grammar mask (None: every token allowed)."""
        assert self.session is not None
        if not self._sampled:  # the prompt's last chunk was in the step just run
            self._clock.prompt_done(len(self.prompt) - self.cached_tokens)
        guide = self._guide
        return self.session, self.plan.params, guide.mask() if guide is not None else None

    def accept(self, tok: int) -> bool:
        """Take the token sampled as ``sampling`` said; True once finished.

        Every finished generation ends with a final chunk (``final_chunk``).
        """
        assert self.session is not None and self._assembler is not None
        guide = self._guide
        if not self._sampled:
            self._sampled = True
            self._clock.first_token()
        if tok in self._eos:
            return self.finish("stop")
        if guide is not None:
            guide.consume(tok)
        self._generated.append(tok)
        self._unsent.append(tok)
        if self._unsent_logprobs is not None:
            self._unsent_logprobs.append(self._logprob_of(tok))
        if self._token_bytes is not None:
            text = self._assembler.push(tok)
            if text:
                self.emit(CompletionChunk(text, self._unsent, logprobs=self._take_logprobs()))
                self._unsent = []
            if self._assembler.stopped:
                return self.finish("stop")
        if guide is not None and guide.finished:
            return self.finish("stop")  # complete: nothing but end-of-sequence could follow
        if len(self._generated) >= self.room:
            return self.finish("length")
        return False

    def _logprob_of(self, tok: int) -> TokenLogprob:
        """``tok``'s entry from the logits it was sampled from (still the session's last)."""
        assert self.session is not None and self.plan.logprobs is not None
        return token_logprob(self.session.last_logits(), tok, self.plan.logprobs, self._token_bytes)

    def _take_logprobs(self) -> list[TokenLogprob] | None:
        """The unsent tokens' entries, handed to a chunk (None when none were asked for)."""
        taken = self._unsent_logprobs
        if taken is not None:
            self._unsent_logprobs = []
        return taken

    def finish(self, finish: FinishReason) -> bool:
        self.emit(self.final_chunk(finish))
        return True

    def final_chunk(self, finish: FinishReason) -> CompletionChunk:
        """The last chunk of every generation: held-back text, finish reason and usage."""
        tail = ""
        if self._token_bytes is not None and self._assembler is not None:
            tail = self._assembler.flush()
        return CompletionChunk(
            tail,
            self._unsent,
            finish_reason=finish,
            usage=make_usage(len(self.prompt), len(self._generated), self.cached_tokens),
            timings=self._clock.timings(len(self._generated)),
            logprobs=self._take_logprobs(),
        )

    # -- the caller's side ---------------------------------------------------------------------

    def chunks(self) -> Iterator[CompletionChunk]:
        """The chunks as they come; leaving early cancels the request."""
        try:
            while True:
                chunk = self.channel.get()
                yield chunk
                if chunk.finish_reason is not None:
                    return
        finally:
            self.cancel()

    async def achunks(self) -> AsyncIterator[CompletionChunk]:
        """``chunks`` for an event loop: awaits without blocking it."""
        try:
            while True:
                chunk = await self.channel.aget()
                yield chunk
                if chunk.finish_reason is not None:
                    return
        finally:
            self.cancel()


class EmbeddingRequest(Request[np.ndarray]):
    """Texts (as ids) to embed: mean of the final hidden states, L2-normalised, per row."""

    def __init__(self, id_lists: list[list[int]], hidden_size: int) -> None:
        super().__init__()
        self.id_lists = id_lists
        self.result = np.zeros((len(id_lists), hidden_size), dtype=np.float32)
        self.next_row = 0  # rows handed to a step so far
        self._rows_done = 0

    def fill(self, row: int, hidden: np.ndarray) -> None:
        v = hidden.mean(axis=0, dtype=np.float64)
        norm = float(np.linalg.norm(v))
        self.result[row] = v / norm if norm > 0 else v
        self._rows_done += 1
        if self._rows_done == len(self.id_lists):
            self.emit(self.result)

    def wait(self) -> np.ndarray:
        try:
            return self.channel.get()
        finally:
            self.cancel()

    async def await_result(self) -> np.ndarray:
        try:
            return await self.channel.aget()
        finally:
            self.cancel()


def collect(chunks: Iterator[CompletionChunk]) -> Completion:
    """The Completion the chunks of one generation make up."""
    builder = _CompletionBuilder()
    for c in chunks:
        done = builder.add(c)
        if done is not None:
            return done
    raise BitnetError("generation ended without a final chunk")


async def acollect(chunks: AsyncIterator[CompletionChunk]) -> Completion:
    """``collect`` for an async iterator of chunks."""
    builder = _CompletionBuilder()
    async for c in chunks:
        done = builder.add(c)
        if done is not None:
            return done
    raise BitnetError("generation ended without a final chunk")


class _CompletionBuilder:
    def __init__(self) -> None:
        self._texts: list[str] = []
        self._ids: list[int] = []
        self._logprobs: list[TokenLogprob] | None = None

    def add(self, c: CompletionChunk) -> Completion | None:
        self._texts.append(c.text)
        self._ids.extend(c.token_ids)
        if c.logprobs is not None:
            if self._logprobs is None:
                self._logprobs = []
            self._logprobs.extend(c.logprobs)
        if c.finish_reason is None:
            return None
        assert c.usage is not None
        return Completion(
            "".join(self._texts), self._ids, c.finish_reason, c.usage, c.timings, self._logprobs
        )
