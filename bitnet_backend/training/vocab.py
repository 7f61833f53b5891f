"""Word lists the data generators draw from (written for this project; public domain, CC0).

Every example the default model is trained and evaluated on is assembled from these lists by
seeded generators, so the whole training set is reproducible from one seed and ships with the
code. Names, cities and numbers are interchangeable fillers: the tasks are reading and copying,
not memorising facts about them.
"""

from __future__ import annotations

FIRST_NAMES = (
    "Ada Alan Alice Amara Anna Arjun Aya Bea Ben Boris Carla Chen Clara Dara David Diego Dina "
    "Elena Eli Emil Emma Ezra Farah Felix Finn Gina Greta Hana Hugo Ida Igor Ines Ivan Jada Jai "
    "James Jana Jonas Julia Kai Kamal Kara Kenji Lara Leo Lena Liam Lina Luca Lucy Maya Mara "
    "Marco Maria Mateo Mei Mila Milo Nadia Nate Nia Nico Nina Noah Nora Omar Oscar Owen Paula "
    "Pedro Priya Quinn Rafa Rania Ravi Rosa Ruth Sam Sara Sean Selma Sofia Tara Teo Theo Tom "
    "Uma Vera Victor Wen Yara Yusuf Zara Zoe"
).split()
LAST_NAMES = (
    "Abbott Adler Alvarez Baker Barros Bauer Berg Blake Brandt Brooks Castro Chang Costa Cruz "
    "Dalton Diaz Duval Ekström Engel Evans Falk Fischer Flores Ford Garcia Grant Gupta Haas Hale "
    "Hayes Horvat Ibsen Ito Jansen Jones Kahn Kato Keller Khan Klein Kovacs Kumar Lang Larsen "
    "Lewis Lind Lopez Marsh Meyer Moreau Morris Nagy Nair Novak Olsen Ortiz Park Patel Perez "
    "Quinn Reyes Rossi Ruiz Sato Schmidt Shaw Silva Singh Stone Suzuki Torres Tran Vogel Wagner "
    "Walsh Weber Wong Young Zhang Ziegler"
).split()
CITIES = (
    "Accra Amsterdam Athens Austin Bangkok Barcelona Berlin Bogota Boston Brisbane Brussels "
    "Budapest Cairo Calgary Chicago Copenhagen Dakar Delhi Denver Dublin Edinburgh Florence "
    "Geneva Glasgow Hamburg Hanoi Helsinki Istanbul Jakarta Kyoto Lagos Lima Lisbon London "
    "Lyon Madrid Manila Marseille Melbourne Miami Milan Montreal Mumbai Munich Nairobi Naples "
    "Oslo Ottawa Paris Perth Porto Prague Quito Riga Rome Santiago Seattle Seoul Seville "
    "Singapore Sofia Stockholm Sydney Taipei Tallinn Tokyo Toronto Tunis Turin Valencia Vienna "
    "Vilnius Warsaw Wellington Zagreb Zurich"
).split()
CITY_ALIASES = {"SF": "San Francisco", "NYC": "New York", "LA": "Los Angeles"}
MULTIWORD_CITIES = ("San Francisco", "New York", "Los Angeles", "Buenos Aires", "Cape Town")
COUNTRY_CAPITALS = {
    "France": "Paris",
    "Germany": "Berlin",
    "Italy": "Rome",
    "Spain": "Madrid",
    "Portugal": "Lisbon",
    "Japan": "Tokyo",
    "China": "Beijing",
    "India": "New Delhi",
    "Egypt": "Cairo",
    "Kenya": "Nairobi",
    "Canada": "Ottawa",
    "Mexico": "Mexico City",
    "Brazil": "Brasilia",
    "Argentina": "Buenos Aires",
    "Peru": "Lima",
    "Norway": "Oslo",
    "Sweden": "Stockholm",
    "Finland": "Helsinki",
    "Denmark": "Copenhagen",
    "Poland": "Warsaw",
    "Greece": "Athens",
    "Austria": "Vienna",
    "Ireland": "Dublin",
    "Australia": "Canberra",
    "Russia": "Moscow",
    "Turkey": "Ankara",
    "Thailand": "Bangkok",
    "South Korea": "Seoul",
    "Vietnam": "Hanoi",
    "the United Kingdom": "London",
    "the United States": "Washington",
    "the Netherlands": "Amsterdam",
    "Belgium": "Brussels",
    "Switzerland": "Bern",
    "Hungary": "Budapest",
    "Czechia": "Prague",
    "Nigeria": "Abuja",
    "Ghana": "Accra",
    "Chile": "Santiago",
    "Colombia": "Bogota",
}
OCCUPATIONS = (
    "baker teacher nurse pilot carpenter chemist librarian photographer architect farmer "
    "journalist dentist engineer painter musician gardener lawyer chef plumber translator "
    "designer mechanic pharmacist surveyor tailor potter biologist programmer electrician "
    "firefighter geologist historian jeweller locksmith sculptor veterinarian"
).split()
COLOURS = "red blue green yellow orange purple black white grey brown pink teal".split()
ANIMALS = "dog cat parrot rabbit horse tortoise hamster goldfish goat pony ferret".split()
PET_NAMES = (
    "Biscuit Pepper Coco Max Luna Rocky Daisy Ziggy Mochi Pip Olive Bruno Juniper Nugget Kiwi "
    "Sunny Pickles Maple Shadow Waffles Ginger Bean Pebble Sprout Clover"
).split()
INSTRUMENTS = "piano violin guitar flute cello drums trumpet harp clarinet banjo".split()
SPORTS = "tennis chess swimming cycling football rowing climbing running sailing judo".split()
FOODS = "pasta soup curry dumplings pancakes tacos salad sushi risotto stew".split()
MONTHS = (
    "January February March April May June July August September October November December"
).split()
WEEKDAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
RIVERS = "Amber Silver Elm Willow Stone Swift Blue Crane Fox Linden Heron Otter".split()
PRODUCTS = (
    "bicycles lamps kettles backpacks telescopes chairs umbrellas headphones tents boots "
    "watches pianos scooters cameras notebooks sails"
).split()
FAMOUS_FOR = (
    "cheese glass bridges pottery tulips festivals lanterns honey wool clocks bread boats"
).split()
SYLLABLES = (
    "ka lo mi ra ven tor sel dun bri mar zo qua fen lux nor pel tri vel ash cor dal"
).split()
COMPANY_SUFFIXES = ("Labs", "Systems", "Works", "Group", "Industries", "Foods", "Motors", "Co")
OPPOSITES = {
    "hot": "cold",
    "big": "small",
    "fast": "slow",
    "up": "down",
    "happy": "sad",
    "light": "dark",
    "early": "late",
    "old": "new",
    "open": "closed",
    "full": "empty",
    "high": "low",
    "wet": "dry",
    "hard": "soft",
    "loud": "quiet",
    "long": "short",
    "rich": "poor",
    "strong": "weak",
    "near": "far",
    "first": "last",
    "win": "lose",
}
NUMBER_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty"
).split()
# Nouns and verbs for invented tools: names the model never saw as words in a fixed role.
TOOL_VERBS = (
    "get fetch find lookup compute calculate check count list search query read estimate "
    "measure convert resolve score rank validate summarize locate"
).split()
TOOL_NOUNS = (
    "weather forecast temperature price stock balance order invoice ticket flight hotel "
    "population distance score rating recipe movie book song word definition synonym "
    "timezone holiday exchange_rate shipping_cost battery_level air_quality tide elevation "
    "calories discount inventory account user profile package delivery route traffic menu "
    "meeting reminder playlist grade salary tax rent humidity wind_speed sunrise sunset"
).split()
TOPICS = (
    "solar panels|ancient Rome|black holes|coral reefs|jazz music|the history of tea|"
    "electric cars|honey bees|volcanoes|machine learning|the Silk Road|mountain gorillas|"
    "quantum computing|the Olympic Games|renewable energy|deep sea fish|medieval castles|"
    "climate change|the printing press|rainforests|space telescopes|origami|chess openings"
).split("|")
WORDS = (
    "apple river garden window candle mountain pencil rocket harbor lantern meadow puzzle "
    "violet thunder compass marble orchard feather island blanket mirror ladder anchor "
    "kettle basket canyon glacier meteor saddle tunnel velvet walnut"
).split()
EMAIL_DOMAINS = ("example.com", "mail.org", "company.net", "school.edu")
CURRENCIES = ("USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "SEK", "INR", "BRL")
STOCK_SYMBOLS = ("AAPL", "MSFT", "GOOG", "AMZN", "TSLA", "NVDA", "IBM", "ORCL", "SAP", "INTC")
LANGUAGES = ("French", "Spanish", "German", "Italian", "Japanese", "Portuguese", "Dutch")
CONDITIONS = ("sunny", "cloudy", "rainy", "windy", "foggy", "snowy", "clear", "stormy")
