"""The package's import graph: no cycles among module-level imports, and the fixture writers
(``bitnet_backend.testing``) and the training recipe (``bitnet_backend.training``) stay out of
the runtime.

Built with ``ast`` over ``bitnet_backend/**/*.py``. Imports at module level (what runs when a
module is imported) and inside functions (deferred until called) are kept apart; imports under
``if TYPE_CHECKING:`` never run and are left out. A module always has its parent packages
imported before it, so an edge to an ancestor package is no cycle and is left out too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "bitnet_backend"
OUTSIDE_RUNTIME = ("bitnet_backend.testing", "bitnet_backend.training")


@dataclass
class Imports:
    module_level: set[str] = field(default_factory=set)
    in_functions: set[str] = field(default_factory=set)


def _module_files() -> dict[str, Path]:
    files: dict[str, Path] = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = ("bitnet_backend", *path.relative_to(PACKAGE_DIR).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        files[".".join(parts)] = path
    return files


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is a module of the package."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _targets(
    node: ast.Import | ast.ImportFrom, module: str, is_package: bool, modules: dict[str, Path]
) -> Iterator[str]:
    if isinstance(node, ast.Import):
        candidates = [alias.name for alias in node.names]
    else:
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            prefix = ".".join([*base, *([node.module] if node.module else [])])
        else:
            prefix = node.module or ""
        # ``from pkg import name`` imports the submodule pkg.name when there is one.
        candidates = [f"{prefix}.{alias.name}" for alias in node.names]
    for candidate in candidates:
        target = _known(candidate, modules)
        if target is not None and target != module and not module.startswith(target + "."):
            yield target


def _is_type_checking(test: ast.expr) -> bool:
    return "TYPE_CHECKING" in ast.unparse(test)


def _collect(
    node: ast.AST,
    in_function: bool,
    found: Imports,
    module: str,
    is_package: bool,
    modules: dict[str, Path],
) -> None:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            bucket = found.in_functions if in_function else found.module_level
            bucket.update(_targets(child, module, is_package, modules))
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for branch in child.orelse:
                _collect(branch, in_function, found, module, is_package, modules)
        else:
            nested = in_function or isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
            )
            _collect(child, nested, found, module, is_package, modules)


def import_graph() -> dict[str, Imports]:
    """Every module of the package -> the package modules it imports."""
    modules = _module_files()
    graph: dict[str, Imports] = {}
    for module, path in modules.items():
        found = Imports()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        _collect(tree, False, found, module, path.name == "__init__.py", modules)
        graph[module] = found
    return graph


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            advanced = False
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(edges.get(succ, ())))))
                    advanced = True
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, Imports]:
    return import_graph()


def _outside_runtime(module: str) -> bool:
    return any(module == top or module.startswith(top + ".") for top in OUTSIDE_RUNTIME)


def test_the_graph_sees_the_package(graph: dict[str, Imports]) -> None:
    assert "bitnet_backend.model" in graph
    assert "bitnet_backend.errors" in graph["bitnet_backend.model"].module_level
    # A deferred import is counted, but apart from the module-level ones.
    assert "bitnet_backend.backends.cpu" in graph["bitnet_backend.convert"].in_functions
    assert "bitnet_backend.backends.cpu" not in graph["bitnet_backend.convert"].module_level


def test_cycle_finder_finds_a_cycle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(edges) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_cycles_among_module_level_imports(graph: dict[str, Imports]) -> None:
    assert cycles({m: i.module_level for m, i in graph.items()}) == []


@pytest.mark.parametrize(
    "pair", [("backends.cpu", "convert"), ("checkpoints.hf", "checkpoints.ternary")]
)
def test_former_cycles_stay_broken_even_through_deferred_imports(
    graph: dict[str, Imports], pair: tuple[str, str]
) -> None:
    first, second = (f"bitnet_backend.{name}" for name in pair)
    edges = {m: i.module_level | i.in_functions for m, i in graph.items()}
    assert not any(first in c and second in c for c in cycles(edges))


def test_runtime_never_imports_fixture_writers_or_training(graph: dict[str, Imports]) -> None:
    offenders = [
        f"{module} -> {target}"
        for module, imports in graph.items()
        if not _outside_runtime(module)
        for target in imports.module_level | imports.in_functions
        if _outside_runtime(target)
    ]
    assert offenders == []
