"""The retrieval objective: in-batch contrastive loss over the vectors ``Model.embed`` returns.

``Model.embed`` tokenizes a text with <|begin_of_text|>, runs a fresh forward, and returns the
mean of the final-normed hidden states over every position (BOS included), L2-normalised.
``pooled`` computes exactly that on the training model, so the objective trains the vector the
runtime hands out (tests/test_training_v2.py compares the two on an exported model).

A step embeds ``n`` questions and the ``n`` passages that answer them (about ``n`` different
subjects), packed several texts to a row; each question's passage must score higher than the
other ``n - 1`` and the other way round (symmetric InfoNCE on cosine similarity).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .model import BitNet

TEMPERATURE = 0.05  # scale of the cosine similarities (the usual choice for InfoNCE)


@dataclass
class PackedTexts:
    """Texts packed into rows (attention stays inside a text); ``doc`` is the text's index."""

    tokens: np.ndarray  # int64 [rows, width]
    pos: np.ndarray  # int64 [rows, width]
    doc: np.ndarray  # int32 [rows, width], -1 for padding
    count: int  # number of texts


def pack_texts(id_lists: Sequence[Sequence[int]], width: int, pad_id: int) -> PackedTexts:
    """First-fit packing of whole texts into rows of ``width`` tokens."""
    rows: list[list[int]] = []  # text indices per row
    used: list[int] = []
    for i, ids in enumerate(id_lists):
        if not 0 < len(ids) <= width:
            raise ValueError(f"text {i} has {len(ids)} tokens; a row holds 1 to {width}")
        row = next((r for r, u in enumerate(used) if u + len(ids) <= width), None)
        if row is None:
            rows.append([])
            used.append(0)
            row = len(rows) - 1
        rows[row].append(i)
        used[row] += len(ids)
    tokens = np.full((len(rows), width), pad_id, dtype=np.int64)
    pos = np.zeros((len(rows), width), dtype=np.int64)
    doc = np.full((len(rows), width), -1, dtype=np.int32)
    for r, members in enumerate(rows):
        at = 0
        for i in members:
            n = len(id_lists[i])
            tokens[r, at : at + n] = id_lists[i]
            pos[r, at : at + n] = np.arange(n)
            doc[r, at : at + n] = i
            at += n
    return PackedTexts(tokens, pos, doc, len(id_lists))


def pooled(model: BitNet, packed: PackedTexts) -> torch.Tensor:
    """``[texts, hidden]``: each text's mean final hidden state, L2-normalised (as ``embed``)."""
    doc = torch.from_numpy(packed.doc)
    hidden = model.hidden_states(torch.from_numpy(packed.tokens), torch.from_numpy(packed.pos), doc)
    flat_doc = doc.reshape(-1).long()
    keep = flat_doc >= 0
    flat = hidden.reshape(-1, hidden.shape[-1])[keep]
    sums = torch.zeros(packed.count, hidden.shape[-1], dtype=flat.dtype)
    sums = sums.index_add(0, flat_doc[keep], flat)
    counts = torch.bincount(flat_doc[keep], minlength=packed.count).to(flat.dtype)
    return F.normalize(sums / counts[:, None], dim=-1)


def info_nce(queries: torch.Tensor, passages: torch.Tensor) -> torch.Tensor:
    """Symmetric in-batch InfoNCE: row i of each is the other's positive."""
    logits = queries @ passages.T / TEMPERATURE
    target = torch.arange(len(queries))
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def retrieval_loss(model: BitNet, packed: PackedTexts) -> torch.Tensor:
    """The loss of a batch packed from ``n`` questions followed by their ``n`` passages."""
    vectors = pooled(model, packed)
    n = packed.count // 2
    return info_nce(vectors[:n], vectors[n:])
