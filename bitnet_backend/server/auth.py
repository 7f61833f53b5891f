"""Bearer-token check: with an API key set, every endpoint but /health requires it."""

from __future__ import annotations

import hmac

from fastapi import Request

from .errors import ApiError


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def require_api_key(request: Request, api_key: str | None) -> None:
    """Raise 401 unless the request carries ``api_key`` (no-op when no key is configured)."""
    if api_key is None:
        return
    token = bearer_token(request)
    if token is None:
        raise ApiError(
            401, "missing API key: send 'Authorization: Bearer <key>'", code="invalid_api_key"
        )
    # Constant-time comparison: response timing must not reveal how much of a guess is right.
    if not hmac.compare_digest(token.encode(), api_key.encode()):
        raise ApiError(401, "incorrect API key", code="invalid_api_key")
