"""Tool requests whose values no word list holds: they can only be copied from the request.

Recipe v1 draws cities, names and symbols from fixed lists, so a model can answer "the weather
in Bergen" with a city it knows (Dublin) and still look right. Here the places, people and
codes are invented from letters and syllables, or written in an unusual case, so the only
way to the right argument is to copy it.
"""

from __future__ import annotations

import random
import string

from . import vocab as V
from .passages import town_name
from .tools import STR, ToolCase, _Param, _tool, schema

_ENDINGS = ("en", "vik", "stad", "heim", "ago", "ia", "ow", "ez", "ard", "um")


def invented_place(rng: random.Random) -> str:
    """A place name no list holds: syllables, letters and a common ending."""
    if rng.random() < 0.5:
        return town_name(rng)
    head = rng.choice(string.ascii_uppercase) + "".join(
        rng.choice("bcdfghklmnprstvz" if i % 2 else "aeiou") for i in range(rng.randint(2, 4))
    )
    name = head + rng.choice(_ENDINGS)
    return name if rng.random() < 0.8 else f"{name} {rng.choice(('City', 'Bay', 'Falls'))}"


def invented_person(rng: random.Random) -> str:
    first = "".join(rng.choice(V.SYLLABLES) for _ in range(2)).capitalize()
    return f"{first} {invented_place(rng).split()[0]}"


def _weather(rng: random.Random) -> ToolCase:
    city = invented_place(rng)
    name = rng.choice(("get_weather", "weather", "current_weather", "get_current_weather"))
    pname = rng.choice(("city", "location", "place"))
    request = rng.choice(
        (
            f"What's the weather like in {city}?",
            f"What's the weather in {city}?",
            f"How is the weather in {city} today?",
            f"Is it cold in {city}?",
        )
    )
    temp, cond = rng.randint(-10, 35), rng.choice(V.CONDITIONS)
    result = f'{{"temperature": {temp}, "condition": "{cond}"}}'
    answer = rng.choice(
        (f"It is {temp} degrees and {cond} in {city}.", f"In {city} it is {cond}, {temp} degrees.")
    )
    params: list[_Param] = [(pname, STR, "The city, e.g. Paris")]
    tool = _tool(name, "Get the current weather in a city.", schema(rng, params, [pname]))
    return ToolCase(tool, request, {pname: city}, result, answer)


def _order(rng: random.Random) -> ToolCase:
    ident = f"{rng.choice(string.ascii_uppercase)}-{rng.randint(1, 999)}"
    name = rng.choice(("lookup_order", "get_order", "order_status"))
    request = rng.choice(
        (f"Where was order {ident} delivered?", f"What happened to order {ident}?")
    )
    locker, day = rng.randint(1000, 9999), rng.choice(V.WEEKDAYS)
    result = f"Order {ident} was delivered to locker {locker} on {day}."
    answer = f"Order {ident} was delivered to locker {locker} on {day}."
    params: list[_Param] = [("order_id", STR, "The order id")]
    description = rng.choice(
        (
            "Look up the delivery status of an order by its id.",
            "Get where and when an order was delivered.",
            "Track an order.",
        )
    )
    tool = _tool(name, description, schema(rng, params, ["order_id"]))
    return ToolCase(tool, request, {"order_id": ident}, result, answer)


def _person(rng: random.Random) -> ToolCase:
    person = invented_person(rng)
    name = rng.choice(("find_user", "get_profile", "lookup_member"))
    pname = rng.choice(("name", "user", "member"))
    request = rng.choice((f"Find the profile of {person}.", f"Look up {person}."))
    city = invented_place(rng)
    result = f'{{"name": "{person}", "city": "{city}"}}'
    answer = f"{person} lives in {city}."
    params: list[_Param] = [(pname, STR, "Full name")]
    tool = _tool(name, "Find a member's profile.", schema(rng, params, [pname]))
    return ToolCase(tool, request, {pname: person}, result, answer)


FAMILIES = (_weather, _weather, _order, _person)


def novel_tool_case(rng: random.Random) -> ToolCase:
    """A tool request whose argument values are invented, so they must be copied."""
    return rng.choice(FAMILIES)(rng)
