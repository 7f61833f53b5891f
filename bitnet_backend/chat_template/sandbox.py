"""A Jinja sandbox with a size and time budget, for chat templates from downloaded checkpoints.

jinja2's sandbox stops templates from reaching Python internals but not from spending
unbounded CPU or memory: ``'a' * 10**9``, ``2 ** 2 ** 40``, ``'a'|center(10**9)`` or nested
``range(100000)`` loops. ``BoundedSandbox`` checks, before the work is done:

- every string / list a template builds (``*``, ``+``, ``%``, ``~``, str methods and
  filters that pad, repeat, join or format) against ``TemplateLimits.max_chars``;
- the sizes given to padding methods and filters (widths, counts, format widths) against
  the same bound, and the size of integer powers;
- the render deadline (``max_seconds``) at every loop iteration, call and output chunk.

The budget of the render in progress lives in a context variable, so one compiled template
can be rendered from several threads at once. No signals or helper threads are involved.
"""

from __future__ import annotations

import contextvars
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from .limits import ChatTemplateError, TemplateLimits

# Integer powers above this many bits are refused (str() of such numbers fails anyway).
_MAX_INT_BITS = 1 << 16
_NUMBERS = re.compile(r"\d+")
_PERCENT_FIELD = re.compile(r"%(?:\([^)]*\))?([#0\- +]*(?:\d+|\*)?(?:\.(?:\d+|\*)?)?)[a-zA-Z%]")
_BRACE_SPEC = re.compile(r"\{[^{}:]*:([^{}]*)\}")
_NESTED_SPEC = re.compile(r"\{[^{}]*:[^{}]*\{")


class _Budget:
    __slots__ = ("deadline", "limits")

    def __init__(self, limits: TemplateLimits) -> None:
        self.limits = limits
        self.deadline = time.monotonic() + limits.max_seconds

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise ChatTemplateError(
                f"chat template ran longer than {self.limits.max_seconds} s (TemplateLimits)"
            )

    def size(self, n: int, what: str) -> None:
        if n > self.limits.max_chars:
            raise ChatTemplateError(
                f"chat template {what} would be {n} items long, more than max_chars "
                f"{self.limits.max_chars} (TemplateLimits)"
            )


_current: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar(
    "chat_template_budget", default=None
)


# Renders outside render_bounded (a template used directly) get the size bounds only.
_UNTIMED = _Budget(TemplateLimits(max_seconds=math.inf))


def _budget() -> _Budget:
    return _current.get() or _UNTIMED


def render_bounded(template: jinja2.Template, limits: TemplateLimits, **variables: Any) -> str:
    """Render ``template`` within ``limits``; ChatTemplateError when it would exceed them."""
    budget = _Budget(limits)
    token = _current.set(budget)
    try:
        parts: list[str] = []
        total = 0
        for chunk in template.generate(**variables):
            total += len(chunk)
            budget.size(total, "output")
            budget.tick()
            parts.append(chunk)
        return "".join(parts)
    finally:
        _current.reset(token)


def guard_iter(iterable: Iterable[Any]) -> Iterator[Any]:
    """Every template loop iterates through this: the deadline is checked per item."""
    budget = _budget()
    for item in iterable:
        budget.tick()
        yield item


def guard_size(value: Any) -> Any:
    """The result of a ``~`` concatenation or a filter, checked against max_chars."""
    if isinstance(value, (str, list, tuple, dict)):
        _budget().size(len(value), "value")
    return value


def _length(value: Any) -> int:
    return len(value) if isinstance(value, (str, list, tuple, dict)) else 0


def _check_int_args(args: Iterable[Any], budget: _Budget) -> None:
    for a in args:
        if isinstance(a, int) and not isinstance(a, bool):
            budget.size(abs(a), "argument")


def _format_widths(fmt: str, budget: _Budget) -> None:
    # Widths and precisions of the fields in a format string ('%0100000000d',
    # '{:>1000000000}'); other digits in the text are not sizes.
    specs = [m.group(1) for m in _PERCENT_FIELD.finditer(fmt)]
    specs += [m.group(1) for m in _BRACE_SPEC.finditer(fmt)]
    for spec in specs:
        for number in _NUMBERS.findall(spec):
            # Digit count first: int() of a huge digit string is itself refused by Python.
            size = 10 ** (len(number) - 1) if len(number) > 7 else int(number)
            budget.size(size, "formatted field")


def _check_str_method(obj: Any, args: tuple[Any, ...], budget: _Budget) -> None:
    # The sandbox hands str.format out wrapped; __wrapped__ is the bound method.
    owner = getattr(getattr(obj, "__wrapped__", obj), "__self__", None)
    if not isinstance(owner, str):
        return
    name = getattr(obj, "__name__", "")
    n = len(owner)
    if name in _PADDING_METHODS:
        _check_int_args(args, budget)
    if name == "join" and args and isinstance(args[0], (list, tuple)):
        budget.size(sum(_length(x) for x in args[0]) + n * len(args[0]), "joined string")
    elif name == "replace" and len(args) >= 2 and isinstance(args[0], str):
        hits = n + 1 if args[0] == "" else owner.count(args[0])
        budget.size(n + hits * _length(args[1]), "replaced string")
    elif name == "expandtabs" and args and isinstance(args[0], int):
        budget.size(n * max(1, args[0]), "expanded string")
    elif name in ("format", "format_map"):
        _format_widths(owner, budget)
        if _NESTED_SPEC.search(owner):
            _check_int_args(args, budget)  # a width given as an argument: {:>{}}
    elif name == "translate" and args and isinstance(args[0], dict):
        longest = max((_length(v) for v in args[0].values()), default=1)
        budget.size(n * max(1, longest), "translated string")


_PASSED_ARGS = (jinja2.runtime.Context, jinja2.Environment, nodes.EvalContext)
# Filters and str methods whose integer arguments are sizes of what they build.
_SIZING_FILTERS = frozenset({"center", "indent", "wordwrap", "slice", "batch", "tojson"})
_PADDING_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})


def bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` as a template filter whose arguments and result are checked."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        budget.tick()
        values = [a for a in args if not isinstance(a, _PASSED_ARGS)]
        if name in _SIZING_FILTERS:
            # The first value is the filtered one; the rest (and keywords) are its arguments.
            _check_int_args([*values[1:], *kwargs.values()], budget)
        if name == "join" and values and isinstance(values[0], (list, tuple)):
            sep = _length(values[1]) if len(values) > 1 else 0
            budget.size(sum(_length(x) for x in values[0]) + sep * len(values[0]), "joined string")
        elif name == "format" and values and isinstance(values[0], str):
            _format_widths(values[0], budget)
        elif name == "replace" and len(values) >= 3 and isinstance(values[0], str):
            old = str(values[1])
            hits = len(values[0]) + 1 if old == "" else values[0].count(old)
            budget.size(len(values[0]) + hits * _length(values[2]), "replaced string")
        return guard_size(func(*args, **kwargs))

    # jinja2 passes the context / environment according to markers on the function.
    for marker in ("jinja_pass_arg",):
        if hasattr(func, marker):
            setattr(wrapper, marker, getattr(func, marker))
    return wrapper


class _GuardLoops(NodeTransformer):
    """Routes every loop's iterable through guard_iter and every ``~`` through guard_size.

    ImportedName compiles to a module import, which a template cannot shadow.
    """

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)  # rewrites the children in place
        node.iter = nodes.Call(
            nodes.ImportedName(f"{__name__}.guard_iter"), [node.iter], [], None, None
        )
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Call(nodes.ImportedName(f"{__name__}.guard_size"), [node], [], None, None)


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """ImmutableSandboxedEnvironment whose renders stay within a TemplateLimits budget."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.filters = {name: bounded_filter(name, f) for name, f in self.filters.items()}

    def _generate(self, source: nodes.Template, *args: Any, **kwargs: Any) -> str:
        return super()._generate(_GuardLoops().visit(source), *args, **kwargs)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        budget = _budget()
        budget.tick()
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if _length(seq) and isinstance(n, int) and not isinstance(n, bool):
                    budget.size(_length(seq) * max(0, n), "repeated value")
        elif operator == "+":
            if isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
                budget.size(len(left) + len(right), "concatenated value")
        elif operator == "**":
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and abs(left) > 1
                and right > 0
                and right * math.log2(abs(left)) > _MAX_INT_BITS
            ):
                raise ChatTemplateError(
                    f"chat template computes an integer of more than {_MAX_INT_BITS} bits"
                )
        elif operator == "%" and isinstance(left, str):
            _format_widths(left, budget)
            if "*" in "".join(m.group(1) for m in _PERCENT_FIELD.finditer(left)):
                _check_int_args(right if isinstance(right, tuple) else (right,), budget)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        budget.tick()
        _check_str_method(__obj, (*args, *kwargs.values()), budget)
        return guard_size(super().call(__context, __obj, *args, **kwargs))
