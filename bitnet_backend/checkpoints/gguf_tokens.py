"""What both GGUF vocabulary readers share: llama.cpp's token types and the error they raise."""

from __future__ import annotations

# llama.cpp's token types (tokenizer.ggml.token_type).
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


class VocabError(ValueError):
    """The GGUF vocabulary cannot be turned into a tokenizer (the message says why)."""
