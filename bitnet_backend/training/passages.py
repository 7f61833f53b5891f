"""Short English passages about invented people, towns, companies and events, each with
questions whose answer is a span of the passage (RAG-style reading).

Facts are drawn at random and sentences are shuffled and paraphrased, so the only way to
answer is to read the passage given with the question.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from . import vocab as V


@dataclass(frozen=True)
class Passage:
    """A passage, its title, and (question, answer) pairs answered by spans of it."""

    title: str
    text: str
    qa: tuple[tuple[str, str], ...]


def person_name(rng: random.Random) -> str:
    return f"{rng.choice(V.FIRST_NAMES)} {rng.choice(V.LAST_NAMES)}"


def company_name(rng: random.Random) -> str:
    stem = "".join(rng.choice(V.SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()
    return f"{stem} {rng.choice(V.COMPANY_SUFFIXES)}"


def town_name(rng: random.Random) -> str:
    stem = "".join(rng.choice(V.SYLLABLES) for _ in range(rng.randint(2, 3)))
    return stem.capitalize() + rng.choice(("ton", "ford", "by", "ville", "burg", "mouth", ""))


_Fact = tuple[str, list[tuple[str, str]]]


def _pick(rng: random.Random, options: list[_Fact], k: int) -> list[_Fact]:
    return rng.sample(options, k=min(k, len(options)))


def _person(rng: random.Random) -> Passage:
    name = person_name(rng)
    first = name.split()[0]
    he = rng.choice(("He", "She", "They"))
    verb_s = he != "They"
    his = {"He": "His", "She": "Her", "They": "Their"}[he]
    lives, was, has, works = (
        ("lives", "was", "has", "works") if verb_s else ("live", "were", "have", "work")
    )
    job, city, year = rng.choice(V.OCCUPATIONS), rng.choice(V.CITIES), rng.randint(1940, 2010)
    animal, pet, colour = rng.choice(V.ANIMALS), rng.choice(V.PET_NAMES), rng.choice(V.COLOURS)
    company, instrument, food = company_name(rng), rng.choice(V.INSTRUMENTS), rng.choice(V.FOODS)
    sport = rng.choice(V.SPORTS)
    art = "an" if job[0] in "aeiou" else "a"
    facts: list[_Fact] = [
        (
            rng.choice(
                (
                    f"{he} {lives} in {city}.",
                    f"{he} {lives} in the city of {city}.",
                    f"These days {first} lives in {city}.",
                )
            ),
            [
                (f"Where does {name} live?", city),
                (f"In which city does {first} live?", city),
                (f"What city is {name}'s home?", city),
            ],
        ),
        (
            rng.choice((f"{he} {was} born in {year}.", f"{first} was born in the year {year}.")),
            [(f"When was {name} born?", str(year)), (f"In what year was {first} born?", str(year))],
        ),
        (
            rng.choice(
                (f"{he} {has} a {animal} named {pet}.", f"{first}'s {animal} is called {pet}.")
            ),
            [
                (f"What is the name of {name}'s {animal}?", pet),
                (f"What is {first}'s {animal} called?", pet),
                (f"What kind of pet does {first} have?", animal),
            ],
        ),
        (
            rng.choice(
                (f"{his} favourite colour is {colour}.", f"{first} loves the colour {colour}.")
            ),
            [
                (f"What is {name}'s favourite colour?", colour),
                (f"Which colour does {first} like best?", colour),
            ],
        ),
        (
            rng.choice((f"{he} {works} at {company}.", f"{first} has a job at {company}.")),
            [
                (f"Where does {name} work?", company),
                (f"Which company does {first} work for?", company),
            ],
        ),
        (
            f"In the evenings {first} plays the {instrument}.",
            [
                (f"Which instrument does {name} play?", instrument),
                (f"What does {first} play in the evenings?", f"the {instrument}"),
            ],
        ),
        (
            rng.choice((f"{his} favourite food is {food}.", f"{first} likes to cook {food}.")),
            [(f"What food does {name} like?", food)],
        ),
        (
            f"At the weekend {first} enjoys {sport}.",
            [(f"What does {name} enjoy at the weekend?", sport)],
        ),
    ]
    opening = rng.choice(
        (
            f"{name} is {art} {job}.",
            f"{name} works as {art} {job}.",
            f"{name} is {art} {job} by trade.",
        )
    )
    chosen = _pick(rng, facts, rng.randint(3, 6))
    sentences = [opening] + [s for s, _ in chosen]
    qa = [(f"What is {name}'s job?", job), (f"What does {first} do for a living?", f"{art} {job}")]
    for _, qs in chosen:
        qa.extend(qs)
    return Passage(name, " ".join(sentences), tuple(qa))


def _town(rng: random.Random) -> Passage:
    town, river = town_name(rng), rng.choice(V.RIVERS)
    pop = rng.choice((rng.randint(800, 9999), rng.randint(10, 999) * 100))
    mayor, famous, month = person_name(rng), rng.choice(V.FAMOUS_FOR), rng.choice(V.MONTHS)
    founded = rng.randint(1100, 1950)
    facts = [
        (
            f"{town} lies on the {river} River.",
            [(f"Which river does {town} lie on?", f"the {river} River")],
        ),
        (
            rng.choice(
                (f"It has a population of {pop} people.", f"About {pop} people live in {town}.")
            ),
            [
                (f"What is the population of {town}?", str(pop)),
                (f"How many people live in {town}?", str(pop)),
            ],
        ),
        (f"The mayor of {town} is {mayor}.", [(f"Who is the mayor of {town}?", mayor)]),
        (f"{town} is famous for its {famous}.", [(f"What is {town} famous for?", f"its {famous}")]),
        (
            f"Every {month} the town holds a market.",
            [(f"In which month does {town} hold its market?", month)],
        ),
        (f"The town was founded in {founded}.", [(f"When was {town} founded?", str(founded))]),
    ]
    chosen = _pick(rng, facts, rng.randint(3, 5))
    qa = [q for _, qs in chosen for q in qs]
    opening = rng.choice((f"{town} is a small town.", f"{town} is a quiet town in the hills."))
    return Passage(town, " ".join([opening] + [s for s, _ in chosen]), tuple(qa))


def _company(rng: random.Random) -> Passage:
    name, founder, city = company_name(rng), person_name(rng), rng.choice(V.CITIES)
    year, staff, product = rng.randint(1900, 2022), rng.randint(12, 9000), rng.choice(V.PRODUCTS)
    ceo = person_name(rng)
    facts = [
        (
            rng.choice((f"{name} was founded in {year}.", f"The company was started in {year}.")),
            [(f"When was {name} founded?", str(year))],
        ),
        (f"It was founded by {founder}.", [(f"Who founded {name}?", founder)]),
        (
            rng.choice((f"Its headquarters are in {city}.", f"{name} is based in {city}.")),
            [
                (f"Where is {name} based?", city),
                (f"In which city are the headquarters of {name}?", city),
            ],
        ),
        (f"The company makes {product}.", [(f"What does {name} make?", product)]),
        (f"{name} employs {staff} people.", [(f"How many people does {name} employ?", str(staff))]),
        (f"Its chief executive is {ceo}.", [(f"Who is the chief executive of {name}?", ceo)]),
    ]
    chosen = _pick(rng, facts, rng.randint(3, 5))
    qa = [q for _, qs in chosen for q in qs]
    intro = rng.choice((f"{name} is a company.", f"This is about {name}."))
    return Passage(name, " ".join([intro] + [s for s, _ in chosen]), tuple(qa))


def _event(rng: random.Random) -> Passage:
    word = rng.choice(V.WORDS).capitalize()
    name = f"the {word} Festival"
    city, month, day = rng.choice(V.CITIES), rng.choice(V.MONTHS), rng.choice(V.WEEKDAYS)
    visitors, organiser, price = rng.randint(200, 90000), person_name(rng), rng.randint(2, 90)
    facts = [
        (f"{name.capitalize()} takes place in {city}.", [(f"Where does {name} take place?", city)]),
        (f"It is held every year in {month}.", [(f"In which month is {name} held?", month)]),
        (f"It always opens on a {day}.", [(f"On which day does {name} open?", day)]),
        (
            f"Last year it had {visitors} visitors.",
            [(f"How many visitors did {name} have last year?", str(visitors))],
        ),
        (f"The festival is organised by {organiser}.", [(f"Who organises {name}?", organiser)]),
        (
            f"A ticket costs {price} euros.",
            [(f"How much does a ticket to {name} cost?", f"{price} euros")],
        ),
    ]
    chosen = [facts[0], *_pick(rng, facts[1:], rng.randint(2, 4))]
    qa = [q for _, qs in chosen for q in qs]
    return Passage(name, " ".join(s for s, _ in chosen), tuple(qa))


def _topic(rng: random.Random) -> Passage:
    topic, author, year = rng.choice(V.TOPICS), person_name(rng), rng.randint(1950, 2024)
    pages, colour = rng.randint(40, 900), rng.choice(V.COLOURS)
    title = (
        f"{rng.choice(('A Short Guide to', 'Notes on', 'The Story of', 'Thinking about'))} {topic}"
    )
    facts = [
        (f'The book "{title}" was written by {author}.', [(f'Who wrote "{title}"?', author)]),
        (f"It was published in {year}.", [(f'When was "{title}" published?', str(year))]),
        (f"It has {pages} pages.", [(f'How many pages does "{title}" have?', str(pages))]),
        (f"Its cover is {colour}.", [(f'What colour is the cover of "{title}"?', colour)]),
        (f"The book is about {topic}.", [(f'What is "{title}" about?', topic)]),
    ]
    chosen = [facts[0], *_pick(rng, facts[1:], rng.randint(2, 4))]
    qa = [q for _, qs in chosen for q in qs]
    return Passage(title, " ".join(s for s, _ in chosen), tuple(qa))


_KINDS = (_person, _person, _town, _company, _event, _topic)


def passage(rng: random.Random) -> Passage:
    """One random passage with its questions."""
    return rng.choice(_KINDS)(rng)
