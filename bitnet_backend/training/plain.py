"""Plain prompts (no chat template) continued with a sentence or two.

``generate("The capital of France is")``, LangChain's ``BitnetLLM`` and LlamaIndex's
``complete`` hand the model raw text after <|begin_of_text|>. The model must continue it with
words, not end at once: the prompt is the start of a sentence (a fact the word lists know, or
the first words of a passage) and the completion the rest of it, then the next sentence.
"""

from __future__ import annotations

import random

from . import vocab as V
from .passages import passage

_OPENERS = (
    ("The three primary colours are", " red, yellow and blue."),
    ("Once upon a time", ", there was a small village by a river."),
    ("The best way to learn a language is", " to speak it every day."),
    ("Here is a short story about a cat:", " The cat sat by the window and watched the rain."),
    ("A good breakfast is", " bread, fruit and a cup of tea."),
    ("The days of the week are", " " + ", ".join(V.WEEKDAYS[:-1]) + " and Sunday."),
    ("My favourite season is", " spring, when the days grow long."),
    ("The sun rises in the", " east and sets in the west."),
    ("Water freezes at", " zero degrees Celsius."),
)


def _capital(rng: random.Random) -> tuple[str, str]:
    country, capital = rng.choice(list(V.COUNTRY_CAPITALS.items()))
    prompt = rng.choice((f"The capital of {country} is", f"{country}'s capital city is"))
    return prompt, f" {capital}. {capital} is a city in {country}."


def _passage_start(rng: random.Random) -> tuple[str, str]:
    """The first words of a passage, continued with the rest of it."""
    words = passage(rng).text.split(" ")
    cut = rng.randint(2, max(2, min(8, len(words) - 2)))
    return " ".join(words[:cut]), " " + " ".join(words[cut:])


def _opener(rng: random.Random) -> tuple[str, str]:
    return rng.choice(_OPENERS)


_KINDS = (_capital, _passage_start, _passage_start, _opener)


def continuation(rng: random.Random) -> tuple[str, str]:
    """A plain prompt and its continuation (which starts with a space or a punctuation mark)."""
    return rng.choice(_KINDS)(rng)
