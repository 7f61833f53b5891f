"""The FastAPI app: OpenAI-compatible routes over the Model API.

    POST /v1/chat/completions   POST /v1/completions   POST /v1/embeddings
    GET  /v1/models   GET /v1/models/{id}   GET /health   GET /metrics

Model work runs through the Model API's async methods (worker threads or the engine's
scheduler), so the event loop only parses, translates and writes bytes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from .. import __version__
from ..model import Model
from .auth import require_api_key
from .errors import ApiError, install_error_handlers, validation_error
from .limits import BodyLimitMiddleware
from .metrics import CONTENT_TYPE, Metrics, MetricsMiddleware
from .registry import ModelRegistry, Served
from .schema import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from .settings import ServerSettings
from .streaming import SSEResponse, chat_events, completion_events, gather_all, prime
from .translate import (
    chat_arguments,
    chat_response,
    choice_options,
    choices,
    completion_options,
    completion_prompts,
    completion_response,
    text_offset,
)

R = TypeVar("R", bound=BaseModel)
T = TypeVar("T")


async def parse_body(request: Request, schema: type[R]) -> R:
    """The request body as ``schema``: 400 for bad JSON or a field of the wrong type."""
    raw = await request.body()
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(
            400, f"the request body is not valid JSON: {exc}", code="invalid_json"
        ) from None
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object", code="invalid_json")
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc.errors()) from None


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await ``work``, cancelling it (and so its generation) if the client goes away first.

    The body has been read, so the next ASGI message is the disconnect: waiting for it costs
    nothing while the model works.
    """
    task = asyncio.ensure_future(work)
    gone = False

    async def watch() -> None:
        nonlocal gone
        while (await request.receive())["type"] != "http.disconnect":
            pass
        gone = True
        task.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        return await task
    except asyncio.CancelledError:
        if not gone:
            raise
        # Nobody reads this answer; it only gives the request log and metrics a status.
        raise ApiError(499, "the client closed the request", code="client_closed") from None
    finally:
        watcher.cancel()


class _Slot:
    """A request's admission slot, released exactly once by whoever finishes last."""

    def __init__(self, served: Served) -> None:
        self._served = served
        self._held = False

    async def __aenter__(self) -> _Slot:
        await self._served.admission.acquire()
        self._held = True
        return self

    def release(self) -> None:
        if self._held:
            self._held = False
            self._served.admission.release()

    def hand_off(self) -> Callable[[], None]:
        """Give the release to a streamed response (which runs it when it is over)."""
        self._held = False
        done = False

        def release() -> None:
            nonlocal done
            if not done:
                done = True
                self._served.admission.release()

        return release

    async def __aexit__(self, *exc: object) -> None:
        self.release()


def _head(kind: str, name: str) -> dict[str, Any]:
    prefix = "chatcmpl" if kind.startswith("chat") else "cmpl"
    return {
        "id": f"{prefix}-{uuid.uuid4().hex}",
        "object": kind,
        "created": int(time.time()),
        "model": name,
    }


def create_app(
    settings: ServerSettings,
    models: Mapping[str, Model] | None = None,
) -> FastAPI:
    """The ASGI app serving ``settings.models`` (loaded now, closed at shutdown).

    ``models`` serves already loaded models under the given names instead (their owner
    closes them).
    """
    registry = ModelRegistry.load(settings, models)
    metrics = Metrics(registry)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Each streamed request drives its generation from a worker thread: room for every
        # slot of every model, plus a few for embeddings and other short calls.
        workers = sum(s.admission.parallel for s in registry.served.values()) + 4
        executor = ThreadPoolExecutor(workers, thread_name_prefix="bitnet-serve")
        asyncio.get_running_loop().set_default_executor(executor)
        try:
            yield
        finally:
            registry.close()
            executor.shutdown(wait=False)

    app = FastAPI(
        title="bitnet-backend",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.registry = registry
    app.state.metrics = metrics
    install_error_handlers(app)

    def authorized(request: Request) -> None:
        require_api_key(request, settings.api_key)

    api = APIRouter(dependencies=[Depends(authorized)])

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "models": list(registry.served)}

    @api.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    def model_card(s: Served) -> dict[str, Any]:
        return {"id": s.name, "object": "model", "created": s.created, "owned_by": "bitnet-backend"}

    @api.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card(s) for s in registry.served.values()]}

    @api.get("/v1/models/{name:path}")
    async def get_model(name: str) -> dict[str, Any]:
        return model_card(registry.get(name))

    @api.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        req = await parse_body(request, ChatCompletionRequest)
        served = registry.get(req.model)
        args = chat_arguments(req, settings.max_choices)
        n = choices(req)
        model = served.model
        async with _Slot(served) as slot:
            if req.stream:
                streams = [model.astream_chat(**choice_options(args, i)) for i in range(n)]
                primed = await prime(streams)
                include_usage = bool(req.stream_options and req.stream_options.include_usage)
                body = chat_events(
                    primed,
                    _head("chat.completion.chunk", served.name),
                    include_usage,
                    lambda u: metrics.count_usage(served.name, u),
                )
                return SSEResponse(body, on_close=slot.hand_off())
            results = await unless_disconnected(
                request, gather_all([model.achat(**choice_options(args, i)) for i in range(n)])
            )
        head = _head("chat.completion", served.name)
        out = chat_response(head["id"], head["created"], served.name, results)
        metrics.count_usage(served.name, out["usage"])
        return JSONResponse(out)

    @api.post("/v1/completions")
    async def completions(request: Request) -> Response:
        req = await parse_body(request, CompletionRequest)
        served = registry.get(req.model)
        prompts = completion_prompts(req, settings.max_choices)
        if len(prompts) > settings.max_prompts:
            raise ApiError(
                400,
                f"at most {settings.max_prompts} prompts per request, got {len(prompts)}",
                param="prompt",
                code="invalid_value",
            )
        n = choices(req)
        options = completion_options(req)
        model = served.model
        runs = [(p, choice_options(options, i)) for p in prompts for i in range(n)]
        offsets = [text_offset(p) for p, _ in runs]
        async with _Slot(served) as slot:
            if req.stream:
                streams = [model.astream(p, **o) for p, o in runs]
                primed = await prime(streams)
                include_usage = bool(req.stream_options and req.stream_options.include_usage)
                body = completion_events(
                    primed,
                    n,
                    offsets,
                    _head("text_completion", served.name),
                    include_usage,
                    lambda u: metrics.count_usage(served.name, u),
                )
                return SSEResponse(body, on_close=slot.hand_off())
            results = await unless_disconnected(
                request, gather_all([model.agenerate(p, **o) for p, o in runs])
            )
        head = _head("text_completion", served.name)
        out = completion_response(head["id"], head["created"], served.name, results, n, offsets)
        metrics.count_usage(served.name, out["usage"])
        return JSONResponse(out)

    @api.post("/v1/embeddings")
    async def embeddings(request: Request) -> Response:
        req = await parse_body(request, EmbeddingRequest)
        served = registry.get(req.model)
        model = served.model
        texts = _embedding_texts(req, model, settings.max_embedding_inputs)
        if req.dimensions is not None and req.dimensions != model.hidden_size:
            raise ApiError(
                400,
                f"dimensions must be {model.hidden_size} (the model's width) "
                f"or left out, got {req.dimensions}",
                param="dimensions",
                code="invalid_value",
            )
        async with _Slot(served):
            vectors = await model.aembed(texts)
        tokens = sum(len(model.tokenize(t)) for t in texts)
        data = [
            {"object": "embedding", "index": i, "embedding": _encode(v, req.encoding_format)}
            for i, v in enumerate(vectors)
        ]
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        metrics.count_usage(served.name, usage)
        return JSONResponse({"object": "list", "data": data, "model": served.name, "usage": usage})

    app.include_router(api)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def _embedding_texts(req: EmbeddingRequest, model: Model, limit: int) -> list[str]:
    """The texts to embed; token-id inputs are decoded with the model's tokenizer."""
    raw = req.input
    items: list[str | list[int]]
    if isinstance(raw, str):
        items = [raw]
    elif raw and all(isinstance(x, int) for x in raw):
        items = [list(raw)]  # type: ignore[arg-type]
    else:
        items = list(raw)  # type: ignore[arg-type]
    if not items:
        raise ApiError(400, "input is empty", param="input", code="invalid_value")
    if len(items) > limit:
        raise ApiError(
            400,
            f"at most {limit} inputs per request, got {len(items)}",
            param="input",
            code="invalid_value",
        )
    texts = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            texts.append(item)
            continue
        bad = [t for t in item if not 0 <= t < model.vocab_size]
        if bad or not item:
            what = (
                f"token id {bad[0]} is outside the vocabulary [0, {model.vocab_size})"
                if (bad)
                else "is empty"
            )
            raise ApiError(400, f"input[{i}] {what}", param="input", code="invalid_value")
        texts.append(model.detokenize(item))
    return texts


def _encode(vector: np.ndarray, encoding_format: str | None) -> Any:
    if encoding_format == "base64":
        # Little-endian float32, what openai-python's decoder reads.
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return [float(x) for x in vector]
