"""What ``run`` and ``chat`` say on stderr about a reply: timings, and why it is empty."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..completion import Timings

_EMPTY_REASONS = {
    "stop": "the model ended its reply at once",
    "length": "the token limit was reached before any text was complete",
    "tool_calls": "the model answered with a tool call",
}


def explain_empty_reply(finish_reason: str | None) -> None:
    """Say on stderr why a reply has no text (a user would otherwise see nothing at all)."""
    why = _EMPTY_REASONS.get(finish_reason or "", "the generation produced no text")
    print(f"bitnet: {why} (finish_reason={finish_reason})", file=sys.stderr)


def print_timings(
    load_ms: float | None, timings: Timings | None, finish_reason: str | None
) -> None:
    """The --verbose summary, in the spirit of llama.cpp and ollama."""
    lines = []
    if load_ms is not None:
        lines.append(f"load time:           {load_ms:10.2f} ms")
    if timings is not None:
        t = timings
        lines += [
            f"prompt eval:         {t.prompt_ms:10.2f} ms / {t.prompt_tokens:5d} tokens "
            f"({t.prompt_tokens_per_second:9.2f} tokens/s)",
            f"generation:          {t.generation_ms:10.2f} ms / {t.generated_tokens:5d} tokens "
            f"({t.tokens_per_second:9.2f} tokens/s)",
            f"time to first token: {t.ttft_ms:10.2f} ms",
        ]
    if finish_reason is not None:
        lines.append(f"finish reason:       {finish_reason}")
    sys.stderr.write("".join(f"{line}\n" for line in lines))
    sys.stderr.flush()
