"""Chat templates from downloaded checkpoints: which one a render uses (select.py), rendering
as transformers does (render.py), in a Jinja sandbox with a size and time budget
(sandbox.py).

jinja2 is imported with the first render or template analysis, not with this package: a
process that only handles token ids never holds it (several MB of resident memory). The
names of render.py and sandbox.py are still importable from here; they load it then.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .limits import ChatTemplateError, TemplateLimits
from .select import (
    ChatTemplates,
    find_chat_template,
    normalise_chat_templates,
    select_chat_template,
    template_uses_tools,
)

if TYPE_CHECKING:
    from .render import render_chat
    from .sandbox import BoundedSandbox, bounded_filter, guard_iter, guard_size, render_bounded

_JINJA_NAMES = {
    "render_chat": ".render",
    "BoundedSandbox": ".sandbox",
    "bounded_filter": ".sandbox",
    "guard_iter": ".sandbox",
    "guard_size": ".sandbox",
    "render_bounded": ".sandbox",
}


def __getattr__(name: str) -> Any:
    module = _JINJA_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)


__all__ = [
    "BoundedSandbox",
    "ChatTemplateError",
    "ChatTemplates",
    "TemplateLimits",
    "bounded_filter",
    "find_chat_template",
    "guard_iter",
    "guard_size",
    "normalise_chat_templates",
    "render_bounded",
    "render_chat",
    "select_chat_template",
    "template_uses_tools",
]
