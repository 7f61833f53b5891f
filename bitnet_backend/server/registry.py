"""The served models by name, each with its admission control (generating + waiting)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..model import Model, load
from .errors import ApiError
from .settings import DEFAULT_PARALLEL, ServerSettings


class Admission:
    """At most ``parallel`` requests generate at once and ``max_queue`` more wait their turn.

    A request beyond both gets a 503 at once: a flood then costs a counter check, not a
    session and a KV cache per waiting client.
    """

    def __init__(self, parallel: int, max_queue: int) -> None:
        self.parallel = parallel
        self.max_queue = max_queue
        self.active = 0
        self.queued = 0
        self._sem: asyncio.Semaphore | None = None

    async def acquire(self) -> None:
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.parallel)  # bound to the serving event loop
        if self._sem.locked() and self.queued >= self.max_queue:
            raise ApiError(503, "the server is at capacity; retry later", code="queue_full")
        self.queued += 1
        try:
            await self._sem.acquire()
        finally:
            self.queued -= 1
        self.active += 1

    def release(self) -> None:
        assert self._sem is not None
        self.active -= 1
        self._sem.release()


@dataclass
class Served:
    """One model under its served name."""

    name: str
    model: Model
    admission: Admission
    created: int = field(default_factory=lambda: int(time.time()))
    owned: bool = True  # loaded by the server, so closed by it


class ModelRegistry:
    """Looks models up by the name a request gives; the first one is the default."""

    def __init__(self, served: Mapping[str, Served]) -> None:
        self.served = dict(served)

    @classmethod
    def load(
        cls, settings: ServerSettings, models: Mapping[str, Model] | None = None
    ) -> ModelRegistry:
        """Load ``settings.models`` (or wrap ``models``, which the caller keeps owning)."""
        served: dict[str, Served] = {}
        try:
            if models is not None:
                for name, model in models.items():
                    served[name] = Served(name, model, _admission(settings, model), owned=False)
            else:
                for name, source in settings.models.items():
                    model = load(
                        source,
                        backend=settings.backend,
                        n_threads=settings.n_threads,
                        n_ctx=settings.n_ctx,
                        **dict(settings.load_options),
                    )
                    served[name] = Served(name, model, _admission(settings, model))
        except BaseException:
            for s in served.values():
                if s.owned:
                    s.model.close()
            raise
        if not served:
            raise ValueError("no models to serve")
        return cls(served)

    def get(self, name: str | None) -> Served:
        """The model a request names; a request without ``model`` gets the first one."""
        if name is None:
            return next(iter(self.served.values()))
        try:
            return self.served[name]
        except KeyError:
            raise ApiError(
                404,
                f"the model {name!r} does not exist; this server serves: {', '.join(self.served)}",
                param="model",
                code="model_not_found",
            ) from None

    def close(self) -> None:
        for s in self.served.values():
            if s.owned:
                s.model.close()


def _admission(settings: ServerSettings, model: Model) -> Admission:
    return Admission(
        settings.parallel or model_batch_size(model) or DEFAULT_PARALLEL, settings.max_queue
    )


def model_batch_size(model: Model) -> int | None:
    """The most sequences the model's engine batches in one step, when it reports it."""
    scheduler = model.info.get("scheduler")
    size = scheduler.get("max_batch") if isinstance(scheduler, dict) else None
    return size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else None
