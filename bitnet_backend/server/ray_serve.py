"""Ray Serve deployment: N replicas of the same app, each with its own engine.

    serve run bitnet_backend.server.ray_serve:build_app models=bitnet replicas=2 num_cpus=4

or ``bitnet serve --ray --replicas 2 --num-cpus 4``, or a ``serve deploy`` config whose
``import_path`` is ``bitnet_backend.server.ray_serve:build_app`` with the same ``args``.

Each replica runs the whole FastAPI app (same routes, same streaming) as its ingress. Its
engine threads are set from the replica's ``num_cpus``, not from Ray's OMP_NUM_THREADS or
the machine's CPU count, so replicas sharing a node do not oversubscribe it. Batching
happens inside each replica's engine, never in ``@serve.batch`` (which forms a fixed batch
per wait window and cannot admit a request into a running decode); Serve only routes,
queues and scales: ``max_ongoing_requests`` is what one replica admits (its generating
slots plus its queue), and autoscaling aims at ``target_ongoing_requests`` = 3/4 of its
slots, so a new replica starts before requests wait in the engine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from ray import serve
from ray.serve import Application
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import InvalidParameterError
from .settings import DEFAULT_MODEL_NAME, ServerSettings, parse_model_spec


@serve.ingress()
class BitnetServer:
    """One replica: loads the models at start, then serves the app of ``create_app``."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings

    def __serve_build_asgi_app__(self) -> Any:
        from .app import create_app

        app = create_app(self.settings)
        replica = serve.get_replica_context().replica_id.unique_id
        app.add_middleware(ReplicaHeader, replica=replica)
        return app


class ReplicaHeader:
    """Names the replica that served a response (``X-Bitnet-Replica``): with several
    replicas behind one proxy, that is what ties a slow or failed request to its replica."""

    def __init__(self, app: ASGIApp, replica: str) -> None:
        self.app = app
        self.header = (b"x-bitnet-replica", replica.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), self.header]}
            await send(message)

        await self.app(scope, receive, tagged if scope["type"] == "http" else send)


def deployment_options(
    settings: ServerSettings,
    replicas: int | None,
    num_cpus: float,
    autoscaling: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Serve options of the deployment (see the module docstring for the reasoning)."""
    options: dict[str, Any] = {
        "ray_actor_options": {"num_cpus": num_cpus},
        "max_ongoing_requests": settings.slots + settings.max_queue,
        "health_check_period_s": 2,
    }
    if autoscaling:
        options["autoscaling_config"] = {
            "target_ongoing_requests": max(1.0, 0.75 * settings.slots),
            **autoscaling,
        }
    else:
        options["num_replicas"] = replicas or 1
    return options


def _models(value: Any) -> dict[str, str | None]:
    if value is None:
        return {DEFAULT_MODEL_NAME: None}
    if isinstance(value, Mapping):
        return {str(k): (None if v is None else str(v)) for k, v in value.items()}
    specs = [value] if isinstance(value, str) else value
    if not isinstance(specs, Sequence):
        raise InvalidParameterError(f"models must be a list or a mapping, got {value!r}")
    models: dict[str, str | None] = {}
    for spec in specs:
        name, source = parse_model_spec(str(spec))
        models[name] = None if source == DEFAULT_MODEL_NAME else source
    return models


def build_app(args: Mapping[str, Any] | None = None) -> Application:
    """The Serve application for ``serve.run`` / ``serve run`` / ``serve deploy``.

    ``args`` (all optional): ``models`` (list of ``[NAME=]SOURCE``, or ``{name: source}``;
    ``bitnet`` alone is the bundled model), ``replicas`` (default 1), ``num_cpus`` per replica
    (default 1; also the engine's thread count), ``min_replicas``/``max_replicas`` (turn on
    autoscaling), ``api_key``, ``n_ctx``, ``parallel``, ``max_queue``, ``backend``.
    """
    a = dict(args or {})
    num_cpus = float(a.pop("num_cpus", 1))
    if num_cpus <= 0:
        raise InvalidParameterError(f"num_cpus must be > 0, got {num_cpus}")
    replicas = int(a.pop("replicas", 1))
    autoscaling: dict[str, Any] = {
        k: int(a.pop(k)) for k in ("min_replicas", "max_replicas") if k in a
    }
    # `serve run ... key=value` hands every value over as a string.
    options: dict[str, Any] = {
        k: int(a.pop(k)) for k in ("n_ctx", "parallel", "max_queue") if k in a
    }
    options.update({k: str(a.pop(k)) for k in ("api_key", "backend") if k in a})
    settings = ServerSettings(
        models=_models(a.pop("models", None)), n_threads=max(1, int(num_cpus)), **options
    )
    if a:
        raise InvalidParameterError(f"unknown build_app argument(s): {', '.join(sorted(a))}")
    return settings_app(settings, replicas=replicas, num_cpus=num_cpus, autoscaling=autoscaling)


def settings_app(
    settings: ServerSettings,
    replicas: int = 1,
    num_cpus: float | None = None,
    autoscaling: Mapping[str, Any] | None = None,
) -> Application:
    """The Serve application of ``settings`` (``bitnet serve --ray``)."""
    cpus = float(num_cpus if num_cpus is not None else settings.n_threads or 1)
    settings = dataclasses.replace(settings, n_threads=max(1, int(cpus)))
    deployment = serve.deployment(BitnetServer).options(  # type: ignore[attr-defined]
        **deployment_options(settings, replicas, cpus, autoscaling)
    )
    return deployment.bind(settings)


def run(
    settings: ServerSettings,
    replicas: int = 1,
    num_cpus: float | None = None,
    address: str | None = None,
) -> int:
    """Start (or join) Ray, serve on ``settings.host:port`` until interrupted."""
    import ray

    ray.init(address=address, include_dashboard=False)
    try:
        serve.start(http_options={"host": settings.host, "port": settings.port})
        serve.run(
            settings_app(settings, replicas, num_cpus),
            name="bitnet",
            route_prefix="/",
            blocking=True,
        )
    finally:
        serve.shutdown()
        ray.shutdown()
    return 0
