"""Tool and output schemas are closed to undeclared keys before they reach the decoder.

The rule lives in bitnet_backend (``bitnet_backend.schemas``), shared by every integration.
"""

from __future__ import annotations

from bitnet_backend.schemas import closed

__all__ = ["closed"]
