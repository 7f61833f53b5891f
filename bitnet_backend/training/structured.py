"""Requests answered inside a JSON schema, and JSON mode (any object).

Structured output as the frameworks send it: LangChain's ``with_structured_output`` and
LlamaIndex's ``structured_predict`` / ``as_structured_llm`` put nothing about the schema in
the prompt; the schema only constrains decoding (``json_schema=``). So the prompt is the
user's request alone and the reply is the object, written in the layout the grammar forces
(``constraints.JSON_LAYOUT``: ", " between items, ": " after keys, no other whitespace, keys in
the schema's order). Every free-text value is short and closed, so a reply ends well within
128 tokens: a model that learned this does not run a string on until the token budget ends.

JSON mode (``{"type": "object"}``, any object) gets the same requests, with the keys named
in the prompt or not, and the reply is a relevant, non-empty object.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from . import vocab as V
from .passages import person_name

JSON_MODE_SCHEMA: dict[str, Any] = {"type": "object"}


@dataclass(frozen=True)
class StructuredCase:
    """A request, the schema its reply is decoded under, and the object that answers it."""

    kind: str  # "joke", "description", "list", "extraction", "json_mode"
    messages: tuple[dict[str, str], ...]
    schema: dict[str, Any]
    value: dict[str, Any]
    # Words a relevant reply's values contain (the request's topic), or, when the request
    # names the keys (``keys_named``), the keys a relevant reply fills.
    relevant: tuple[str, ...]
    keys_named: bool = False

    @property
    def text(self) -> str:
        """The reply exactly as decoding under the schema writes it."""
        return reply_text(self.value)


def reply_text(value: Any) -> str:
    """``value`` in the layout the JSON grammar forces (non-ASCII characters as they are)."""
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def _values_text(value: Any) -> str:
    if isinstance(value, dict):
        return " ".join(_values_text(v) for v in value.values())
    if isinstance(value, list):
        return " ".join(_values_text(v) for v in value)
    return str(value)


def is_relevant(obj: Any, case: StructuredCase) -> bool:
    """A non-empty object that fills the keys the request names, or mentions its topic."""
    if not isinstance(obj, dict) or not obj:
        return False
    if case.keys_named:
        return all(obj.get(k) not in (None, "", [], {}) for k in case.relevant)
    text = _values_text(obj).lower()
    return any(word.lower() in text for word in case.relevant)


def _field(
    rng: random.Random, name: str, typ: dict[str, Any], description: str, style: str
) -> dict[str, Any]:
    """One property as pydantic / TypedDict / a hand-written schema spells it."""
    if style == "pydantic":
        return {"description": description, "title": name.replace("_", " ").title(), **typ}
    if style == "typeddict" or rng.random() < 0.5:
        return {**typ, "description": description}
    return dict(typ)


def object_schema(
    rng: random.Random,
    title: str,
    description: str,
    fields: list[tuple[str, dict[str, Any], str]],
    required: list[str],
) -> dict[str, Any]:
    """A closed object schema in one of the shapes the frameworks emit."""
    style = rng.choice(("pydantic", "typeddict", "plain"))
    props = {name: _field(rng, name, typ, desc, style) for name, typ, desc in fields}
    schema: dict[str, Any] = {"properties": props, "required": required, "type": "object"}
    if style != "plain":
        schema = {"description": description, **schema, "title": title}
    # What bitnet_backend.schemas.closed adds in both integrations.
    return {**schema, "additionalProperties": False}


STR = {"type": "string"}
_SETUPS = (
    ("Why did the {x} sit on the computer?", "To keep an eye on the mouse."),
    ("Why did the {x} bring a ladder?", "It heard the drinks were on the house."),
    ("What do you call a {x} that tells jokes?", "A pun-{x}."),
    ("Why was the {x} so calm?", "It had nerves of steel."),
    ("Why did the {x} cross the road?", "To get to the other side."),
    ("What did the {x} say to the moon?", "Good night!"),
    ("Why did the {x} go to school?", "To get a little brighter."),
    ("How does a {x} fix a flat tyre?", "With a lot of patience."),
    ("Why did the {x} take a nap?", "It was tired of working."),
    ("What is a {x}'s favourite song?", "Anything with a good beat."),
)
JOKE_TOPICS = (
    *(f"{a}s" for a in V.ANIMALS if not a.endswith("sh")),
    "cats",
    "dogs",
    "computers",
    "programmers",
    "robots",
    "bananas",
    "coffee",
    "teachers",
    "the sea",
    "clouds",
    "bicycles",
    "pizza",
)


def _singular(topic: str) -> str:
    word = topic.removeprefix("the ")
    return word[:-1] if word.endswith("s") and not word.endswith("ss") else word


def _joke(rng: random.Random) -> StructuredCase:
    topic = rng.choice(JOKE_TOPICS)
    setup, punchline = rng.choice(_SETUPS)
    x = _singular(topic)
    value = {"setup": setup.format(x=x), "punchline": punchline.format(x=x)}
    want_punchline = True
    r = rng.random()
    if r < 0.1:
        request = f"Give me the setup to a joke about {topic}, no punchline."
        want_punchline = False
    elif r < 0.2:
        request = f"Give me a joke about {topic}, include the punchline."
    else:
        request = rng.choice(
            (
                f"Tell me a joke about {topic}.",
                f"Tell me a joke about {topic}",
                f"tell me a joke about {topic}",
                f"Make up a short joke about {topic}.",
                f"I want to hear a joke about {topic}.",
                f"Write a joke about {topic}.",
            )
        )
    optional = rng.random() < 0.25
    fields = [
        ("setup", STR, "question to set up a joke"),
        (
            "punchline",
            {"anyOf": [STR, {"type": "null"}]} if optional else STR,
            "answer to resolve the joke",
        ),
    ]
    schema = object_schema(
        rng, "Joke", "Joke to tell user.", fields, ["setup"] if optional else ["setup", "punchline"]
    )
    if not want_punchline:
        value = {"setup": value["setup"]} if optional else {**value, "punchline": ""}
    return StructuredCase("joke", _user(request), schema, value, (x,))


_DESCRIBED = {
    "cat": "A small furry animal that likes to sleep.",
    "dog": "A loyal animal that loves to play.",
    "river": "A long stream of water that flows to the sea.",
    "bicycle": "A machine with two wheels that you ride.",
    "library": "A quiet place full of books to borrow.",
    "piano": "A large instrument with black and white keys.",
    "mountain": "A very high hill with a rocky top.",
    "bakery": "A shop that sells fresh bread and cakes.",
    "train": "A long vehicle that runs on rails.",
    "garden": "A piece of land where flowers and vegetables grow.",
    "island": "A piece of land with water all around it.",
    "robot": "A machine that can do work on its own.",
    "lighthouse": "A tall tower with a light that guides ships.",
    "market": "A place where people buy and sell food.",
}


def _description(rng: random.Random) -> StructuredCase:
    thing, text = rng.choice(list(_DESCRIBED.items()))
    name_key = rng.choice(("name", "title", "subject"))
    text_key = rng.choice(("description", "summary", "text"))
    request = rng.choice(
        (
            f"Describe a {thing} in one sentence.",
            f"Give a short description of a {thing}.",
            f"What is a {thing}?",
            f"Write one sentence about a {thing}.",
        )
    )
    fields = [(name_key, STR, "what is described"), (text_key, STR, "one short sentence")]
    schema = object_schema(rng, "Description", "A short description.", fields, [name_key, text_key])
    return StructuredCase(
        "description", _user(request), schema, {name_key: thing, text_key: text}, (thing,)
    )


_LISTS = {
    "colours": V.COLOURS,
    "animals": V.ANIMALS,
    "fruits": ("apple", "banana", "cherry", "mango", "pear", "plum", "grape", "lemon"),
    "instruments": V.INSTRUMENTS,
    "sports": V.SPORTS,
    "foods": V.FOODS,
    "cities": V.CITIES,
    "weekdays": V.WEEKDAYS,
}


def _list(rng: random.Random) -> StructuredCase:
    category, pool = rng.choice(list(_LISTS.items()))
    n = rng.randint(2, 5)
    items = rng.sample(list(pool), n)
    key = rng.choice(("items", category, "names", "answer"))
    request = rng.choice(
        (
            f"List {V.NUMBER_WORDS[n]} {category}.",
            f"Name {n} {category}.",
            f"Give me a list of {n} {category}.",
            f"Which {category} do you know? Give {V.NUMBER_WORDS[n]}.",
        )
    )
    fields = [(key, {"type": "array", "items": STR}, f"a list of {category}")]
    schema = object_schema(rng, category.title(), f"Some {category}.", fields, [key])
    return StructuredCase("list", _user(request), schema, {key: items}, (*items, category))


def _extraction(rng: random.Random) -> StructuredCase:
    """Facts copied from a note or passage in the prompt into the schema's fields."""
    if rng.random() < 0.5:
        city, temp = rng.choice(V.CITIES), rng.randint(-10, 38)
        sunny = rng.random() < 0.5
        note = rng.choice(
            (
                f"{city} today: {temp} degrees and {'sunny' if sunny else 'cloudy'}.",
                f"In {city} it is {temp} degrees, {'sunny' if sunny else 'rainy'}.",
                f"Weather for {city}: {temp} degrees, {'clear and sunny' if sunny else 'grey'}.",
            )
        )
        request = rng.choice(
            (
                f"Report the weather from this note: {note}",
                f"Extract the weather from the text.\n{note}",
                f"{note}\nFill in the weather report.",
            )
        )
        fields = [
            ("city", STR, ""),
            ("temp_c", {"type": "integer"}, ""),
            ("sunny", {"type": "boolean"}, ""),
        ]
        schema = object_schema(
            rng, "Weather", "Today's weather in a city.", fields, ["city", "temp_c", "sunny"]
        )
        value: dict[str, Any] = {"city": city, "temp_c": temp, "sunny": sunny}
        return StructuredCase("extraction", _user(request), schema, value, (city,))
    name, city = person_name(rng), rng.choice(V.CITIES)
    age, job = rng.randint(18, 90), rng.choice(V.OCCUPATIONS)
    text = rng.choice(
        (
            f"{name} is a {age}-year-old {job} who lives in {city}.",
            f"{name} lives in {city}. {name.split()[0]} is {age} and works as a {job}.",
        )
    )
    request = rng.choice(
        (
            f"Extract the person from this text: {text}",
            f"Context:\n{text}\n\nWho is described?",
            f"{text}\n\nFill in the details of the person.",
        )
    )
    fields = [
        ("name", STR, "full name"),
        ("age", {"type": "integer"}, "age in years"),
        ("city", STR, "where they live"),
    ]
    schema = object_schema(rng, "Person", "A person.", fields, ["name", "age", "city"])
    value = {"name": name, "age": age, "city": city}
    return StructuredCase("extraction", _user(request), schema, value, (name,))


def _user(content: str) -> tuple[dict[str, str], ...]:
    return ({"role": "user", "content": content},)


_SCHEMA_KINDS = (_joke, _joke, _joke, _description, _list, _extraction, _extraction)


def structured_case(rng: random.Random) -> StructuredCase:
    """A request decoded under a closed object schema."""
    return rng.choice(_SCHEMA_KINDS)(rng)


def json_mode_case(rng: random.Random) -> StructuredCase:
    """A request decoded under ``{"type": "object"}`` (JSON mode): any object is allowed."""
    case = rng.choice((_joke, _joke, _description, _list, _extraction))(rng)
    request = case.messages[-1]["content"]
    # Any object is allowed, so a field with nothing to say (no punchline) is left out.
    value = {k: v for k, v in case.value.items() if v not in ("", None)}
    keys = list(value)
    named = rng.random() < 0.6
    if named:
        quoted = " and ".join(f"'{k}'" for k in keys)
        request += rng.choice(
            (
                f" Return the result as a JSON with {quoted} keys. Return nothing other than JSON.",
                f" Answer in JSON with the keys {quoted}.",
                f" Respond with a JSON object with {quoted}.",
            )
        )
    else:
        request += rng.choice((" Answer in JSON.", " Reply with a JSON object.", ""))
    relevant = tuple(keys) if named else case.relevant
    return StructuredCase("json_mode", _user(request), JSON_MODE_SCHEMA, value, relevant, named)
