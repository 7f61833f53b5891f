"""The model's own tokenizer as the ``str -> list[int]`` callable LlamaIndex counts with.

``Settings.tokenizer``, ``PromptHelper``, ``TokenCountingHandler`` and the chat memories'
``tokenizer_fn`` all take such a callable; given the model's, chunk sizes and prompt fitting
count the tokens the model reads, and LlamaIndex never falls back to tiktoken.
"""

from __future__ import annotations

from collections.abc import Callable

import bitnet_backend as bb


def tokenizer_of(model: bb.Model) -> Callable[[str], list[int]]:
    """``model``'s token ids of a text, without special tokens (BOS is the template's)."""

    def encode(text: str) -> list[int]:
        return model.tokenize(text, add_special=False)

    return encode
