"""GET /metrics: Prometheus text with requests, tokens, slots and the engine's own numbers."""

from __future__ import annotations

import httpx
from live_server import LiveServer
from prometheus_client.parser import text_string_to_metric_families

import bitnet_backend as bb


def scrape(srv: LiveServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = httpx.get(f"{srv.url}/metrics", timeout=30)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def test_metrics_count_requests_tokens_and_slots(
    server: LiveServer, models: dict[str, bb.Model]
) -> None:
    before = scrape(server)
    body = {
        "model": "tiny",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 5,
        "temperature": 0,
    }
    usage = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=60).json()["usage"]
    httpx.post(f"{server.url}/v1/chat/completions", json={"model": "nope"}, timeout=60)
    after = scrape(server)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("bitnet_requests_total", endpoint="/v1/chat/completions", status="200") == 1
    assert delta("bitnet_requests_total", endpoint="/v1/chat/completions", status="400") == 1
    assert delta("bitnet_prompt_tokens_total", model="tiny") == usage["prompt_tokens"]
    assert delta("bitnet_completion_tokens_total", model="tiny") == usage["completion_tokens"]
    assert after[("bitnet_requests_active", (("model", "tiny"),))] == 0
    assert after[("bitnet_requests_queued", (("model", "tiny"),))] == 0
    if callable(getattr(models["tiny"], "stats", None)):  # models with a batching scheduler
        assert any(name.startswith("bitnet_engine_") for name, _ in after)
