"""Chat templates from downloaded checkpoints, rendered in a Jinja sandbox with a size and time
budget (sandbox.py)."""

from .sandbox import (
    BoundedSandbox,
    ChatTemplateError,
    TemplateLimits,
    bounded_filter,
    guard_iter,
    guard_size,
    render_bounded,
)

__all__ = [
    "BoundedSandbox",
    "ChatTemplateError",
    "TemplateLimits",
    "bounded_filter",
    "guard_iter",
    "guard_size",
    "render_bounded",
]
