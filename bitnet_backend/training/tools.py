"""Generated tools and requests for tool-use dialogues.

Each ``ToolCase`` is a tool (name, description, JSON-schema parameters) plus one request a
user might make of it, the arguments that request implies (taken from the user's words), the
tool's result and the reply that uses the result. Names, descriptions, parameter names and
schema styles are randomised, and a large share of tools are invented verb_noun tools, so the
model has to read the tool list in the prompt rather than remember tools.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import vocab as V
from .passages import company_name, person_name


@dataclass(frozen=True)
class ToolCase:
    """One tool and one request that should call it."""

    tool: dict[str, Any]  # {"name", "description", "parameters"}
    request: str
    arguments: dict[str, Any]
    result: str
    answer: str

    @property
    def name(self) -> str:
        return str(self.tool["name"])


_Param = tuple[str, dict[str, Any], str]  # name, type schema, description


def schema(rng: random.Random, params: list[_Param], required: list[str]) -> dict[str, Any]:
    """A parameters schema in one of the styles frameworks emit (plain, pydantic-like)."""
    style = rng.random()
    props: dict[str, Any] = {}
    for pname, typ, desc in params:
        p: dict[str, Any] = dict(typ)
        if style < 0.35:
            p = {"title": pname.replace("_", " ").title(), **p}
        if desc and rng.random() < 0.6:
            p["description"] = desc
        props[pname] = p
    if style < 0.35:
        return {"properties": props, "required": required, "type": "object"}
    if style < 0.5:
        return {
            "type": "object",
            "properties": props,
            "required": required,
            "additionalProperties": False,
        }
    return {"type": "object", "properties": props, "required": required}


def _tool(name: str, description: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "description": description, "parameters": parameters}


STR = {"type": "string"}
INT = {"type": "integer"}
NUM = {"type": "number"}


def _weather(rng: random.Random) -> ToolCase:
    name = rng.choice(
        (
            "get_weather",
            "weather",
            "current_weather",
            "fetch_weather",
            "get_current_weather",
            "weather_lookup",
        )
    )
    pname = rng.choice(("city", "location", "place", "city_name"))
    desc = rng.choice(
        (
            "Get the current weather in a city.",
            "Current weather for a location.",
            "Look up today's weather for a place.",
        )
    )
    use_unit = rng.random() < 0.3
    params: list[_Param] = [(pname, STR, "The city, e.g. Paris")]
    if use_unit:
        params.append(
            ("unit", {"type": "string", "enum": ["celsius", "fahrenheit"]}, "Temperature unit")
        )
    city = rng.choice(list(V.CITIES) + list(V.CITY_ALIASES) + list(V.MULTIWORD_CITIES))
    args: dict[str, Any] = {pname: city}
    unit_words = ""
    if use_unit and rng.random() < 0.6:
        unit = rng.choice(("celsius", "fahrenheit"))
        args["unit"] = unit
        unit_words = f" in {unit}"
    templates = [
        f"How is the weather in {city}{unit_words}?",
        f"Can you check the weather in {city}{unit_words}?",
    ]
    if not unit_words:  # these do not name a unit
        templates += [
            f"What's the weather in {city}?",
            f"What is the weather like in {city} today?",
            f"Tell me the current weather for {city}.",
            f"weather in {city}?",
            f"Is it raining in {city}?",
        ]
    request = rng.choice(templates)
    temp, cond = rng.randint(-10, 38), rng.choice(V.CONDITIONS)
    if rng.random() < 0.5:
        result = f'{{"temperature": {temp}, "condition": "{cond}"}}'
    else:
        result = f"{temp} degrees, {cond}"
    answer = rng.choice(
        (
            f"It is {temp} degrees and {cond} in {city}.",
            f"The weather in {city} is {cond} with a temperature of {temp} degrees.",
            f"In {city} it is currently {cond} and {temp} degrees.",
        )
    )
    return ToolCase(_tool(name, desc, schema(rng, params, [pname])), request, args, result, answer)


def _invented_name(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.15:
        return rng.choice(("magic_function", "secret_function", "mystery_op", "special_transform"))
    if r < 0.45:
        return "_".join(rng.choice(V.SYLLABLES) for _ in range(rng.randint(1, 2))) + rng.choice(
            ("", "_fn", "_op", "ify")
        )
    return f"{rng.choice(V.TOOL_VERBS)}_{rng.choice(V.TOOL_NOUNS)}"


def _function(rng: random.Random) -> ToolCase:
    """An opaque integer function: the user names it and gives the arguments."""
    name = _invented_name(rng)
    n = 1 if rng.random() < 0.7 else 2
    pnames = rng.sample(("input", "x", "n", "value", "number", "a", "b", "k", "count"), n)
    desc = rng.choice(
        (
            "Applies a magic function to an input.",
            f"Computes {name.replace('_', ' ')} of the input.",
            "Returns the result of a secret calculation.",
            "A mysterious integer function.",
            "",
        )
    )
    values = [rng.randint(0, 99) if rng.random() < 0.8 else rng.randint(100, 5000) for _ in pnames]
    args = dict(zip(pnames, values, strict=True))
    call = f"{name}({', '.join(str(v) for v in values)})"
    named = " and ".join(f"{p} = {v}" for p, v in args.items())
    request = rng.choice(
        (
            f"What is the value of {call}? Use the tool.",
            f"What is {call}?",
            f"Use {name} with {named}.",
            f"Call {name} with {named}.",
            f"Please run {name} on {' and '.join(str(v) for v in values)}.",
            f"What does {name} return for {' and '.join(str(v) for v in values)}?",
            f"Apply {name} to {' and '.join(str(v) for v in values)}, using the tool.",
        )
    )
    r = rng.randint(-50, 9999)
    answer = rng.choice((f"The value of {call} is {r}.", f"{call} = {r}.", f"The result is {r}."))
    params: list[_Param] = [(p, INT, "") for p in pnames]
    return ToolCase(_tool(name, desc, schema(rng, params, pnames)), request, args, str(r), answer)


_ARITH: dict[str, tuple[tuple[str, ...], str, tuple[str, ...], Callable[[int, int], int]]] = {
    "add": (
        ("add", "add_numbers", "sum_two", "plus"),
        "Add two numbers.",
        ("plus", "+"),
        lambda a, b: a + b,
    ),
    "multiply": (
        ("multiply", "multiply_numbers", "times", "product"),
        "Multiply two numbers.",
        ("times", "*", "multiplied by"),
        lambda a, b: a * b,
    ),
    "subtract": (
        ("subtract", "minus", "difference"),
        "Subtract the second number from the first.",
        ("minus", "-"),
        lambda a, b: a - b,
    ),
}


def _arithmetic(rng: random.Random) -> ToolCase:
    op = rng.choice(list(_ARITH))
    names, desc, words, fn = _ARITH[op]
    name = rng.choice(names)
    pa, pb = rng.choice((("a", "b"), ("x", "y"), ("first", "second"), ("left", "right")))
    a, b = rng.randint(0, 999), rng.randint(0, 999)
    word = rng.choice(words)
    request = rng.choice(
        (
            f"What is {a} {word} {b}?",
            f"Use the tool to compute {a} {word} {b}.",
            f"Calculate {a} {word} {b}.",
            {
                "add": f"Add {a} and {b}.",
                "multiply": f"Multiply {a} by {b}.",
                "subtract": f"Subtract {b} from {a}.",
            }[op],
        )
    )
    r = fn(a, b)
    answer = rng.choice((f"{a} {word} {b} is {r}.", f"The answer is {r}.", f"The result is {r}."))
    params: list[_Param] = [(pa, INT, "First number"), (pb, INT, "Second number")]
    return ToolCase(
        _tool(name, desc, schema(rng, params, [pa, pb])), request, {pa: a, pb: b}, str(r), answer
    )


def _search(rng: random.Random) -> ToolCase:
    name = rng.choice(
        ("search", "web_search", "search_web", "search_docs", "find_articles", "lookup")
    )
    pname = rng.choice(("query", "q", "search_query", "topic"))
    topic = rng.choice(V.TOPICS + V.WORDS)
    request = rng.choice(
        (
            f"Search for {topic}.",
            f"Look up {topic} for me.",
            f"Find information about {topic}.",
            f"Can you search the web for {topic}?",
        )
    )
    company = company_name(rng)
    result = (
        f"{topic.capitalize()}: an article by {company}, published in {rng.randint(1990, 2025)}."
    )
    answer = f"I found this: {result}"
    params: list[_Param] = [(pname, STR, "What to search for")]
    desc = rng.choice(
        ("Search the web.", "Search documents for a query.", "Find articles about a topic.")
    )
    return ToolCase(
        _tool(name, desc, schema(rng, params, [pname])), request, {pname: topic}, result, answer
    )


def _lookup_id(rng: random.Random) -> ToolCase:
    kind = rng.choice(("order", "ticket", "package", "invoice", "booking"))
    name = rng.choice((f"get_{kind}_status", f"{kind}_status", f"check_{kind}", f"track_{kind}"))
    pname = f"{kind}_id"
    ident = (
        rng.choice(("", "#"))
        + "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(rng.randint(1, 3)))
        + str(rng.randint(10, 99999))
    )
    ident = ident.lstrip("#")
    request = rng.choice(
        (
            f"What is the status of {kind} {ident}?",
            f"Where is my {kind} {ident}?",
            f"Check {kind} {ident} please.",
            f"Can you look up {kind} {ident}?",
        )
    )
    status = rng.choice(
        ("shipped", "delivered", "pending", "cancelled", "in transit", "open", "closed")
    )
    result = f'{{"{pname}": "{ident}", "status": "{status}"}}'
    answer = rng.choice((f"The {kind} {ident} is {status}.", f"Your {kind} {ident} is {status}."))
    params: list[_Param] = [(pname, STR, f"The {kind} identifier")]
    desc = f"Get the status of a {kind}."
    return ToolCase(
        _tool(name, desc, schema(rng, params, [pname])), request, {pname: ident}, result, answer
    )


def _stock(rng: random.Random) -> ToolCase:
    name = rng.choice(("get_stock_price", "stock_price", "get_quote", "fetch_stock_quote"))
    pname = rng.choice(("symbol", "ticker", "stock_symbol"))
    sym = rng.choice(V.STOCK_SYMBOLS)
    request = rng.choice(
        (
            f"What is the price of {sym} stock?",
            f"How much is {sym} trading at?",
            f"Get me a quote for {sym}.",
        )
    )
    price = f"{rng.randint(5, 900)}.{rng.randint(0, 99):02d}"
    answer = rng.choice(
        (f"{sym} is trading at {price} dollars.", f"The price of {sym} is {price}.")
    )
    params: list[_Param] = [(pname, STR, "Stock ticker symbol")]
    desc = "Get the latest stock price for a ticker symbol."
    return ToolCase(
        _tool(name, desc, schema(rng, params, [pname])), request, {pname: sym}, price, answer
    )


def _email(rng: random.Random) -> ToolCase:
    name = rng.choice(("send_email", "email", "send_message", "compose_email"))
    person = person_name(rng)
    addr = f"{person.split()[0].lower()}@{rng.choice(V.EMAIL_DOMAINS)}"
    subject = rng.choice(
        ("Meeting", "Lunch tomorrow", "Project update", "Hello", "Invoice", "The report")
    )
    request = rng.choice(
        (
            f"Send an email to {addr} with the subject {subject}.",
            f"Email {addr} about {subject}.",
            f"Please write to {addr}, subject: {subject}.",
        )
    )
    params: list[_Param] = [("to", STR, "Recipient address"), ("subject", STR, "Subject line")]
    result = '{"sent": true}'
    answer = rng.choice(
        (f"The email to {addr} has been sent.", f"Done: I sent the email to {addr}.")
    )
    desc = "Send an email."
    return ToolCase(
        _tool(name, desc, schema(rng, params, ["to", "subject"])),
        request,
        {"to": addr, "subject": subject},
        result,
        answer,
    )


def _currency(rng: random.Random) -> ToolCase:
    name = rng.choice(("convert_currency", "currency_convert", "exchange", "convert_money"))
    src, dst = rng.sample(V.CURRENCIES, 2)
    amount = rng.randint(1, 5000)
    request = rng.choice(
        (
            f"Convert {amount} {src} to {dst}.",
            f"How much is {amount} {src} in {dst}?",
            f"What are {amount} {src} worth in {dst}?",
        )
    )
    params: list[_Param] = [
        ("amount", NUM, "Amount of money"),
        ("from_currency", STR, "Currency code to convert from"),
        ("to_currency", STR, "Currency code to convert to"),
    ]
    value = f"{rng.randint(1, 9000)}.{rng.randint(0, 99):02d}"
    answer = f"{amount} {src} is {value} {dst}."
    args = {"amount": amount, "from_currency": src, "to_currency": dst}
    desc = "Convert an amount between currencies."
    return ToolCase(
        _tool(name, desc, schema(rng, params, ["amount", "from_currency", "to_currency"])),
        request,
        args,
        value,
        answer,
    )


def _translate(rng: random.Random) -> ToolCase:
    name = rng.choice(("translate", "translate_text", "translator"))
    lang = rng.choice(V.LANGUAGES)
    text = rng.choice(
        (
            "good morning",
            "thank you",
            "where is the station",
            "I like tea",
            "see you tomorrow",
            "happy birthday",
        )
    )
    request = rng.choice(
        (
            f'Translate "{text}" into {lang}.',
            f'How do you say "{text}" in {lang}?',
            f"Translate {text} to {lang}.",
        )
    )
    params: list[_Param] = [
        ("text", STR, "Text to translate"),
        ("target_language", STR, "Language to translate into"),
    ]
    out = "".join(rng.choice(V.SYLLABLES) for _ in range(rng.randint(2, 4)))
    answer = f'In {lang}, "{text}" is "{out}".'
    desc = "Translate text into another language."
    return ToolCase(
        _tool(name, desc, schema(rng, params, ["text", "target_language"])),
        request,
        {"text": text, "target_language": lang},
        out,
        answer,
    )


def _time(rng: random.Random) -> ToolCase:
    name = rng.choice(("get_time", "current_time", "local_time", "time_in"))
    pname = rng.choice(("city", "location", "timezone"))
    city = rng.choice(V.CITIES)
    request = rng.choice(
        (
            f"What time is it in {city}?",
            f"Tell me the local time in {city}.",
            f"Current time in {city}?",
        )
    )
    t = f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}"
    params: list[_Param] = [(pname, STR, "City or time zone")]
    answer = f"It is {t} in {city}."
    return ToolCase(
        _tool(name, "Get the current local time in a city.", schema(rng, params, [pname])),
        request,
        {pname: city},
        t,
        answer,
    )


def _reminder(rng: random.Random) -> ToolCase:
    name = rng.choice(("set_reminder", "create_reminder", "remind_me", "add_reminder"))
    what = rng.choice(
        (
            "call mum",
            "buy milk",
            "water the plants",
            "pay the rent",
            "book a table",
            "send the report",
        )
    )
    when = rng.choice(
        ("tomorrow at 9", "tonight", "on Monday", "at 5 pm", "next week", "in one hour")
    )
    request = rng.choice((f"Remind me to {what} {when}.", f"Set a reminder to {what} {when}."))
    params: list[_Param] = [("text", STR, "What to be reminded of"), ("time", STR, "When")]
    answer = f"Okay, I will remind you to {what} {when}."
    return ToolCase(
        _tool(name, "Create a reminder.", schema(rng, params, ["text", "time"])),
        request,
        {"text": what, "time": when},
        '{"ok": true}',
        answer,
    )


def _invented_lookup(rng: random.Random) -> ToolCase:
    """verb_noun(thing): an invented lookup tool, asked about in the tool's own words."""
    verb, noun = rng.choice(V.TOOL_VERBS), rng.choice(V.TOOL_NOUNS)
    name = f"{verb}_{noun}"
    words = noun.replace("_", " ")
    kind = rng.choice(("city", "name", "word", "company", "number", "item"))
    value: Any
    if kind == "city":
        pname, value = rng.choice(("city", "location", "place")), rng.choice(V.CITIES)
    elif kind == "name":
        pname, value = rng.choice(("name", "person", "user")), person_name(rng)
    elif kind == "word":
        pname, value = rng.choice(("word", "term", "keyword")), rng.choice(V.WORDS)
    elif kind == "company":
        pname, value = rng.choice(("company", "organization", "brand")), company_name(rng)
    elif kind == "item":
        pname, value = rng.choice(("item", "product", "item_name")), rng.choice(V.PRODUCTS)
    else:
        pname, value = rng.choice(("id", "number", "user_id", "code")), rng.randint(1, 99999)
    desc = rng.choice(
        (
            f"{verb.capitalize()} the {words} of a {pname.replace('_', ' ')}.",
            f"Returns the {words} for the given {pname.replace('_', ' ')}.",
            f"{verb.capitalize()} {words}.",
        )
    )
    request = rng.choice(
        (
            f"What is the {words} of {value}?",
            f"{verb.capitalize()} the {words} for {value}.",
            f"Can you {verb} the {words} of {value}?",
            f"I need the {words} for {value}.",
            f"Use {name} for {value}.",
        )
    )
    r = rng.choice(
        (
            str(rng.randint(0, 99999)),
            rng.choice(V.COLOURS),
            rng.choice(V.CONDITIONS),
            f"{rng.randint(1, 99)}%",
        )
    )
    answer = rng.choice((f"The {words} of {value} is {r}.", f"The {words} for {value} is {r}."))
    params: list[_Param] = [(pname, INT if kind == "number" else STR, "")]
    return ToolCase(
        _tool(name, desc, schema(rng, params, [pname])), request, {pname: value}, r, answer
    )


FAMILIES: tuple[Callable[[random.Random], ToolCase], ...] = (
    _weather,
    _function,
    _function,
    _arithmetic,
    _search,
    _lookup_id,
    _stock,
    _email,
    _currency,
    _translate,
    _time,
    _reminder,
    _invented_lookup,
    _invented_lookup,
    _invented_lookup,
)


def tool_case(rng: random.Random) -> ToolCase:
    """One random tool with a request for it."""
    return rng.choice(FAMILIES)(rng)


def distractors(rng: random.Random, target: ToolCase, k: int) -> list[dict[str, Any]]:
    """``k`` other tools with names different from the target's."""
    out: list[dict[str, Any]] = []
    names = {target.name}
    while len(out) < k:
        t = tool_case(rng).tool
        if t["name"] not in names:
            names.add(t["name"])
            out.append(t)
    return out
