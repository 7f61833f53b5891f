"""Fuzz target: chat-template compilation and bounded rendering.

The input is the template text; the render limits are small so a slow input is reported as
a ChatTemplateError quickly instead of stalling the fuzzer.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness import fuzz

# Coverage is collected in the package and jinja2 (the template language itself); the
# other dependencies are left alone (instrumenting them makes every start-up take minutes).
with atheris.instrument_imports(include=["bitnet_backend", "jinja2"]):
    from bitnet_backend.chat_template import TemplateLimits
    from bitnet_backend.errors import BitnetError
    from bitnet_backend.tokenizer import Tokenizer

_TOKENIZER: Tokenizer | None = None
_MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": "hello", "tool_calls": [{"function": {"name": "f"}}]},
]


def _tokenizer() -> Tokenizer:
    global _TOKENIZER
    if _TOKENIZER is None:
        from bitnet_backend.model import DEFAULT_MODEL_DIR

        _TOKENIZER = Tokenizer.from_dir(DEFAULT_MODEL_DIR)
        _TOKENIZER.template_limits = TemplateLimits(max_chars=100_000, max_seconds=0.5)
    return _TOKENIZER


def check(data: bytes) -> None:
    template = data.decode("utf-8", "replace")
    with contextlib.suppress(BitnetError):
        _tokenizer().apply_chat_template(_MESSAGES, chat_template=template)


if __name__ == "__main__":
    fuzz(check)
