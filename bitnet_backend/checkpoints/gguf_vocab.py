"""The tokenizer of a GGUF file: byte-level BPE vocabulary and merges in the metadata
(SentencePiece vocabularies: gguf_spm.py).

``tokenizer_json`` rebuilds a ``tokenizers`` tokenizer.json from the ``tokenizer.ggml.*`` keys
(the pipeline of the llama-3 family: the pre-tokenizer split pattern, byte-level BPE, the
special tokens as added tokens, <|begin_of_text|> prepended when add_bos_token says so).
``vocab_metadata`` is the inverse, used when writing a GGUF from a tokenizer.json.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .gguf_spm import is_spm, parse_tokenizer, spm_tokenizer_json, spm_vocab_metadata
from .gguf_tokens import BYTE, CONTROL, NORMAL, UNKNOWN, UNUSED, USER_DEFINED, VocabError

__all__ = ["VocabError", "tokenizer_json", "vocab_metadata"]
# The llama-3 pre-tokenizer split pattern; llama.cpp's "llama-bpe" (and Falcon3's / Falcon-E's
# "falcon3" / "falcon_e", which it maps to the same pre-tokenizer). 2B-4T's GGUF has no
# tokenizer.ggml.pre key and uses it too.
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
PRE_TOKENIZERS: dict[str | None, str] = {
    None: LLAMA3_SPLIT,
    "llama-bpe": LLAMA3_SPLIT,
    "falcon3": LLAMA3_SPLIT,
    "falcon_e": LLAMA3_SPLIT,
}


def tokenizer_json(meta: Mapping[str, Any]) -> str:
    """tokenizer.json text for the ``tokenizer.ggml.*`` metadata of a GGUF file."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
    )

    kind = meta.get("tokenizer.ggml.model")
    if kind == "llama":
        return spm_tokenizer_json(meta)
    if kind != "gpt2":
        raise VocabError(
            f"tokenizer.ggml.model {kind!r} is not supported ('gpt2' BPE or 'llama' SentencePiece)"
        )
    pre = meta.get("tokenizer.ggml.pre")
    if pre not in PRE_TOKENIZERS:
        raise VocabError(f"tokenizer.ggml.pre {pre!r} is not supported")
    tokens = list(meta.get("tokenizer.ggml.tokens") or [])
    types = list(meta.get("tokenizer.ggml.token_type") or [NORMAL] * len(tokens))
    merges = list(meta.get("tokenizer.ggml.merges") or [])
    if not tokens or len(types) != len(tokens):
        raise VocabError("tokenizer.ggml.tokens / token_type are missing or of different lengths")
    vocab = {tok: i for i, tok in enumerate(tokens) if types[i] in (NORMAL, BYTE, UNKNOWN)}
    pairs = []
    for m in merges:
        a, sep, b = m.partition(" ")
        if not sep:
            raise VocabError(f"malformed merge {m!r}")
        pairs.append((a, b))
    try:
        tok = Tokenizer(models.BPE(vocab=vocab, merges=pairs, ignore_merges=True))
    except Exception as exc:  # tokenizers raises plain Exception
        raise VocabError(f"the vocabulary and merges do not form a BPE model: {exc}") from None
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRE_TOKENIZERS[pre]), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    # Added tokens take the ids they have in the GGUF list, so they are added in id order
    # after the model vocabulary (tokenizers numbers them from its size upwards).
    added = [i for i, t in enumerate(types) if t in (CONTROL, USER_DEFINED)]
    for i in added:
        if i != tok.get_vocab_size(with_added_tokens=True):
            raise VocabError(f"added token {tokens[i]!r} (id {i}) does not follow the vocabulary")
        token = AddedToken(tokens[i], special=types[i] == CONTROL, normalized=False)
        if types[i] == CONTROL:
            tok.add_special_tokens([token])
        else:
            tok.add_tokens([token])
    steps: list[Any] = [processors.ByteLevel(trim_offsets=False)]
    bos = meta.get("tokenizer.ggml.bos_token_id")
    if meta.get("tokenizer.ggml.add_bos_token", True) and bos is not None:
        b = tokens[int(bos)]
        steps.append(
            processors.TemplateProcessing(
                single=f"{b} $A", pair=f"{b} $A {b}:1 $B:1", special_tokens=[(b, int(bos))]
            )
        )
    tok.post_processor = processors.Sequence(steps)
    return str(tok.to_str(pretty=True))


def vocab_metadata(tokenizer_text: str, vocab_size: int) -> dict[str, Any]:
    """``tokenizer.ggml.{model,pre,tokens,token_type,merges}`` for a byte-level BPE tokenizer.json.

    Ids the tokenizer does not use (a vocab_size padded past the tokenizer) become
    ``[PAD<id>]`` tokens of type UNUSED, as llama.cpp's converter writes them.
    """
    doc = parse_tokenizer(tokenizer_text)
    if is_spm(doc):
        return spm_vocab_metadata(doc, vocab_size)
    model = doc.get("model") or {}
    if model.get("type") != "BPE":
        raise VocabError(f"only BPE tokenizers convert to GGUF, not {model.get('type')!r}")
    tokens = [f"[PAD{i}]" for i in range(vocab_size)]
    types = [UNUSED] * vocab_size
    for tok, i in model["vocab"].items():
        if i < vocab_size:
            tokens[i], types[i] = tok, NORMAL
    for t in doc.get("added_tokens") or []:
        i = int(t["id"])
        if i < vocab_size:
            tokens[i], types[i] = t["content"], CONTROL if t.get("special") else USER_DEFINED
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges") or []]
    return {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "llama-bpe",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": types,
        "tokenizer.ggml.merges": merges,
    }
