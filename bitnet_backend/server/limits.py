"""Bounded request bodies: a pure ASGI middleware, so it also guards the Ray Serve ingress.

A declared Content-Length over the limit is refused before any byte is read; a body that
arrives chunked is counted as it streams in and refused as soon as it passes the limit.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import ApiError, error_response


class BodyTooLarge(ApiError):
    """Raised from ``receive``: the app's ApiError handler answers it with a 413."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(
            413, f"request body larger than {max_bytes} bytes", code="request_too_large"
        )


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.max_bytes:
                    await error_response(BodyTooLarge(self.max_bytes))(scope, receive, send)
                    return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except BodyTooLarge:
            if not started:
                await error_response(BodyTooLarge(self.max_bytes))(scope, receive, send)
