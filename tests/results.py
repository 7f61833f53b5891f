"""Comparing results of separate calls: how many prompt tokens came from the cache may differ."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, TypeVar

R = TypeVar("R")


def counts(usage: Any) -> dict[str, int]:
    """The token counts of a usage, without where the prompt tokens came from."""
    return {k: usage[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")}


def uncached(result: R) -> R:
    """``result`` (a completion, chat completion or final chunk) with only its token counts."""
    usage = getattr(result, "usage", None)
    return result if usage is None else replace(result, usage=counts(usage))  # type: ignore[type-var]
