"""Tokenizer: Hugging Face ``tokenizer.json``, and the model's chat templates.

Encoding and decoding go through the ``tokenizers`` library. For streaming, every token id
maps to the raw bytes it stands for, so text can be produced token by token without
re-decoding the whole sequence. The chat templates are kept here and rendered by the
chat_template package (which one a render uses: ``chat_template.select_chat_template``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .chat_template import (
    ChatTemplateError,
    TemplateLimits,
    find_chat_template,
    normalise_chat_templates,
    select_chat_template,
)
from .errors import CheckpointError, InvalidParameterError
from .heap import release_free_heap
from .token_table import TokenBytes
from .validation import parse_json, read_text

# ChatTemplateError and find_chat_template have been importable from here since the start.
__all__ = ["ChatTemplateError", "Tokenizer", "find_chat_template"]

_SPECIAL_TOKEN_KEYS = (
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
)
_BYTE_FALLBACK = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


def _bytes_to_unicode() -> dict[int, str]:
    # GPT-2's byte-level alphabet: printable bytes map to themselves, the others to U+0100...
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    table: dict[int, str] = {}
    extra = 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


_BYTE_LEVEL_DECODE = {c: b for b, c in _bytes_to_unicode().items()}


def _token_content(value: Any) -> str | None:
    """A special token from tokenizer_config.json: a string or an AddedToken dict."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("content"), str):
        return str(value["content"])
    return None


class Tokenizer:
    """Text <-> token ids for one model, plus its chat template."""

    def __init__(
        self,
        tokenizer_file: str | Path,
        tokenizer_config: Mapping[str, Any] | None = None,
        *,
        chat_template: str | Mapping[str, str] | Sequence[Mapping[str, str]] | None = None,
        bos_token_id: int | None = None,
        eos_token_ids: Iterable[int] = (),
        vocab_size: int | None = None,
    ) -> None:
        import tokenizers

        self.path = Path(tokenizer_file)
        try:
            self._tok = tokenizers.Tokenizer.from_file(str(self.path))
        except Exception as exc:  # tokenizers raises plain Exception subclasses
            raise CheckpointError(self.path, f"cannot read tokenizer: {exc}") from None
        self._tok.no_padding()
        self._tok.no_truncation()
        cfg = dict(tokenizer_config or {})
        self.config = cfg

        self.special_tokens_map: dict[str, str] = {}
        for key in _SPECIAL_TOKEN_KEYS:
            content = _token_content(cfg.get(key))
            if content is not None:
                self.special_tokens_map[key] = content
        self.bos_token = self.special_tokens_map.get("bos_token")
        self.eos_token = self.special_tokens_map.get("eos_token")

        if bos_token_id is None and self.bos_token is not None:
            bos_token_id = self._tok.token_to_id(self.bos_token)
        self.bos_token_id: int | None = bos_token_id
        eos = list(eos_token_ids)
        if self.eos_token is not None:
            tid = self._tok.token_to_id(self.eos_token)
            if tid is not None and tid not in eos:
                eos.append(tid)
        self.eos_token_ids: tuple[int, ...] = tuple(int(e) for e in eos)

        added = self._tok.get_added_tokens_decoder()
        self._added: dict[int, str] = {i: t.content for i, t in added.items()}
        self.special_ids: frozenset[int] = frozenset(i for i, t in added.items() if t.special)
        # One past the highest id the tokenizer can produce (ids may be sparse).
        self.tokenizer_size: int = self._tok.get_vocab_size(with_added_tokens=True)
        self.vocab_size = max(vocab_size or 0, self.tokenizer_size)

        self._bos_policy = self._resolve_bos_policy(cfg)
        self.chat_template = normalise_chat_templates(chat_template, self.path)
        self._token_bytes: TokenBytes | None = None
        # Bounds on every chat-template render (templates are untrusted code); assignable.
        self.template_limits = TemplateLimits()
        self._longest: int | None = None
        release_free_heap()  # what parsing tokenizer.json allocated and freed

    @classmethod
    def from_dir(
        cls,
        path: str | Path,
        *,
        bos_token_id: int | None = None,
        eos_token_ids: Iterable[int] = (),
        vocab_size: int | None = None,
    ) -> Tokenizer:
        """Load ``tokenizer.json`` (+ ``tokenizer_config.json``, ``chat_template.jinja``)."""
        path = Path(path)
        cfg_file = path / "tokenizer_config.json"
        cfg: dict[str, Any] = {}
        if cfg_file.is_file():
            cfg = parse_json(cfg_file, read_text(cfg_file, "tokenizer_config.json"), "JSON")
        tok_file = path / "tokenizer.json"
        if not tok_file.is_file():
            raise CheckpointError(path, "tokenizer.json is missing")
        return cls(
            tok_file,
            cfg,
            chat_template=find_chat_template(path, cfg),
            bos_token_id=bos_token_id,
            eos_token_ids=eos_token_ids,
            vocab_size=vocab_size,
        )

    # -- encoding -------------------------------------------------------------------------

    def _resolve_bos_policy(self, cfg: Mapping[str, Any]) -> str:
        """How ``encode(add_special=True)`` gets its BOS: "post" or "prepend".

        As in transformers, a post-processor in tokenizer.json decides (llama-3's
        TemplateProcessing adds BOS). Without one that adds BOS, BOS is prepended here, as
        llama-style models expect, unless tokenizer_config.json sets add_bos_token false.
        """
        if self.bos_token_id is None:
            return "post"
        probe_plain = self._tok.encode("a", add_special_tokens=False).ids
        probe = self._tok.encode("a", add_special_tokens=True).ids
        if len(probe) > len(probe_plain) and probe[0] == self.bos_token_id:
            return "post"
        return "post" if cfg.get("add_bos_token") is False else "prepend"

    def encode(self, text: str, add_special: bool = True) -> list[int]:
        """Token ids of ``text``; with ``add_special``, a leading BOS (never two)."""
        if not isinstance(text, str):
            raise InvalidParameterError(f"text must be a str, got {type(text).__name__}")
        ids: list[int] = self._tok.encode(text, add_special_tokens=add_special).ids
        if not add_special or self.bos_token_id is None:
            return ids
        bos = self.bos_token_id
        if self._bos_policy == "prepend":
            ids = [bos, *ids]
        # A text that already starts with the BOS token (a rendered chat prompt) keeps one.
        if len(ids) >= 2 and ids[0] == bos and ids[1] == bos:
            ids = ids[1:]
        return ids

    def decode(self, ids: Sequence[int], skip_special: bool = True) -> str:
        """Text of ``ids``; special tokens are dropped unless ``skip_special`` is false."""
        self.check_ids(ids)
        return str(self._tok.decode([int(i) for i in ids], skip_special_tokens=skip_special))

    def check_ids(self, ids: Sequence[int]) -> None:
        """Raise InvalidParameterError unless every id is a token of the vocabulary."""
        n = self.vocab_size
        for i in ids:
            if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < n:
                raise InvalidParameterError(f"token id {i!r} is outside the vocabulary [0, {n})")

    @property
    def longest_token_bytes(self) -> int | None:
        """Bytes of text the longest token stands for (None when a normalizer may shrink
        text first, so that no byte count bounds the token count)."""
        if self._tok.normalizer is not None:
            return None
        if self._longest is None:
            added = (len(c.encode("utf-8")) for c in self._added.values())
            self._longest = max(self.token_bytes.longest(), *added, 1)
        return self._longest

    def token_to_id(self, token: str) -> int | None:
        """The id of one token string, or None."""
        tid = self._tok.token_to_id(token)
        return None if tid is None else int(tid)

    # -- raw token bytes (streaming) ------------------------------------------------------

    @property
    def token_bytes(self) -> TokenBytes:
        """For every id, the bytes its text is made of (special tokens: empty).

        Built once (O(vocab)) so that streaming costs one lookup per token; a read-only
        sequence of bytes, held in one buffer (token_table.py).
        """
        if self._token_bytes is None:
            self._token_bytes = TokenBytes(self._build_token_bytes())
            release_free_heap()  # the vocabulary's strings, just freed
        return self._token_bytes

    def _build_token_bytes(self) -> list[bytes]:
        steps = self._decoder_steps()
        kinds = {s.get("type") for s in steps}
        table = [b""] * self.vocab_size
        if "ByteLevel" in kinds:
            dec = _BYTE_LEVEL_DECODE
            for i, tok in self._tokens():
                table[i] = bytes(
                    [dec[c] for c in tok] if all(c in dec for c in tok) else tok.encode()
                )
        elif kinds <= {"Replace", "ByteFallback", "Fuse", "Strip", "Metaspace"}:
            replaces = [
                (s["pattern"].get("String"), s.get("content", ""))
                for s in steps
                if s.get("type") == "Replace" and isinstance(s.get("pattern"), dict)
            ]
            metaspace = [s.get("replacement", "▁") for s in steps if s.get("type") == "Metaspace"]
            byte_fallback = "ByteFallback" in kinds
            for i, tok in self._tokens():
                m = _BYTE_FALLBACK.match(tok) if byte_fallback else None
                if m:
                    table[i] = bytes([int(m.group(1), 16)])
                    continue
                for pat, rep in replaces:
                    if pat:
                        tok = tok.replace(pat, rep)
                for rep in metaspace:
                    tok = tok.replace(rep, " ")
                table[i] = tok.encode("utf-8")
        else:
            for i, _ in self._tokens():
                table[i] = self._tok.decode([i], skip_special_tokens=False).encode("utf-8")
        for i, content in self._added.items():
            if 0 <= i < len(table):
                table[i] = b"" if i in self.special_ids else content.encode("utf-8")
        return table

    def _tokens(self) -> Iterator[tuple[int, str]]:
        """(id, token string) for every id of the vocabulary that has one, added tokens too
        (the callers overwrite those). One id at a time: ``get_vocab`` would build the whole
        vocabulary twice over (a Rust map, then a dict) and leave its freed memory
        fragmented."""
        for i in range(self.vocab_size):
            tok = self._tok.id_to_token(i)
            if tok is not None:
                yield i, tok

    def _decoder_steps(self) -> list[dict[str, Any]]:
        dec = self._tok.decoder
        if dec is None:
            return []
        try:
            spec = json.loads(dec.__getstate__())
        except Exception:  # an exotic decoder: fall back to per-token decode
            return [{"type": "?"}]
        if spec.get("type") == "Sequence":
            return list(spec.get("decoders", []))
        return [spec]

    # -- chat templates -------------------------------------------------------------------

    def select_chat_template(self, chat_template: str | None = None, *, tools: bool = False) -> str:
        """The template text a render uses (see ``chat_template.select_chat_template``)."""
        return select_chat_template(self.chat_template, chat_template, tools=tools)

    def apply_chat_template(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        documents: Sequence[Mapping[str, Any]] | None = None,
        add_generation_prompt: bool = False,
        chat_template: str | None = None,
        **kwargs: Any,
    ) -> str:
        """Render ``messages`` to a prompt string exactly as transformers does.

        ``kwargs`` become template variables (after bos_token / eos_token / ..., which they
        override). Any failure inside the template raises ChatTemplateError.
        """
        from .chat_template.render import render_chat  # imports jinja2 on the first render

        template = self.select_chat_template(chat_template, tools=tools is not None)
        return render_chat(
            template,
            messages,
            tools=tools,
            documents=documents,
            add_generation_prompt=add_generation_prompt,
            variables={**self.special_tokens_map, **kwargs},
            limits=self.template_limits,
        )
