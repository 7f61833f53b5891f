"""Values outside ASCII (CJK, accents, emoji) in tool arguments and passages, copied exactly.

Requests and passages name people, companies, cities and notes written in Chinese, Japanese,
Korean, accented Latin or with emoji; the call's arguments (or the reading answer) hold the
same characters, byte for byte. The byte-level tokenizer covers every character; these
examples teach the model that a value is copied whatever script it is written in. Names are
built from parts, so the held-out evaluation meets names the training stream did not.
"""

from __future__ import annotations

import random

from .passages import Passage
from .tools import STR, ToolCase, _Param, _tool, schema

# Name stems and company suffixes by language.
CJK_NAMES = {
    "Chinese": (
        ("华星", "明光", "海天", "金山", "新月", "东方", "长城", "青云", "龙腾", "天宇", "白鹤"),
        ("集团", "公司", "科技", "有限公司"),
    ),
    "Japanese": (
        ("さくら", "ひかり", "みどり", "やまと", "あおば", "つばさ", "富士", "桜井", "北斗"),
        ("株式会社", "商事", "工業"),
    ),
    "Korean": (("한빛", "푸른", "새별", "하늘", "바다", "누리"), ("주식회사", "그룹", "전자")),
}
ACCENTED_FIRST = (
    "José",
    "Zoë",
    "François",
    "Søren",
    "Łukasz",
    "Ångel",
    "Renée",
    "Jürgen",
    "Inês",
    "Çelik",
    "Ñuño",
    "Björn",
    "Émilie",
    "Dagný",
    "Günther",
    "Mátyás",
    "Chloé",
    "Joël",
    "Ólafur",
    "Siân",
)
ACCENTED_LAST = (
    "Núñez",
    "Müller",
    "Kierkegård",
    "Wałęsa",
    "Ångström",
    "Dvořák",
    "Sørensen",
    "Gonçalves",
    "Piñera",
    "Öztürk",
    "Lefèvre",
    "Þórsson",
    "Nováková",
    "Ibáñez",
    "Çakır",
    "Schröder",
)
UNICODE_CITIES = (
    "Zürich",
    "São Paulo",
    "Kraków",
    "Malmö",
    "Besançon",
    "Reykjavík",
    "Düsseldorf",
    "Göteborg",
    "Córdoba",
    "Łódź",
    "Mérida",
    "Århus",
    "Brașov",
    "Plzeň",
    "Tromsø",
    "東京",
    "北京",
    "上海",
    "大阪",
    "서울",
    "부산",
    "Αθήνα",
    "Москва",
)
EMOJI = ("🎉", "🍕", "☕", "🚲", "🌧️", "🎂", "📦", "🚀", "🌸", "⚽")
KINDS = ("technology", "food", "shipping", "design", "travel", "music", "games")


def cjk_company(rng: random.Random) -> tuple[str, str]:
    """A company name in Chinese, Japanese or Korean, and the language it is written in."""
    language = rng.choice(list(CJK_NAMES))
    stems, suffixes = CJK_NAMES[language]
    return rng.choice(stems) + rng.choice(suffixes), language


def accented_name(rng: random.Random) -> str:
    return f"{rng.choice(ACCENTED_FIRST)} {rng.choice(ACCENTED_LAST)}"


def _customer(rng: random.Random) -> ToolCase:
    """The shape of LangChain's unicode tool-call check: a customer with a native name."""
    name, language = cjk_company(rng)
    if rng.random() < 0.3:
        name, language = accented_name(rng), rng.choice(("Spanish", "German", "Polish", "French"))
    kind = rng.choice(KINDS)
    description = f"a {language} {kind} company"
    tool_name = rng.choice(("unicode_customer", "create_customer", "add_customer", "new_client"))
    doc = rng.choice(
        (
            "Tool for creating a customer with Unicode name.\n\nArgs:\n    customer_name: The "
            "customer's name in their native language.\n    description: Description of the "
            "customer.\n\nReturns:\n    A confirmation message about the customer creation.",
            "Create a customer record.",
            "Register a new customer.",
        )
    )
    params: list[_Param] = [
        ("customer_name", STR, "The customer's name in their native language."),
        ("description", STR, "Description of the customer."),
    ]
    gloss = rng.choice(("", f" ({rng.choice(('Hello', 'Star', 'Blue Sea', 'Sky'))} Group)"))
    request = rng.choice(
        (
            f"Create a customer named '{name}'{gloss} - {description}",
            f"Create a customer named '{name}'{gloss} - {description}.",
            f'Add the customer "{name}", {description}.',
            f"Please register {name} as a customer: {description}.",
        )
    )
    args = {"customer_name": name, "description": description}
    result = f"Created customer: {name} - {description}"
    answer = rng.choice((f"Done. {result}.", f"{result}. The customer is saved."))
    tool = _tool(tool_name, doc, schema(rng, params, ["customer_name", "description"]))
    return ToolCase(tool, request, args, result, answer)


def _weather(rng: random.Random) -> ToolCase:
    city = rng.choice(UNICODE_CITIES)
    name = rng.choice(("get_weather", "weather", "current_weather"))
    pname = rng.choice(("city", "location"))
    request = rng.choice(
        (
            f"What's the weather in {city}?",
            f"How is the weather in {city}?",
            f"Is it raining in {city}?",
            f"Tell me the current weather for {city}.",
        )
    )
    temp = rng.randint(-10, 35)
    cond = rng.choice(("sunny", "rainy", "cloudy", "snowy"))
    result = f'{{"temperature": {temp}, "condition": "{cond}"}}'
    answer = f"It is {temp} degrees and {cond} in {city}."
    params: list[_Param] = [(pname, STR, "The city")]
    tool = _tool(name, "Get the current weather in a city.", schema(rng, params, [pname]))
    return ToolCase(tool, request, {pname: city}, result, answer)


def _person_lookup(rng: random.Random) -> ToolCase:
    person = accented_name(rng) if rng.random() < 0.6 else cjk_company(rng)[0]
    name = rng.choice(("find_user", "lookup_person", "get_contact", "search_people"))
    pname = rng.choice(("name", "full_name", "person"))
    request = rng.choice(
        (
            f"Find the contact details of {person}.",
            f"Look up {person} for me.",
            f"Who is {person}? Use the tool.",
        )
    )
    phone = f"+{rng.randint(1, 99)} {rng.randint(100, 999)} {rng.randint(1000, 9999)}"
    result = f'{{"name": "{person}", "phone": "{phone}"}}'
    answer = f"The phone number of {person} is {phone}."
    params: list[_Param] = [(pname, STR, "The person's name")]
    tool = _tool(name, "Find a person's contact details.", schema(rng, params, [pname]))
    return ToolCase(tool, request, {pname: person}, result, answer)


def _note(rng: random.Random) -> ToolCase:
    what = rng.choice(("buy cake", "call Zoë", "book the café", "water the plants", "pack"))
    text = f"{what} {rng.choice(EMOJI)}"
    when = rng.choice(("tomorrow", "tonight", "on Friday", "at 8 am"))
    name = rng.choice(("set_reminder", "create_note", "add_todo"))
    request = rng.choice((f"Remind me to {text} {when}.", f'Add "{text}" to my list, {when}.'))
    params: list[_Param] = [("text", STR, "What to remember"), ("time", STR, "When")]
    tool = _tool(name, "Save a reminder.", schema(rng, params, ["text", "time"]))
    answer = f"Okay, I saved: {text} ({when})."
    return ToolCase(tool, request, {"text": text, "time": when}, '{"ok": true}', answer)


FAMILIES = (_customer, _customer, _weather, _person_lookup, _note)


def unicode_tool_case(rng: random.Random) -> ToolCase:
    """A tool whose right arguments hold non-ASCII characters from the request."""
    return rng.choice(FAMILIES)(rng)


def unicode_passage(rng: random.Random) -> Passage:
    """A short passage whose answers are non-ASCII names, companies and cities."""
    person, city = accented_name(rng), rng.choice(UNICODE_CITIES)
    company, _ = cjk_company(rng)
    first = person.split()[0]
    year = rng.randint(1950, 2005)
    facts = [
        (f"{first} lives in {city}.", [(f"Where does {person} live?", city)]),
        (f"{first} works at {company}.", [(f"Where does {person} work?", company)]),
        (f"{first} was born in {year}.", [(f"When was {person} born?", str(year))]),
    ]
    rng.shuffle(facts)
    chosen = facts[: rng.randint(2, 3)]
    text = " ".join([f"{person} is an engineer."] + [s for s, _ in chosen])
    qa = [q for _, qs in chosen for q in qs]
    if any(sentence.endswith(f"in {city}.") for sentence, _ in chosen):
        qa.append((f"Who lives in {city}?", person))
    return Passage(person, text, tuple(qa))
