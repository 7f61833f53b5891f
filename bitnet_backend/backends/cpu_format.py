"""The cpu backend's converted checkpoint format: the config.json entry `bitnet convert` writes.

The cpu backend reads it on load and ``convert`` writes it; both import it from here so neither
module needs the other at import time (see docs/formats.md, "Converted checkpoints").
"""

from __future__ import annotations

from typing import Any

from ..errors import CheckpointError

LAYOUT_KEY = "bitnet_backend_layout"
LAYOUT_FORMATS = ("i2_r16", "i1_r16")
STORED_HEADS = ("int8", "q6", "q4", "f32")


def prepacked_head(config_extra: dict[str, Any], path: object) -> str:
    """The head kind stored by ``convert`` ("" for an ordinary checkpoint)."""
    layout = _layout_entry(config_extra, path)
    if layout is None:
        return ""
    head = layout.get("lm_head")
    if head not in STORED_HEADS:
        raise CheckpointError(path, f"unsupported {LAYOUT_KEY}.lm_head {head!r}")
    return str(head)


def prepacked_layout(config_extra: dict[str, Any], path: object) -> str:
    """The ternary layout stored by ``convert`` ("" for an ordinary checkpoint)."""
    layout = _layout_entry(config_extra, path)
    return "" if layout is None else str(layout["format"])


def _layout_entry(config_extra: dict[str, Any], path: object) -> dict[str, Any] | None:
    layout = config_extra.get(LAYOUT_KEY)
    if layout is None:
        return None
    if not isinstance(layout, dict) or layout.get("format") not in LAYOUT_FORMATS:
        raise CheckpointError(path, f"unsupported {LAYOUT_KEY} {layout!r}")
    return layout
