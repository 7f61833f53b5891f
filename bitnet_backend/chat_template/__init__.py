"""Chat templates from downloaded checkpoints: which one a render uses (select.py), rendering
as transformers does (render.py), in a Jinja sandbox with a size and time budget
(sandbox.py)."""

from .render import render_chat
from .sandbox import (
    BoundedSandbox,
    ChatTemplateError,
    TemplateLimits,
    bounded_filter,
    guard_iter,
    guard_size,
    render_bounded,
)
from .select import (
    ChatTemplates,
    find_chat_template,
    normalise_chat_templates,
    select_chat_template,
    template_uses_tools,
)

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
