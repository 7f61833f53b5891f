"""Questions paired with the passage that answers them, for training and scoring ``embed``.

A retrieval case is a question and ``k`` passages about different subjects, one of which
answers it; the question names its subject (as users' questions do), the other passages are
of the same kinds (people, towns, companies, ...), so ranking needs more than the topic.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .passages import Passage, passage
from .unicode_values import unicode_passage


@dataclass(frozen=True)
class RetrievalCase:
    """A question and candidate passages; ``answer_index`` is the one that answers it."""

    question: str
    passages: tuple[str, ...]
    answer_index: int


def _distinct_passages(rng: random.Random, k: int) -> list[Passage]:
    docs: list[Passage] = []
    titles: set[str] = set()
    for _ in range(100 * k):  # bounded: duplicate titles are rare
        p = unicode_passage(rng) if rng.random() < 0.1 else passage(rng)
        if p.title not in titles:
            titles.add(p.title)
            docs.append(p)
            if len(docs) == k:
                return docs
    raise RuntimeError(f"could not draw {k} passages about different subjects")


def retrieval_case(rng: random.Random, k: int = 8) -> RetrievalCase:
    """A question and ``k`` passages, exactly one of which answers it."""
    docs = _distinct_passages(rng, k)
    index = rng.randrange(k)
    question, _ = rng.choice(docs[index].qa)
    return RetrievalCase(question, tuple(d.text for d in docs), index)


def pairs(rng: random.Random, n: int) -> list[tuple[str, str]]:
    """``n`` (question, passage) pairs about ``n`` different subjects: in-batch negatives."""
    return [(rng.choice(d.qa)[0], d.text) for d in _distinct_passages(rng, n)]
