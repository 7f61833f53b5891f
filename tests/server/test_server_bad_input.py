"""Bad requests get OpenAI error objects with the right status, and the server keeps serving."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator

import httpx
import openai
import pytest
from live_server import LiveServer

CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
TIMEOUT = 60.0


def post(srv: LiveServer, path: str, **kwargs: object) -> httpx.Response:
    return httpx.post(f"{srv.url}{path}", timeout=TIMEOUT, **kwargs)  # type: ignore[arg-type]


def assert_error(r: httpx.Response, status: int, param: str | None = None) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["message"] and "Traceback" not in err["message"]
    if param is not None:
        assert err["param"] == param
    return err


def assert_still_serving(srv: LiveServer) -> None:
    r = post(srv, "/v1/chat/completions", json=CHAT)
    assert r.status_code == 200, r.text


def test_malformed_json_is_a_400(server: LiveServer) -> None:
    for body in (b"{not json", b"", b"\xff\xfe", b"[1, 2]", b'"text"'):
        r = post(
            server,
            "/v1/chat/completions",
            content=body,
            headers={"content-type": "application/json"},
        )
        assert_error(r, 400)
    assert_still_serving(server)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": "hi"}, "messages"),
        ({"messages": []}, "messages"),
        ({**CHAT, "max_tokens": "many"}, "max_tokens"),
        ({**CHAT, "temperature": "hot"}, "temperature"),
        ({**CHAT, "stop": 5}, "stop"),
        ({**CHAT, "stream": {"yes": 1}}, "stream"),
        ({**CHAT, "tools": "weather"}, "tools"),
        ({**CHAT, "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({**CHAT, "messages": [{"role": "user", "content": {"a": 1}}]}, "messages[0].content"),
        ({**CHAT, "top_k": 10**30}, "top_k"),
        ({**CHAT, "repeat_last_n": -1}, "repeat_last_n"),
        ({**CHAT, "response_format": {"type": "xml"}}, "response_format"),
    ],
)
def test_wrong_types_and_values_are_a_400_naming_the_field(
    server: LiveServer, body: dict, param: str
) -> None:
    err = assert_error(post(server, "/v1/chat/completions", json=body), 400)
    assert err["param"] is not None and err["param"].startswith(param)


@pytest.mark.parametrize(
    "options",
    [{"temperature": -1}, {"max_tokens": 0}, {"top_p": 7}, {"top_k": -3}],
)
def test_values_the_model_refuses_are_a_400(server: LiveServer, options: dict) -> None:
    assert_error(post(server, "/v1/chat/completions", json={**CHAT, **options}), 400)
    streamed = post(server, "/v1/chat/completions", json={**CHAT, **options, "stream": True})
    assert_error(streamed, 400)


def test_a_prompt_longer_than_the_context_is_a_400(server: LiveServer) -> None:
    body = {"model": "tiny", "prompt": list(range(5000)), "max_tokens": 2}
    err = assert_error(post(server, "/v1/completions", json=body), 400)
    assert err["code"] in ("context_length_exceeded", "invalid_value")


def test_bad_embedding_inputs_are_a_400(server: LiveServer) -> None:
    for body in (
        {"model": "tiny", "input": []},
        {"model": "tiny", "input": [[10**9]]},
        {"model": "tiny", "input": 5},
        {"model": "tiny", "input": "x", "encoding_format": "hex"},
        {"model": "tiny", "input": "x", "dimensions": 3},
    ):
        assert_error(post(server, "/v1/embeddings", json=body), 400)


def test_unknown_model_and_route_are_a_404(server: LiveServer) -> None:
    err = assert_error(
        post(server, "/v1/chat/completions", json={**CHAT, "model": "gpt-9"}), 404, "model"
    )
    assert err["code"] == "model_not_found" and "tiny" in err["message"]
    assert_error(post(server, "/v1/nothing", json={}), 404)
    assert_error(httpx.get(f"{server.url}/v1/chat/completions", timeout=TIMEOUT), 405)


def test_huge_bodies_are_a_413_declared_or_streamed(serve: Callable[..., LiveServer]) -> None:
    srv = serve(max_body_bytes=64 * 1024)
    big = json.dumps({**CHAT, "padding": "x" * 200_000}).encode()
    assert_error(post(srv, "/v1/chat/completions", content=big), 413)

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for i in range(0, len(big), 8192):
            yield big[i : i + 8192]

    assert_error(post(srv, "/v1/chat/completions", content=chunks()), 413)
    assert_still_serving(srv)


def test_api_key_is_required_everywhere_but_health(serve: Callable[..., LiveServer]) -> None:
    srv = serve(api_key="s3cret")
    err = assert_error(post(srv, "/v1/chat/completions", json=CHAT), 401)
    assert err["code"] == "invalid_api_key"
    bad = {"Authorization": "Bearer wrong"}
    assert_error(post(srv, "/v1/chat/completions", json=CHAT, headers=bad), 401)
    assert_error(httpx.get(f"{srv.url}/v1/models", headers=bad, timeout=TIMEOUT), 401)
    assert_error(httpx.get(f"{srv.url}/metrics", timeout=TIMEOUT), 401)
    assert httpx.get(f"{srv.url}/health", timeout=TIMEOUT).status_code == 200
    good = {"Authorization": "Bearer s3cret"}
    assert post(srv, "/v1/chat/completions", json=CHAT, headers=good).status_code == 200
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{srv.url}/v1", api_key="nope", max_retries=0).models.list()
    ok = openai.OpenAI(base_url=f"{srv.url}/v1", api_key="s3cret", max_retries=0)
    assert [m.id for m in ok.models.list()]


def _metric(srv: LiveServer, name: str, model: str) -> float:
    text = httpx.get(f"{srv.url}/metrics", timeout=TIMEOUT).text
    for line in text.splitlines():
        if line.startswith(f'{name}{{model="{model}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0  # a counter appears with its first increment


def _wait_for(cond: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# The tiny random model never ends a greedy reply on its own: with max_tokens -1 it writes
# until its 4096-token context is full, which holds a slot far longer than these tests need.
ENDLESS = {
    "model": "tiny",
    "messages": [{"role": "user", "content": "hi"}],
    "max_tokens": -1,
    "temperature": 0,
    "stream": True,
}


def _read_until(sock: socket.socket, marker: bytes) -> None:
    """Read until ``marker`` has arrived: the headers and the first event may come apart."""
    received = b""
    while marker not in received:
        piece = sock.recv(65536)
        assert piece, f"the server closed the connection before {marker!r}: {received!r}"
        received += piece


def _send_and_vanish(srv: LiveServer, stream: bool = True) -> None:
    """Send an endless request, read its first event (if streamed), then reset the connection."""
    body = json.dumps({**ENDLESS, "stream": stream}).encode()
    with socket.create_connection(("127.0.0.1", srv.port), timeout=TIMEOUT) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        if stream:
            _read_until(sock, b"data: ")
        else:
            _wait_for(lambda: _metric(srv, "bitnet_requests_active", "tiny") == 1, "generation")
        # Linger 0: close() sends a reset, the abrupt way a client dies.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")


def test_a_client_that_disconnects_mid_stream_frees_its_slot(
    serve: Callable[..., LiveServer],
) -> None:
    srv = serve(parallel=1, max_queue=0)
    for _ in range(3):  # with one slot, a leaked slot would make the next request a 503
        _send_and_vanish(srv)
        _wait_for(lambda: _metric(srv, "bitnet_requests_active", "tiny") == 0, "slot freed")
        assert post(srv, "/v1/chat/completions", json=CHAT).status_code == 200
    # Only the three short requests finished: the abandoned streams were stopped, not
    # run to the end of the context.
    assert _metric(srv, "bitnet_completion_tokens_total", "tiny") <= 3 * CHAT["max_tokens"]


def test_a_full_queue_is_a_503_and_the_server_recovers(serve: Callable[..., LiveServer]) -> None:
    srv = serve(parallel=1, max_queue=0)
    with httpx.stream(
        "POST", f"{srv.url}/v1/chat/completions", json=ENDLESS, timeout=TIMEOUT
    ) as held:
        assert held.status_code == 200
        lines = held.iter_lines()  # kept: dropping the iterator closes the connection
        assert next(lines).startswith("data: ")
        assert _metric(srv, "bitnet_requests_active", "tiny") == 1
        # Slots are per model: the other model still answers, this one is full.
        assert (
            post(srv, "/v1/chat/completions", json={**CHAT, "model": "bitnet"}).status_code == 200
        )
        err = assert_error(post(srv, "/v1/chat/completions", json=CHAT), 503)
        assert err["code"] == "queue_full"
    _wait_for(lambda: _metric(srv, "bitnet_requests_active", "tiny") == 0, "slot freed")
    assert_still_serving(srv)


def test_a_client_that_disconnects_while_waiting_for_a_whole_reply_stops_it(
    serve: Callable[..., LiveServer],
) -> None:
    srv = serve(parallel=1, max_queue=0)
    _send_and_vanish(srv, stream=False)
    _wait_for(lambda: _metric(srv, "bitnet_requests_active", "tiny") == 0, "slot freed")
    assert post(srv, "/v1/chat/completions", json=CHAT).status_code == 200
    assert _metric(srv, "bitnet_completion_tokens_total", "tiny") <= CHAT["max_tokens"]
