"""The public Model: load a checkpoint on a backend, then tokenize, generate, chat and embed.

The Model validates every call on the caller's side (options, prompt, schema, tools), then
hands the work to its scheduler (scheduler.py), which runs the requests of all threads and
event loops in shared forward steps; results come back through a per-request channel
(async_bridge.py) that threads block on and event loops await. Reading and preparing a
checkpoint is loading.py's work, turning conversations and tools into requests
chat_requests.py's.
"""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from . import validation
from .chat_requests import chat_prompt, chat_results, start_chat, start_chats
from .chat_results import ChatChunks, chat_chunks, chat_result
from .completion import (
    ChatCompletion,
    ChatCompletionChunk,
    Completion,
    CompletionChunk,
)
from .constraints import (
    ConstraintCompiler,
    ToolProtocol,
    compiler_for,
)
from .engine_ops import InFlightCalls
from .errors import BitnetError, ContextOverflowError, InvalidParameterError
from .loading import DEFAULT_MODEL_DIR, LARGE_CHECKPOINT_BYTES, checkpoint_bytes, load_parts
from .options import OPTION_NAMES, GenerationConfig
from .prefix_cache import PrefixCache
from .requests import EmbeddingRequest, GenerationRequest, acollect, collect
from .requests import Plan as _Plan
from .sampling import SamplingParams, resolve_seed
from .scheduler import Scheduler, SchedulerStats, resolve_limits
from .threads import default_threads
from .tokenizer import Tokenizer

if TYPE_CHECKING:
    from .backend import Engine
    from .checkpoints.hf import Checkpoint
    from .config import ModelConfig

# Names importable from here since the start; loading.py now holds the loading ones (and
# reads LARGE_CHECKPOINT_BYTES from its own namespace: change it there).
__all__ = [
    "DEFAULT_MODEL_DIR",
    "LARGE_CHECKPOINT_BYTES",
    "GenerationConfig",
    "Model",
    "checkpoint_bytes",
    "default_threads",
    "load",
]


def _declared_options(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The generation options among a method's arguments (its ``locals()`` on entry)."""
    return {name: arguments[name] for name in OPTION_NAMES}


def load(
    source: str | os.PathLike[str] | None = None,
    backend: str = "auto",
    n_threads: int | None = None,
    n_ctx: int | None = None,
    progress: bool | None = None,
    *,
    cache_prompt: bool = True,
    max_batch: int | None = None,
    kv_budget: int | None = None,
    queue_timeout: float | None = None,
    verify: bool = True,
    **options: Any,
) -> Model:
    """Load a BitNet b1.58 model.

    ``source``: a local checkpoint directory (Hugging Face layout), a GGUF file (or a
    directory holding one), a hub id (``owner/name``, or ``owner/name/file.gguf``), or None
    for the default model bundled with the package. ``backend``: a backend name or "auto" (the
    highest-priority available one; see ``bitnet plugins``). ``n_threads``: worker threads
    (default: the physical cores this process may use, and the model then runs its work on
    the calling thread alone while other programs make that faster, same results; a count
    given here is used as given; at most 4 per usable CPU). ``n_ctx``:
    context window in tokens (default: the model's max_position_embeddings). ``progress``:
    show a progress bar while reading weights (None: only for large checkpoints).
    ``cache_prompt`` (default True): keep the KV caches of recent calls and start a prompt that
    shares their prefix from there (multi-turn chat, a common system prompt; see
    prefix_cache.py).

    Concurrent calls share forward steps (scheduler.py). ``max_batch``: the most sequences
    per step (default: ``scheduler.default_max_batch``, 8 on up to 2 threads). ``kv_budget``:
    KV positions the running sequences may hold together (default: ``max(n_ctx, 1024 *
    max_batch)``); a call reserves min(n_ctx, prompt + max_tokens). Calls beyond either wait
    in the queue; ``queue_timeout`` (seconds, default None: wait as long as it takes) turns a
    longer wait into QueueTimeoutError. ``verify`` (default True): check that every float
    weight is finite and, for a directory written by ``bitnet convert``, its checksums (costs
    one read of those tensors; False skips it for files known to be intact). Other options go
    to the backend's ``load``.

    Every call reads and prepares the weights anew and holds its own copy: to share one
    loaded model within a process, use ``bitnet_backend.load_shared``. A large checkpoint
    that is not converted says once on stderr that ``bitnet convert`` makes its loads fast.
    """
    parts = load_parts(
        source,
        backend,
        n_threads,
        n_ctx,
        progress,
        max_batch=max_batch,
        kv_budget=kv_budget,
        queue_timeout=queue_timeout,
        verify=verify,
        options=options,
    )
    return Model(
        parts.engine,
        parts.checkpoint,
        parts.tokenizer,
        n_ctx=parts.n_ctx,
        n_threads=parts.n_threads,
        source=str(source) if source is not None else "default",
        backend_name=parts.backend_name,
        cache_prompt=bool(cache_prompt),
        max_batch=max_batch,
        kv_budget=kv_budget,
        queue_timeout=queue_timeout,
    )


class Model:
    """A loaded model. Use ``bitnet_backend.load`` to make one; ``close()`` frees it."""

    def __init__(
        self,
        engine: Engine,
        checkpoint: Checkpoint,
        tokenizer: Tokenizer | None,
        *,
        n_ctx: int,
        n_threads: int,
        source: str = "",
        backend_name: str | None = None,
        cache_prompt: bool = True,
        generation_config: GenerationConfig | None = None,
        max_batch: int | None = None,
        kv_budget: int | None = None,
        queue_timeout: float | None = None,
    ) -> None:
        self.engine = engine
        self.backend_name = backend_name or engine.backend_name
        self.checkpoint = checkpoint
        self.tokenizer = tokenizer
        self.config: ModelConfig = engine.config
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.source = source
        self.cache_prompt = cache_prompt
        self.generation_config = generation_config or GenerationConfig.from_hf(
            checkpoint.generation_config or {}
        )
        eos = list(checkpoint.eos_token_ids)
        if tokenizer is not None:
            eos += [e for e in tokenizer.eos_token_ids if e not in eos]
        self.eos_token_ids: tuple[int, ...] = tuple(eos)
        self._eos = frozenset(eos)
        self._lock = threading.Lock()
        self._closed = False
        # Prefix caches hold up to one context window of KV positions, as much as the single
        # cached sequence of a model that served one call at a time.
        cache = PrefixCache(engine, n_ctx) if cache_prompt else None
        limits = resolve_limits(n_ctx, n_threads, max_batch, kv_budget, queue_timeout)
        self._scheduler = Scheduler(engine, limits, cache)
        self._direct_calls = InFlightCalls()  # logits() runs on the caller's thread

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        """End running calls (BitnetError), free the KV caches and the weights.

        Returns once the scheduler has finished its current step and every direct engine
        call has returned; further calls raise BitnetError.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._scheduler.close()
        self._direct_calls.close()
        self.engine.close()
        self.checkpoint.close()

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"backend={self.backend_name!r}"
        return f"<Model {self.source!r} {state} n_ctx={self.n_ctx}>"

    @property
    def closed(self) -> bool:
        """True once ``close()`` has been called."""
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise BitnetError("the model is closed")

    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    @property
    def info(self) -> dict[str, Any]:
        """Architecture, parameter count, context length, weight format, backend, ISA, threads."""
        self._check_open()
        cfg = self.config
        engine_info = dict(self.engine.info)
        weight_format = engine_info.get("weight_format") or (
            f"ternary {'packed' if cfg.quantization_mode == 'offline' else 'master'} weights "
            f"({cfg.quantization_mode}, {cfg.linear_class})"
        )
        return {
            "architecture": ", ".join(cfg.extra.get("architectures") or ["BitNetForCausalLM"]),
            "family": cfg.architecture.family,
            **cfg.forward_options(),
            "format": getattr(self.checkpoint, "format", "n/a"),
            "parameters": cfg.parameter_count,
            "context_length": self.n_ctx,
            "max_position_embeddings": cfg.max_position_embeddings,
            "layers": cfg.num_hidden_layers,
            "hidden_size": cfg.hidden_size,
            "intermediate_size": cfg.intermediate_size,
            "attention": f"{cfg.num_attention_heads} heads ({cfg.num_key_value_heads} kv) "
            f"x {cfg.head_dim}",
            "vocab_size": cfg.vocab_size,
            "weight_format": weight_format,
            "backend": self.backend_name,
            "kernel_isa": engine_info.get("kernel_isa") or engine_info.get("isa") or "n/a",
            "threads": engine_info.get("threads") or engine_info.get("n_threads") or self.n_threads,
            "source": self.source,
            "path": str(self.checkpoint.path),
            "engine": engine_info,
            "scheduler": {**self._scheduler.limits.as_dict(), **self.stats()},
        }

    def stats(self) -> SchedulerStats:
        """Scheduler counters: steps, steps shared by several sequences, tokens, queue, cache."""
        return self._scheduler.stats()

    # -- tokens ---------------------------------------------------------------------------

    def _tok(self) -> Tokenizer:
        if self.tokenizer is None:
            raise InvalidParameterError("this checkpoint has no tokenizer; pass token ids")
        return self.tokenizer

    def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        """Token ids of ``text`` (with a leading BOS when ``add_special``)."""
        return self._tok().encode(text, add_special=add_special)

    def detokenize(self, ids: Sequence[int], skip_special: bool = True) -> str:
        """Text of ``ids``."""
        return self._tok().decode(ids, skip_special=skip_special)

    def _check_ids(self, ids: Sequence[int]) -> list[int]:
        n = self.vocab_size
        out = []
        for i in ids:
            if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < n:
                raise InvalidParameterError(f"token id {i!r} is outside the vocabulary [0, {n})")
            out.append(int(i))
        return out

    def _encode_prompt(self, text: str, add_special: bool) -> list[int]:
        tok = self._tok()
        # A lower bound first, so a text far too long fails before it is tokenized.
        floor = validation.min_token_count(validation.utf8_length(text), tok.longest_token_bytes)
        if floor > self.n_ctx:
            raise ContextOverflowError(floor, self.n_ctx)
        return tok.encode(text, add_special=add_special)

    def _prompt_ids(self, prompt: str | Sequence[int]) -> list[int]:
        validation.check_prompt_type(prompt)
        if isinstance(prompt, str):
            ids = self._encode_prompt(prompt, add_special=True)
        elif isinstance(prompt, (Sequence, np.ndarray)):
            ids = self._check_ids(list(prompt))  # type: ignore[arg-type]
        else:
            raise InvalidParameterError(
                f"prompt must be a string or a list of token ids, got {type(prompt).__name__}"
            )
        if not ids:
            raise InvalidParameterError("the prompt is empty")
        if len(ids) > self.n_ctx:
            raise ContextOverflowError(len(ids), self.n_ctx)
        return ids

    def logits(self, ids: Sequence[int]) -> np.ndarray:
        """Fresh forward over ``ids``: float32 logits ``[len(ids), vocab]`` (no state kept)."""
        self._check_open()
        validation.check_prompt_type(ids)
        if not isinstance(ids, (Sequence, np.ndarray)) or isinstance(ids, str):
            raise InvalidParameterError(f"ids must be a list of token ids, got {ids!r:.80}")
        ids = self._check_ids(list(ids))
        if not ids:
            raise InvalidParameterError("ids is empty")
        if len(ids) > self.n_ctx:
            raise ContextOverflowError(len(ids), self.n_ctx)
        with self._direct_calls.call():
            return np.asarray(self.engine.logits(ids), dtype=np.float32)

    # -- generation -----------------------------------------------------------------------

    def _plan(self, options: Mapping[str, Any]) -> _Plan:
        """Validate generation options (None = the generation_config default)."""
        o = self.generation_config.updated(options)
        stops = o.stop
        grammar = None
        if o.json_schema is not None:
            grammar = self._constraints().json_schema(o.json_schema)
            stops = ()  # the schema decides where the output ends (constraints/grammar.py)
        return _Plan(
            params=SamplingParams.of(o),
            seed=resolve_seed(o.seed),
            max_tokens=o.max_tokens,
            stops=stops,
            grammar=grammar,
            logprobs=o.logprobs,
        )

    def _constraints(self) -> ConstraintCompiler:
        """Grammar compiler for this model's tokenizer (built on first use, then shared)."""
        return compiler_for(self._tok(), self.eos_token_ids, self.vocab_size)

    def _start(self, prompt: str | Sequence[int], options: Mapping[str, Any]) -> GenerationRequest:
        """Validate everything; the request is not queued yet."""
        self._check_open()
        plan = self._plan(options)
        return self._request(self._prompt_ids(prompt), plan)

    def _request(self, prompt: list[int], plan: _Plan) -> GenerationRequest:
        token_bytes = self.tokenizer.token_bytes if self.tokenizer is not None else None
        return GenerationRequest(prompt, plan, self.n_ctx, token_bytes, self._eos)

    def _chunks(self, request: GenerationRequest) -> Iterator[CompletionChunk]:
        """Queue ``request`` once iteration starts; its chunks as they come."""
        self._scheduler.submit(request)
        yield from request.chunks()

    async def _achunks(self, request: GenerationRequest) -> AsyncIterator[CompletionChunk]:
        self._scheduler.submit(request)
        async for chunk in request.achunks():
            yield chunk

    def generate(
        self,
        prompt: str | Sequence[int],
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        min_p: float | None = None,
        repeat_penalty: float | None = None,
        seed: int | None = None,
        stop: str | Iterable[str] | None = None,
        json_schema: Any = None,
        *,
        repeat_last_n: int | None = None,
        logprobs: int | None = None,
    ) -> Completion:
        """Complete ``prompt`` (text, or token ids used as is).

        Options left at None take ``self.generation_config``'s value (max_tokens 256; -1 =
        until the context window is full). ``temperature=0`` is greedy. ``stop`` strings end
        the generation and are not part of the text. ``json_schema`` constrains the output to
        JSON valid against the schema (see ``constraints/grammar.py``; stop strings do not
        apply then, finish_reason "length" means the JSON is incomplete). ``logprobs=N`` (0 to
        20) fills ``Completion.logprobs``: each token's log-probability and its N likeliest
        alternatives (see ``logprobs.py``). Raises InvalidParameterError for bad options (and
        schemas) and ContextOverflowError when the prompt does not fit in n_ctx, both before any
        model work.
        """
        options = _declared_options(locals())
        return collect(self._chunks(self._start(prompt, options)))

    def stream(
        self,
        prompt: str | Sequence[int],
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        min_p: float | None = None,
        repeat_penalty: float | None = None,
        seed: int | None = None,
        stop: str | Iterable[str] | None = None,
        json_schema: Any = None,
        *,
        repeat_last_n: int | None = None,
        logprobs: int | None = None,
    ) -> Iterator[CompletionChunk]:
        """Like ``generate``, as an iterator of CompletionChunk.

        The options and the prompt are checked by this call, before iteration starts.
        """
        options = _declared_options(locals())
        return self._chunks(self._start(prompt, options))

    # -- chat -----------------------------------------------------------------------------

    def apply_chat_template(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
        add_generation_prompt: bool = True,
        **template_kwargs: Any,
    ) -> str:
        """The prompt text the model's chat template makes of ``messages``."""
        return self._tok().apply_chat_template(
            messages, tools=tools, add_generation_prompt=add_generation_prompt, **template_kwargs
        )

    def tokenize_chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
        *,
        tool_choice: str | Mapping[str, Any] = "auto",
        parallel_tool_calls: bool = False,
        template_kwargs: Mapping[str, Any] | None = None,
    ) -> list[int]:
        """The prompt token ids ``chat`` would generate from, with the same arguments.

        Counts what the chat template renders, the tools' description included, so its length
        is the reply's ``usage["prompt_tokens"]``.
        """
        protocol = ToolProtocol.from_request(tools, tool_choice, parallel_tool_calls)
        return chat_prompt(self, messages, protocol, template_kwargs)

    def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
        *,
        tool_choice: str | Mapping[str, Any] = "auto",
        parallel_tool_calls: bool = False,
        template_kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> ChatCompletion:
        """Reply to ``messages`` (``[{"role": ..., "content": ...}, ...]``).

        ``tools`` (OpenAI-style function dicts) may be called as ``tool_choice`` allows:
        "auto" (text or a call), "required", ``{"name": ...}`` or "none"; a call comes back
        in ``message["tool_calls"]`` with finish_reason "tool_calls" (protocol and prompt
        format: ``constraints/tools.py``). ``template_kwargs`` go to the chat template;
        ``options`` are those of ``generate``.
        """
        request, tool_stream = start_chat(
            self, messages, tools, template_kwargs, options, tool_choice, parallel_tool_calls
        )
        return chat_result(collect(self._chunks(request)), tool_stream)

    def stream_chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
        *,
        tool_choice: str | Mapping[str, Any] = "auto",
        parallel_tool_calls: bool = False,
        template_kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Iterator[ChatCompletionChunk]:
        """Like ``chat``, as an iterator of ChatCompletionChunk.

        Tool calls stream as ``delta["tool_calls"]`` pieces (id and name, then the arguments'
        JSON text); the last chunk's ``tool_calls`` holds the complete, parsed calls.
        """
        request, tool_stream = start_chat(
            self, messages, tools, template_kwargs, options, tool_choice, parallel_tool_calls
        )
        return chat_chunks(self._chunks(request), tool_stream)

    # -- embeddings -----------------------------------------------------------------------

    def _embedding_request(self, texts: str | Sequence[str]) -> EmbeddingRequest:
        self._check_open()
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, Sequence) or not all(isinstance(t, str) for t in texts):
            raise InvalidParameterError("texts must be a string or a list of strings")
        tok = self._tok()
        batches = [tok.encode(t, add_special=True) for t in texts]
        for ids in batches:
            if not ids:
                raise InvalidParameterError("cannot embed an empty text")
            if len(ids) > self.n_ctx:
                raise ContextOverflowError(len(ids), self.n_ctx)
        return EmbeddingRequest(batches, self.hidden_size)

    def embed(self, texts: str | Sequence[str]) -> np.ndarray:
        """Float32 ``[len(texts), hidden]``: mean of the final hidden states, L2-normalised.

        Texts are embedded several per step, together with the texts of concurrent calls.
        """
        request = self._embedding_request(texts)
        if not request.id_lists:
            return request.result
        self._scheduler.submit(request)
        return request.wait()

    # -- async ----------------------------------------------------------------------------
    # The scheduler does the work; these await its results without a thread per call.

    async def agenerate(self, prompt: str | Sequence[int], **options: Any) -> Completion:
        """``generate`` for an event loop; cancelling the await stops the generation."""
        return await acollect(self._achunks(self._start(prompt, options)))

    async def astream(
        self, prompt: str | Sequence[int], **options: Any
    ) -> AsyncIterator[CompletionChunk]:
        """``stream`` as an async iterator; leaving it early stops the generation."""
        async for chunk in self._achunks(self._start(prompt, options)):
            yield chunk

    async def achat(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
        *,
        tool_choice: str | Mapping[str, Any] = "auto",
        parallel_tool_calls: bool = False,
        template_kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> ChatCompletion:
        """``chat`` for an event loop; cancelling the await stops the generation."""
        request, tool_stream = start_chat(
            self, messages, tools, template_kwargs, options, tool_choice, parallel_tool_calls
        )
        return chat_result(await acollect(self._achunks(request)), tool_stream)

    async def astream_chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
        *,
        tool_choice: str | Mapping[str, Any] = "auto",
        parallel_tool_calls: bool = False,
        template_kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> AsyncIterator[ChatCompletionChunk]:
        """``stream_chat`` as an async iterator; leaving it early stops the generation."""
        request, tool_stream = start_chat(
            self, messages, tools, template_kwargs, options, tool_choice, parallel_tool_calls
        )
        chat = ChatChunks(tool_stream)
        async for c in self._achunks(request):
            yield chat.convert(c)

    async def aembed(self, texts: str | Sequence[str]) -> np.ndarray:
        """``embed`` for an event loop."""
        request = self._embedding_request(texts)
        if not request.id_lists:
            return request.result
        self._scheduler.submit(request)
        return await request.await_result()

    # -- batches --------------------------------------------------------------------------

    def generate_batch(
        self, prompts: Sequence[str | Sequence[int]], **options: Any
    ) -> list[Completion]:
        """``generate`` for each prompt (same options), run together; results in order.

        Every prompt is validated before any is queued.
        """
        requests = [self._start(p, options) for p in validation.check_batch(prompts, "prompts")]
        return self._run_batch(requests)

    async def agenerate_batch(
        self, prompts: Sequence[str | Sequence[int]], **options: Any
    ) -> list[Completion]:
        """``generate_batch`` for an event loop."""
        requests = [self._start(p, options) for p in validation.check_batch(prompts, "prompts")]
        return await self._arun_batch(requests)

    def chat_batch(
        self,
        conversations: Sequence[Sequence[Mapping[str, Any]]],
        tools: Sequence[Mapping[str, Any]] | None = None,
        *,
        tool_choice: str | Mapping[str, Any] = "auto",
        parallel_tool_calls: bool = False,
        template_kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> list[ChatCompletion]:
        """``chat`` for each conversation (same tools and options), run together, in order."""
        started = start_chats(
            self, conversations, tools, template_kwargs, options, tool_choice, parallel_tool_calls
        )
        results = self._run_batch([request for request, _ in started])
        return chat_results(results, started)

    async def achat_batch(
        self,
        conversations: Sequence[Sequence[Mapping[str, Any]]],
        tools: Sequence[Mapping[str, Any]] | None = None,
        *,
        tool_choice: str | Mapping[str, Any] = "auto",
        parallel_tool_calls: bool = False,
        template_kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> list[ChatCompletion]:
        """``chat_batch`` for an event loop."""
        started = start_chats(
            self, conversations, tools, template_kwargs, options, tool_choice, parallel_tool_calls
        )
        results = await self._arun_batch([request for request, _ in started])
        return chat_results(results, started)

    def _run_batch(self, requests: list[GenerationRequest]) -> list[Completion]:
        try:
            for r in requests:
                self._scheduler.submit(r)
            return [collect(r.chunks()) for r in requests]
        finally:
            for r in requests:
                r.cancel()  # after an error: the others stop too

    async def _arun_batch(self, requests: list[GenerationRequest]) -> list[Completion]:
        try:
            for r in requests:
                self._scheduler.submit(r)
            return [await acollect(r.achunks()) for r in requests]
        finally:
            for r in requests:
                r.cancel()
