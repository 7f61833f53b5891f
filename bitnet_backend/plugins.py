"""Backend plugins: pluggy hooks discovered through the ``bitnet_backend`` entry-point group.

A plugin is a module named by an entry point of group ``bitnet_backend``; it implements the
``bitnet_backend_register(registry)`` hook and calls ``registry.add(backend)`` for each backend
it provides::

    # pyproject.toml of a third-party package
    [project.entry-points.bitnet_backend]
    mygpu = "mygpu_bitnet.plugin"

    # mygpu_bitnet/plugin.py
    from bitnet_backend.plugins import hookimpl

    @hookimpl
    def bitnet_backend_register(registry):
        registry.add(MyGpuBackend())

A plugin that fails to import, fails validation or raises from its hook is recorded with its
error (``bitnet plugins`` shows it) and never stops the other plugins from loading. Discovery
runs once per process; ``refresh()`` runs it again (after installing a package at run time).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import threading
from dataclasses import dataclass, field
from typing import Any

import pluggy

from .backend import Backend
from .errors import BackendNotFoundError, InvalidParameterError

PROJECT = "bitnet_backend"
ENTRY_POINT_GROUP = "bitnet_backend"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class BackendHookSpec:
    """The hooks a backend plugin may implement."""

    @hookspec
    def bitnet_backend_register(self, registry: BackendRegistry) -> None:
        """Register backends by calling ``registry.add(backend)``."""


class BackendRegistry:
    """Collects the backends one plugin registers (handed to ``bitnet_backend_register``)."""

    def __init__(self, plugin: str) -> None:
        self.plugin = plugin
        self.backends: list[Backend] = []

    def add(self, backend: Backend) -> None:
        """Register ``backend`` (an object implementing the Backend protocol)."""
        name = getattr(backend, "name", None)
        if not isinstance(name, str) or not name or name == "auto":
            raise InvalidParameterError(f"backend name must be a non-empty string, got {name!r}")
        priority = getattr(backend, "priority", None)
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise InvalidParameterError(f"backend {name!r}: priority must be an int")
        for method in ("available", "load"):
            if not callable(getattr(backend, method, None)):
                raise InvalidParameterError(f"backend {name!r} has no {method}() method")
        self.backends.append(backend)


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be used, and why."""

    name: str
    error: str


@dataclass(frozen=True)
class BackendInfo:
    """A discovered backend and whether it can run here."""

    name: str
    priority: int
    description: str
    available: bool
    reason: str
    plugin: str
    backend: Backend = field(repr=False, compare=False)


@dataclass
class Discovery:
    """What one discovery pass found."""

    # backend name -> (backend, name of the plugin that registered it)
    backends: dict[str, tuple[Backend, str]] = field(default_factory=dict)
    failures: list[PluginFailure] = field(default_factory=list)
    plugins: list[str] = field(default_factory=list)


_lock = threading.Lock()
_discovery: Discovery | None = None
_extra_plugins: list[tuple[str, object]] = []


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _discover() -> Discovery:
    found = Discovery()
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(BackendHookSpec)
    candidates: list[tuple[str, Any]] = []
    try:
        eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    except Exception as exc:  # broken metadata on sys.path must not break loading
        found.failures.append(PluginFailure("<entry points>", _error_text(exc)))
        eps = importlib.metadata.EntryPoints(())
    seen: set[str] = set()
    for ep in eps:
        if ep.name in seen:  # the same distribution visible twice on sys.path
            continue
        seen.add(ep.name)
        try:
            candidates.append((ep.name, ep.load()))
        except BaseException as exc:
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            found.failures.append(PluginFailure(ep.name, _error_text(exc)))
    candidates.extend(_extra_plugins)
    for name, plugin in candidates:
        try:
            pm.register(plugin, name=name)
        except Exception as exc:
            found.failures.append(PluginFailure(name, _error_text(exc)))
            continue
        found.plugins.append(name)
    for name in found.plugins:
        plugin = pm.get_plugin(name)
        others = [p for n, p in pm.list_name_plugin() if n != name]
        caller = pm.subset_hook_caller("bitnet_backend_register", remove_plugins=others)
        registry = BackendRegistry(name)
        try:
            caller(registry=registry)
        except Exception as exc:
            # A hook that raises contributes nothing, not even what it added before failing.
            found.failures.append(PluginFailure(name, _error_text(exc)))
            continue
        if not registry.backends and plugin is not None:
            found.failures.append(PluginFailure(name, "the plugin registered no backend"))
        for backend in registry.backends:
            if backend.name in found.backends:
                owner = found.backends[backend.name][1]
                found.failures.append(
                    PluginFailure(
                        name, f"backend name {backend.name!r} is already registered by {owner!r}"
                    )
                )
                continue
            found.backends[backend.name] = (backend, name)
    return found


def discover(refresh: bool = False) -> Discovery:
    """The plugins and backends of this process (cached; ``refresh`` scans again)."""
    global _discovery
    with _lock:
        if _discovery is None or refresh:
            if refresh:
                importlib.invalidate_caches()
            _discovery = _discover()
        return _discovery


def refresh() -> Discovery:
    """Scan the entry points again (e.g. after installing a plugin package at run time)."""
    return discover(refresh=True)


def register_plugin(plugin: object, name: str | None = None) -> None:
    """Register a plugin object (module or instance with hookimpls) without an entry point."""
    plugin_name = name or getattr(plugin, "__name__", None) or repr(plugin)
    with _lock:
        _extra_plugins.append((plugin_name, plugin))
    discover(refresh=True)


def unregister_plugin(name: str) -> None:
    """Remove a plugin added with ``register_plugin``."""
    with _lock:
        _extra_plugins[:] = [(n, p) for n, p in _extra_plugins if n != name]
    discover(refresh=True)


def _availability(backend: Backend) -> tuple[bool, str]:
    try:
        ok, reason = backend.available()
    except Exception as exc:  # a broken check means the backend cannot be used
        return False, f"available() failed: {_error_text(exc)}"
    return bool(ok), str(reason or "")


def list_backends(refresh: bool = False) -> list[BackendInfo]:
    """Every discovered backend with its availability, highest priority first."""
    found = discover(refresh)
    out = []
    for name, (backend, plugin) in found.backends.items():
        ok, reason = _availability(backend)
        out.append(
            BackendInfo(
                name=name,
                priority=backend.priority,
                description=str(getattr(backend, "description", "")),
                available=ok,
                reason=reason,
                plugin=plugin,
                backend=backend,
            )
        )
    out.sort(key=lambda b: (-b.priority, b.name))
    return out


def plugin_failures(refresh: bool = False) -> list[PluginFailure]:
    """Plugins that failed to import or register, with their errors."""
    return list(discover(refresh).failures)


def get_backend(name: str = "auto") -> Backend:
    """The backend called ``name``, or with ``"auto"`` the best available one.

    Raises BackendNotFoundError when the name is unknown (listing the known ones) or the
    backend cannot run here (with its reason).
    """
    if not isinstance(name, str) or not name:
        raise InvalidParameterError(f"backend must be a backend name or 'auto', got {name!r}")
    infos = list_backends()
    if name == "auto":
        for info in infos:
            if info.available:
                return info.backend
        lines = [f"{i.name}: {i.reason}" for i in infos]
        lines += [f"{f.name} (failed to load): {f.error}" for f in plugin_failures()]
        detail = "; ".join(lines) if lines else "no backend plugin is installed"
        raise BackendNotFoundError(f"no available backend ({detail})")
    for info in infos:
        if info.name == name:
            if not info.available:
                raise BackendNotFoundError(f"backend {name!r} is not available: {info.reason}")
            return info.backend
    known = ", ".join(i.name for i in infos) or "none"
    msg = f"unknown backend {name!r} (installed: {known})"
    failed = [f for f in plugin_failures() if f.name == name]
    if failed:
        msg += f"; plugin {name!r} failed to load: {failed[0].error}"
    raise BackendNotFoundError(msg)
