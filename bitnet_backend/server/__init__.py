"""An OpenAI-compatible HTTP server for bitnet-backend models (``bitnet serve``).

Needs the ``server`` extra (``pip install "bitnet-backend[server]"``); Ray Serve scale-out
needs the ``ray`` extra. ``import bitnet_backend`` never imports these: only the modules of
this package that serve HTTP do.

    from bitnet_backend.server import ServerSettings, create_app
    app = create_app(ServerSettings(models={"bitnet": None}))   # an ASGI app for uvicorn

One concern per module: ``settings`` (options), ``registry`` (loaded models, admission),
``schema`` (request bodies), ``translate`` (OpenAI <-> Model API), ``streaming`` (SSE),
``errors``, ``auth``, ``limits`` (body size), ``metrics`` (Prometheus), ``app`` (routes),
``ray_serve`` (Ray Serve deployment), ``command`` (the ``bitnet serve`` subcommand).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .settings import ServerSettings

if TYPE_CHECKING:
    from fastapi import FastAPI

INSTALL_HINT = 'the server needs its extra: pip install "bitnet-backend[server]"'

__all__ = ["INSTALL_HINT", "ServerSettings", "create_app"]


def create_app(settings: ServerSettings, **kwargs: Any) -> FastAPI:
    """The FastAPI app serving ``settings.models`` (see ``app.create_app``)."""
    from .app import create_app as _create_app

    return _create_app(settings, **kwargs)
