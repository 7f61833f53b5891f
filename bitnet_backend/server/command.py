"""The ``bitnet serve`` subcommand: its arguments and its body.

Only argparse is imported here; FastAPI, uvicorn and Ray are imported when the command runs,
so the rest of the ``bitnet`` command works without the server extra.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from typing import Any

from ..errors import BitnetError
from . import INSTALL_HINT
from .settings import API_KEY_ENV, DEFAULT_MODEL_NAME, ServerSettings, parse_model_spec


def add_serve_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``serve`` on the ``bitnet`` command's subparsers."""
    p: argparse.ArgumentParser = sub.add_parser(
        "serve",
        help="OpenAI-compatible HTTP server (needs the server extra)",
        description="Serve models over an OpenAI-compatible HTTP API (chat and text "
        "completions, embeddings, models, health, Prometheus metrics).",
    )
    p.add_argument(
        "--model",
        "-m",
        action="append",
        metavar="[NAME=]SOURCE",
        help="model to serve, as checkpoint directory or hub id, optionally under "
        "NAME (may be repeated; default: the bundled model as "
        f"'{DEFAULT_MODEL_NAME}')",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument(
        "--api-key",
        metavar="KEY",
        help=f"require 'Authorization: Bearer KEY' (default: ${API_KEY_ENV})",
    )
    p.add_argument("--backend", default="auto", help="backend name (default: auto)")
    p.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="engine threads per model (default: the physical cores)",
    )
    p.add_argument(
        "--ctx", type=int, metavar="N", help="context window in tokens (default: the model's)"
    )
    p.add_argument(
        "--parallel",
        type=int,
        metavar="N",
        help="requests generating at once per model (default: the model's batch size, or 8)",
    )
    p.add_argument(
        "--max-queue",
        type=int,
        default=64,
        metavar="N",
        help="requests waiting per model before new ones get 503 (default: 64)",
    )
    p.add_argument(
        "--max-body-bytes",
        type=int,
        default=8 * 1024 * 1024,
        metavar="N",
        help="largest request body (default: 8 MiB)",
    )
    p.add_argument(
        "--log-level",
        default="info",
        choices=("critical", "error", "warning", "info", "debug"),
        help="server log level (default: info)",
    )
    ray = p.add_argument_group("Ray Serve (needs the ray extra)")
    ray.add_argument(
        "--ray",
        action="store_true",
        help="serve through Ray Serve: replicas, autoscaling, fault recovery",
    )
    ray.add_argument("--replicas", type=int, default=1, metavar="N", help="replicas (default: 1)")
    ray.add_argument(
        "--num-cpus",
        type=float,
        metavar="C",
        help="CPUs per replica; its engine runs that many threads (default: --threads or 1)",
    )
    ray.add_argument(
        "--address", metavar="ADDR", help="Ray cluster to join (default: start a local one)"
    )
    return p


def settings_from_args(args: argparse.Namespace) -> ServerSettings:
    models = dict(parse_model_spec(m) for m in args.model or ())
    if len(models) != len(args.model or ()):
        raise BitnetError("--model names must be unique")
    return ServerSettings(
        models=models or {DEFAULT_MODEL_NAME: None},
        host=args.host,
        port=args.port,
        api_key=args.api_key or os.environ.get(API_KEY_ENV) or None,
        backend=args.backend,
        n_threads=args.threads,
        n_ctx=args.ctx,
        parallel=args.parallel,
        max_queue=args.max_queue,
        max_body_bytes=args.max_body_bytes,
    )


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError:
        raise BitnetError(INSTALL_HINT) from None
    settings = settings_from_args(args)
    if settings.api_key is None and not _is_loopback(settings.host):
        print(
            f"bitnet: warning: serving on {settings.host} without --api-key: anyone who can "
            "reach this address can use the models",
            file=sys.stderr,
        )
    if args.ray:
        from .ray_serve import run

        return run(settings, replicas=args.replicas, num_cpus=args.num_cpus, address=args.address)
    from .app import create_app

    app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=args.log_level)
    return 0
