"""SentencePiece vocabularies in GGUF (``tokenizer.ggml.model = "llama"``), both ways.

A GGUF of a LLaMA-2-style model (1bitLLM's bitnet_b1_58) carries the SentencePiece pieces,
their scores and types but no merges: SentencePiece's BPE joins, at each step, the adjacent
pair whose joined piece scores highest. ``spm_tokenizer_json`` rebuilds the tokenizer.json
transformers' LlamaTokenizerFast uses for the same model: a byte-fallback BPE whose merges are
every split of a normal piece into two pieces, ranked by the joined piece's score (the rule
transformers applies when it converts a SentencePiece model), "▁" for spaces with one
prepended, <0xNN> pieces for bytes outside the vocabulary, and the BOS token added when
``add_bos_token`` says so.

``spm_vocab_metadata`` is the inverse for ``bitnet convert --to gguf``: tokenizer.json keeps
no scores, so each piece scores minus the rank of the first merge that makes it, which ranks
the merges in the same order again.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from .gguf_tokens import BYTE, CONTROL, NORMAL, UNKNOWN, UNUSED, USER_DEFINED, VocabError

SPACE = "\u2581"  # "▁", SentencePiece's visible space
_BYTE_PIECE = re.compile(r"<0x[0-9A-F]{2}>")


def spm_tokenizer_json(meta: Mapping[str, Any]) -> str:
    """tokenizer.json text for the ``tokenizer.ggml.*`` metadata of a "llama" vocabulary."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, processors

    tokens = list(meta.get("tokenizer.ggml.tokens") or [])
    scores = list(meta.get("tokenizer.ggml.scores") or [])
    types = list(meta.get("tokenizer.ggml.token_type") or [])
    if not tokens or len(scores) != len(tokens) or len(types) != len(tokens):
        raise VocabError(
            "tokenizer.ggml.tokens / scores / token_type are missing or of different lengths"
        )
    if not all(isinstance(t, str) for t in tokens):
        raise VocabError("tokenizer.ggml.tokens must be strings")
    if not all(isinstance(x, (int, float)) and math.isfinite(x) for x in scores):
        raise VocabError("tokenizer.ggml.scores must be finite numbers")
    if not all(isinstance(t, int) for t in types):
        raise VocabError("tokenizer.ggml.token_type must be integers")
    if len(set(tokens)) != len(tokens):
        raise VocabError("tokenizer.ggml.tokens holds the same piece twice")
    vocab = {tok: i for i, tok in enumerate(tokens)}
    unk = next((tokens[i] for i, t in enumerate(types) if t == UNKNOWN), None)
    try:
        tok = Tokenizer(
            models.BPE(
                vocab=vocab,
                merges=_merges(tokens, scores, types),
                unk_token=unk,
                fuse_unk=True,
                byte_fallback=True,
            )
        )
    except Exception as exc:  # tokenizers raises plain Exception
        raise VocabError(f"the pieces do not form a BPE model: {exc}") from None
    # LlamaTokenizerFast's legacy pipeline (what the LLaMA-2-era checkpoints ship).
    tok.normalizer = normalizers.Sequence(
        [normalizers.Prepend(SPACE), normalizers.Replace(" ", SPACE)]
    )
    tok.decoder = decoders.Sequence(
        [
            decoders.Replace(SPACE, " "),
            decoders.ByteFallback(),
            decoders.Fuse(),
            decoders.Strip(" ", 1, 0),
        ]
    )
    for i, t in enumerate(types):
        if t in (CONTROL, UNKNOWN):
            tok.add_special_tokens([AddedToken(tokens[i], special=True, normalized=False)])
        elif t == USER_DEFINED:
            # Matched in the normalized text, as transformers' add_tokens leaves them.
            tok.add_tokens([AddedToken(tokens[i], special=False, normalized=True)])
    bos = meta.get("tokenizer.ggml.bos_token_id")
    if meta.get("tokenizer.ggml.add_bos_token", True) and bos is not None:
        if not 0 <= int(bos) < len(tokens):
            raise VocabError(f"tokenizer.ggml.bos_token_id {bos} is not among the tokens")
        b = tokens[int(bos)]
        tok.post_processor = processors.TemplateProcessing(
            single=f"{b} $A", pair=f"{b} $A {b}:1 $B:1", special_tokens=[(b, int(bos))]
        )
    return str(tok.to_str(pretty=True))


def _merges(tokens: list[str], scores: list[Any], types: list[int]) -> list[tuple[str, str]]:
    """Every split of a normal piece into two normal pieces, the best-scoring joins first
    (ties: lower id, then the split's strings, as transformers orders them)."""
    normal = {tok: i for i, tok in enumerate(tokens) if types[i] == NORMAL}
    ranked = []
    for tok, i in normal.items():
        score = float(scores[i])
        for cut in range(1, len(tok)):
            left, right = tok[:cut], tok[cut:]
            if left in normal and right in normal:
                ranked.append((-score, i, left, right))
    return [(left, right) for _, _, left, right in sorted(ranked)]


def is_spm(doc: Mapping[str, Any]) -> bool:
    """Whether a parsed tokenizer.json is a SentencePiece-style (byte-fallback "▁") BPE."""
    model = doc.get("model") or {}
    return model.get("type") == "BPE" and bool(model.get("byte_fallback"))


def spm_vocab_metadata(doc: Mapping[str, Any], vocab_size: int) -> dict[str, Any]:
    """``tokenizer.ggml.{model,tokens,scores,token_type}`` for a SentencePiece-style BPE.

    Ids past the tokenizer (a padded vocab_size) become ``[PAD<id>]`` pieces of type UNUSED.
    """
    model = doc["model"]
    tokens = [f"[PAD{i}]" for i in range(vocab_size)]
    types = [UNUSED] * vocab_size
    # Pieces no merge makes score below every merge (single characters, bytes, specials).
    scores = [-float(len(model.get("merges") or []) + 1)] * vocab_size
    for tok, i in model["vocab"].items():
        if i < vocab_size:
            tokens[i] = tok
            types[i] = BYTE if _BYTE_PIECE.fullmatch(tok) else NORMAL
    if model.get("unk_token") in model["vocab"]:
        types[model["vocab"][model["unk_token"]]] = UNKNOWN
    for t in doc.get("added_tokens") or []:
        i = int(t["id"])
        if i < vocab_size and types[i] != UNKNOWN:
            tokens[i], types[i] = t["content"], CONTROL if t.get("special") else USER_DEFINED
    merges = model.get("merges") or []
    first_rank: dict[str, int] = {}
    for rank, m in enumerate(merges):
        left, right = m.split(" ", 1) if isinstance(m, str) else m
        first_rank.setdefault(left + right, rank)
    for tok, rank in first_rank.items():
        i = model["vocab"].get(tok)
        if i is not None and i < vocab_size:
            scores[i] = -float(rank + 1)
    return {
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.scores": scores,
        "tokenizer.ggml.token_type": types,
    }


def parse_tokenizer(text: str) -> dict[str, Any]:
    """A tokenizer.json's document; VocabError when it is not a JSON object."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise VocabError(f"tokenizer.json is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise VocabError("tokenizer.json must hold a JSON object")
    return doc
