"""Texts that can only be continued by looking things up in the text itself.

A small model trained on templated passages learns the templates long before it learns to
copy: the names in a passage are a small part of its loss. These texts make copying the only
way to predict them, which is what teaches the attention heads that find a span earlier in
the context and copy what follows it (what reading and tool arguments need):

- a random list of words written twice (the second copy is free only to a model that copies);
- key-value recall: random pairs, then some of the keys again, each to be completed with its
  value;
- questions about passages, several per passage, answered by spans of them.
"""

from __future__ import annotations

import random

from . import passages
from . import vocab as V


def random_item(rng: random.Random) -> str:
    """A word, name, place, number or invented word: no way to guess which."""
    kind = rng.randrange(7)
    if kind == 0:
        return rng.choice(V.FIRST_NAMES)
    if kind == 1:
        return rng.choice(V.LAST_NAMES)
    if kind == 2:
        return rng.choice(V.CITIES)
    if kind == 3:
        return str(rng.choice((rng.randint(0, 99), rng.randint(100, 9999))))
    if kind == 4:
        return "".join(rng.choice(V.SYLLABLES) for _ in range(rng.randint(2, 3)))
    if kind == 5:
        return rng.choice(V.WORDS)
    return rng.choice(rng.choice((V.COLOURS, V.ANIMALS, V.FOODS, V.SPORTS, V.INSTRUMENTS)))


def word_list(rng: random.Random) -> tuple[str, str]:
    """A list of random items and the same list again (prompt, continuation)."""
    items = [random_item(rng) for _ in range(rng.randint(6, 30))]
    sep = rng.choice((" ", ", ", "\n", " | "))
    text = sep.join(items)
    return text + "\n\n", text


_PAIR_FORMATS = ("{k}: {v}", "{k} = {v}", "{k} -> {v}", "{k} is {v}.")


def _key(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return passages.person_name(rng)
    return "".join(rng.choice(V.SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()


def recall(rng: random.Random) -> tuple[str, str]:
    """Random key-value pairs (prompt) and some keys completed with their values."""
    fmt = rng.choice(_PAIR_FORMATS)
    pairs: dict[str, str] = {}
    for _ in range(rng.randint(3, 12)):
        pairs[_key(rng)] = random_item(rng)
    keys = list(pairs)
    asked = rng.sample(keys, k=rng.randint(1, min(4, len(keys))))
    listed = "\n".join(fmt.format(k=k, v=v) for k, v in pairs.items())
    queries = "\n".join(fmt.format(k=k, v=pairs[k]) for k in asked)
    return listed + "\n\n", queries


def passage_questions(rng: random.Random) -> tuple[str, str]:
    """1-3 passages (prompt) and 1-4 questions about them with their answers."""
    docs = [passages.passage(rng) for _ in range(rng.randint(1, 3))]
    pool = sorted({pair for d in docs for pair in d.qa})
    asked = rng.sample(pool, k=min(len(pool), rng.randint(1, 4)))
    qa = [f"Question: {question}\nAnswer: {answer}" for question, answer in asked]
    return "\n\n".join(d.text for d in docs) + "\n\n", "\n\n".join(qa)
