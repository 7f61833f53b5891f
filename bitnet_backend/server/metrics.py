"""Prometheus metrics of one app (its own registry, so several apps can share a process).

Request counts and latencies come from a middleware; tokens from the responses' usage;
active and queued requests from admission control; and every number of ``Model.stats()``
(engine steps, sequences per step, step time, prefix-cache hits ...) when the model offers it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .registry import ModelRegistry

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
ENDPOINTS = frozenset(
    (
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/embeddings",
        "/v1/models",
        "/health",
        "/metrics",
    )
)


class _ModelCollector(Collector):
    def __init__(self, models: ModelRegistry) -> None:
        self._models = models

    def collect(self) -> Iterator[GaugeMetricFamily]:
        active = GaugeMetricFamily(
            "bitnet_requests_active", "Requests generating now", labels=["model"]
        )
        queued = GaugeMetricFamily(
            "bitnet_requests_queued", "Requests waiting for a slot", labels=["model"]
        )
        engine: dict[str, GaugeMetricFamily] = {}
        for name, s in self._models.served.items():
            active.add_metric([name], s.admission.active)
            queued.add_metric([name], s.admission.queued)
            for key, value in _numbers(_stats(s.model)).items():
                fam = engine.get(key)
                if fam is None:
                    fam = engine[key] = GaugeMetricFamily(
                        f"bitnet_engine_{key}", f"Model.stats() {key}", labels=["model"]
                    )
                fam.add_metric([name], value)
        yield active
        yield queued
        yield from engine.values()


def _stats(model: Any) -> Any:
    stats = getattr(model, "stats", None)  # offered by models with a batching scheduler
    if not callable(stats):
        return {}
    try:
        return stats()
    except Exception:
        return {}  # a closing model must not break the scrape


def _numbers(stats: Any, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a (nested) stats mapping, keys joined with '_'."""
    out: dict[str, float] = {}
    if not isinstance(stats, Mapping):
        return out
    for k, v in stats.items():
        key = "".join(c if c.isalnum() else "_" for c in f"{prefix}{k}")
        if isinstance(v, Mapping):
            out.update(_numbers(v, f"{key}_"))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[key] = float(v)
    return out


class Metrics:
    def __init__(self, models: ModelRegistry) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "bitnet_requests",
            "HTTP requests by endpoint and status",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "bitnet_request_duration_seconds",
            "Time from request to the last byte of the response",
            ["endpoint"],
            registry=self.registry,
        )
        self.prompt_tokens = Counter(
            "bitnet_prompt_tokens", "Prompt tokens processed", ["model"], registry=self.registry
        )
        self.completion_tokens = Counter(
            "bitnet_completion_tokens", "Tokens generated", ["model"], registry=self.registry
        )
        self.cached_tokens = Counter(
            "bitnet_prompt_cached_tokens",
            "Prompt tokens reused from the prefix cache",
            ["model"],
            registry=self.registry,
        )
        self.registry.register(_ModelCollector(models))

    def count_usage(self, model: str, usage: Mapping[str, Any]) -> None:
        self.prompt_tokens.labels(model).inc(usage.get("prompt_tokens", 0))
        self.completion_tokens.labels(model).inc(usage.get("completion_tokens", 0))
        details = usage.get("prompt_tokens_details") or {}
        self.cached_tokens.labels(model).inc(details.get("cached_tokens", 0))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts requests and times them to the last byte (streams included)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        endpoint = path if path in ENDPOINTS else "other"
        status = 500
        start = time.perf_counter()

        async def tracked_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, tracked_send)
        finally:
            self.metrics.requests.labels(endpoint, str(status)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)
