"""Backend plugins: entry-point discovery, third-party packages, failures that are not fatal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import bitnet_backend as bb
from bitnet_backend import plugins
from bitnet_backend.plugins import hookimpl

PLUGIN_MODULE = '''
import pluggy

from bitnet_backend.backends.reference import BACKEND as _REFERENCE

hookimpl = pluggy.HookimplMarker("bitnet_backend")
LOADED = []


class ThirdPartyBackend:
    """A backend from another package: it runs the reference engine and records each load."""

    name = "thirdparty"
    priority = -50
    description = "third-party test backend"

    def available(self):
        return True, ""

    def load(self, checkpoint, *, n_threads, **options):
        LOADED.append(str(checkpoint.path))
        return _REFERENCE.load(checkpoint, n_threads=n_threads, **options)


class GpuOnlyBackend:
    name = "needs-gpu"
    priority = 500
    description = "never available here"

    def available(self):
        return False, "no GPU found"

    def load(self, checkpoint, *, n_threads, **options):
        raise AssertionError("an unavailable backend must not be loaded")


@hookimpl
def bitnet_backend_register(registry):
    registry.add(ThirdPartyBackend())
    registry.add(GpuOnlyBackend())
'''

BROKEN_MODULE = 'raise ImportError("this plugin needs libfoo.so")\n'

RAISING_HOOK_MODULE = """
import pluggy

from bitnet_backend.backends.reference import BACKEND

hookimpl = pluggy.HookimplMarker("bitnet_backend")


class Partial:
    name = "half-registered"
    priority = 0
    description = ""
    available = BACKEND.available
    load = BACKEND.load


@hookimpl
def bitnet_backend_register(registry):
    registry.add(Partial())
    raise RuntimeError("registration exploded")
"""

ENTRY_POINTS = """
[bitnet_backend]
thirdparty = thirdparty_bitnet
broken = broken_bitnet_plugin
exploding = exploding_bitnet_plugin
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A sys.path entry holding an installed third-party plugin distribution."""
    root = tmp_path_factory.mktemp("site")
    (root / "thirdparty_bitnet").mkdir()
    (root / "thirdparty_bitnet" / "__init__.py").write_text(PLUGIN_MODULE)
    (root / "broken_bitnet_plugin.py").write_text(BROKEN_MODULE)
    (root / "exploding_bitnet_plugin.py").write_text(RAISING_HOOK_MODULE)
    dist = root / "thirdparty_bitnet-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-bitnet\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    return root


@pytest.fixture
def installed(site):
    sys.path.insert(0, str(site))
    plugins.refresh()
    try:
        yield site
    finally:
        sys.path.remove(str(site))
        for name in ("thirdparty_bitnet", "broken_bitnet_plugin", "exploding_bitnet_plugin"):
            sys.modules.pop(name, None)
        plugins.refresh()


def names(infos):
    return [i.name for i in infos]


def test_builtin_backends_are_discovered_through_entry_points():
    found = {i.name: i for i in bb.list_backends()}
    assert "reference" in found and found["reference"].available
    assert "cpu" in found
    assert found["reference"].plugin == "reference"


def test_backends_are_listed_highest_priority_first():
    prios = [i.priority for i in bb.list_backends()]
    assert prios == sorted(prios, reverse=True)


def test_third_party_plugin_is_discovered_after_refresh(installed):
    infos = {i.name: i for i in plugins.list_backends()}
    assert infos["thirdparty"].available
    assert infos["thirdparty"].plugin == "thirdparty"
    assert infos["needs-gpu"].available is False
    assert infos["needs-gpu"].reason == "no GPU found"


def test_load_uses_the_named_third_party_backend(installed, make_checkpoint):
    ckpt = make_checkpoint()
    with bb.load(ckpt, backend="thirdparty") as model:
        assert model.info["backend"] == "thirdparty"
        assert model.generate("Hello", max_tokens=3, temperature=0).usage["completion_tokens"] <= 3
    loaded = sys.modules["thirdparty_bitnet"].LOADED
    assert loaded == [str(ckpt)]


def test_plugin_that_fails_to_import_is_reported_not_fatal(installed):
    failures = {f.name: f.error for f in plugins.plugin_failures()}
    assert failures["broken"] == "ImportError: this plugin needs libfoo.so"
    assert "thirdparty" in names(plugins.list_backends())


def test_plugin_whose_hook_raises_registers_nothing(installed):
    failures = {f.name: f.error for f in plugins.plugin_failures()}
    assert failures["exploding"] == "RuntimeError: registration exploded"
    assert "half-registered" not in names(plugins.list_backends())


def test_unknown_backend_error_lists_the_installed_ones(installed):
    with pytest.raises(bb.BackendNotFoundError) as err:
        plugins.get_backend("nope")
    assert "thirdparty" in str(err.value) and "reference" in str(err.value)


def test_plugin_that_failed_is_named_when_requested(installed):
    with pytest.raises(bb.BackendNotFoundError, match="libfoo"):
        plugins.get_backend("broken")


def test_unavailable_backend_error_gives_its_reason(installed):
    with pytest.raises(bb.BackendNotFoundError, match="no GPU found"):
        plugins.get_backend("needs-gpu")


def test_auto_skips_unavailable_backends_of_higher_priority(installed):
    chosen = plugins.get_backend("auto")
    assert chosen.name != "needs-gpu"
    best = next(i for i in plugins.list_backends() if i.available)
    assert chosen is best.backend


class _Preferred:
    """A plugin object registered at run time without an entry point."""

    class Backend:
        name = "preferred"
        priority = 10_000
        description = "outranks the built-ins"

        def available(self):
            return True, ""

        def load(self, checkpoint, *, n_threads, **options):
            from bitnet_backend.backends.reference import BACKEND

            return BACKEND.load(checkpoint, n_threads=n_threads, **options)

    @hookimpl
    def bitnet_backend_register(self, registry):
        registry.add(self.Backend())


def test_auto_picks_the_highest_priority_available_backend(make_checkpoint):
    plugins.register_plugin(_Preferred(), name="preferred-plugin")
    try:
        assert plugins.get_backend("auto").name == "preferred"
        with bb.load(make_checkpoint(), backend="auto") as model:
            assert model.backend_name == "preferred"
    finally:
        plugins.unregister_plugin("preferred-plugin")
    assert plugins.get_backend("auto").name != "preferred"


class _Invalid:
    @hookimpl
    def bitnet_backend_register(self, registry):
        registry.add(object())


def test_object_that_is_not_a_backend_is_refused():
    plugins.register_plugin(_Invalid(), name="invalid-plugin")
    try:
        failures = {f.name: f.error for f in plugins.plugin_failures()}
        assert "backend name must be a non-empty string" in failures["invalid-plugin"]
    finally:
        plugins.unregister_plugin("invalid-plugin")


def test_duplicate_backend_name_is_reported():
    class Dup:
        @hookimpl
        def bitnet_backend_register(self, registry):
            from bitnet_backend.backends.reference import BACKEND

            registry.add(BACKEND)

    plugins.register_plugin(Dup(), name="dup-plugin")
    try:
        failures = {f.name: f.error for f in plugins.plugin_failures()}
        assert "'reference' is already registered" in failures["dup-plugin"]
        assert plugins.get_backend("reference").name == "reference"
    finally:
        plugins.unregister_plugin("dup-plugin")


def _cli(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(site), str(Path(bb.__file__).parent.parent), env.get("PYTHONPATH", "")]
    )
    return subprocess.run(
        [sys.executable, "-m", "bitnet_backend.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(bb.__file__).parent.parent,  # not a source tree without the extension
        timeout=300,
    )


def test_bitnet_plugins_lists_third_party_backends_and_failures(site):
    r = _cli(site, "plugins")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "thirdparty" in out and "third-party test backend" in out
    assert "needs-gpu" in out and "unavailable: no GPU found" in out
    assert "broken: ImportError: this plugin needs libfoo.so" in out
    assert "exploding: RuntimeError: registration exploded" in out


def test_bitnet_run_with_a_third_party_backend(site, make_checkpoint):
    r = _cli(
        site,
        "run",
        "Hello",
        "--model",
        str(make_checkpoint()),
        "--backend",
        "thirdparty",
        "--max-tokens",
        "3",
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith("\n")


def test_entry_point_plugin_module_exposes_backend_and_hook():
    from bitnet_backend.backends import reference

    assert reference.BACKEND.name == "reference"
    assert callable(reference.bitnet_backend_register)
