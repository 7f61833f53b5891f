"""Instructions with short answers and small talk, so the model also replies sensibly when
there is no passage and no tool to use."""

from __future__ import annotations

import random

from . import vocab as V

IDENTITY = (
    "I am a small BitNet b1.58 language model that runs on your CPU. I can answer questions "
    "about a text you give me and call tools."
)


def _arith(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randint(0, 20), rng.randint(0, 20)
    if rng.random() < 0.5:
        q = rng.choice((f"What is {a} plus {b}?", f"What is {a} + {b}?", f"Add {a} and {b}."))
        return q, str(a + b)
    a, b = max(a, b), min(a, b)
    q = rng.choice((f"What is {a} minus {b}?", f"What is {a} - {b}?"))
    return q, str(a - b)


def _capital(rng: random.Random) -> tuple[str, str]:
    country, capital = rng.choice(list(V.COUNTRY_CAPITALS.items()))
    q = rng.choice(
        (
            f"What is the capital of {country}?",
            f"Which city is the capital of {country}?",
            f"Name the capital of {country}.",
        )
    )
    a = rng.choice((capital, f"The capital of {country} is {capital}."))
    return q, a


def _opposite(rng: random.Random) -> tuple[str, str]:
    w, o = rng.choice(list(V.OPPOSITES.items()))
    if rng.random() < 0.5:
        w, o = o, w
    return rng.choice((f"What is the opposite of {w}?", f"Give the opposite of the word {w}.")), o


def _repeat(rng: random.Random) -> tuple[str, str]:
    words = " ".join(rng.sample(V.WORDS, rng.randint(1, 4)))
    return rng.choice(
        (f"Repeat after me: {words}", f'Say "{words}".', f"Please repeat: {words}")
    ), words


def _count(rng: random.Random) -> tuple[str, str]:
    n = rng.randint(2, 10)
    return f"Count from 1 to {n}.", ", ".join(str(i) for i in range(1, n + 1))


def _larger(rng: random.Random) -> tuple[str, str]:
    a, b = rng.sample(range(0, 1000), 2)
    q = rng.choice((f"Which is larger, {a} or {b}?", f"Which number is bigger: {a} or {b}?"))
    return q, str(max(a, b))


def _number_word(rng: random.Random) -> tuple[str, str]:
    n = rng.randint(0, 20)
    return rng.choice(
        (f"Write the number {n} in words.", f"How do you spell {n}?")
    ), V.NUMBER_WORDS[n]


def _small_talk(rng: random.Random) -> tuple[str, str]:
    options = (
        ("Hello!", "Hello! How can I help you today?"),
        ("Hi", "Hi! What can I do for you?"),
        ("Hey there.", "Hello! How can I help?"),
        ("Good morning.", "Good morning! How can I help you today?"),
        ("Who are you?", IDENTITY),
        ("What are you?", IDENTITY),
        ("What can you do?", IDENTITY),
        ("Thank you!", "You're welcome!"),
        ("Thanks for your help.", "You're welcome! Happy to help."),
        ("How are you?", "I'm doing well, thank you. How can I help you?"),
        ("Goodbye.", "Goodbye! Have a nice day."),
        ("Tell me a joke.", "Why did the computer go to the doctor? Because it had a virus."),
        ("Say something nice.", "You are doing a great job today."),
        (
            "Write a short poem.",
            "The sea is wide, the sky is blue, the morning sun is bright and new.",
        ),
    )
    return rng.choice(options)


_KINDS = (
    _arith,
    _capital,
    _capital,
    _opposite,
    _repeat,
    _count,
    _larger,
    _number_word,
    _small_talk,
    _small_talk,
)


def instruction(rng: random.Random) -> tuple[str, str]:
    """One (user message, short answer) pair."""
    return rng.choice(_KINDS)(rng)
