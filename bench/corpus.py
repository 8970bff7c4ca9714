"""Synthetic but realistic memory passages and questions, generated deterministically (no downloads)."""

from __future__ import annotations

import random
from collections.abc import Iterator

FIRST = [
    "Ada",
    "Bruno",
    "Chiara",
    "Dmitri",
    "Elif",
    "Farah",
    "Gustav",
    "Hana",
    "Ines",
    "Jonas",
    "Kofi",
    "Lena",
    "Mateo",
    "Nadia",
    "Oskar",
    "Priya",
    "Quentin",
    "Rosa",
    "Sven",
    "Tomasz",
    "Uma",
    "Viktor",
    "Wen",
    "Yara",
]
LAST = [
    "Abara",
    "Brandt",
    "Costa",
    "Dufresne",
    "Eriksen",
    "Fontaine",
    "Gallo",
    "Haddad",
    "Ivanova",
    "Jansen",
    "Kowalski",
    "Lindqvist",
    "Moreau",
    "Novak",
    "Okafor",
    "Petrov",
    "Quiroga",
    "Rossi",
    "Sato",
    "Tanaka",
]
CITIES = [
    "Lisbon",
    "Porto",
    "Vienna",
    "Kraków",
    "Ghent",
    "Tallinn",
    "Bologna",
    "Lyon",
    "Bergen",
    "Ljubljana",
    "Seville",
    "Utrecht",
    "Aarhus",
    "Brno",
    "Graz",
    "Nantes",
    "Turku",
    "Cluj",
    "Split",
    "Basel",
]
PROJECTS = [
    "Halvard",
    "Nimbus",
    "Kestrel",
    "Orchid",
    "Basalt",
    "Quill",
    "Marlin",
    "Juniper",
    "Tundra",
    "Sable",
    "Cobalt",
    "Heron",
    "Lumen",
    "Pylon",
    "Saffron",
    "Vesper",
    "Wren",
    "Zephyr",
    "Ember",
    "Fjord",
]
TOPICS = [
    "the quarterly budget",
    "the hiring plan",
    "the API migration",
    "the onboarding guide",
    "vendor contracts",
    "the incident review",
    "the roadmap",
    "the security audit",
    "pricing",
    "the data retention policy",
]
FOODS = [
    "mushroom risotto",
    "lentil soup",
    "grilled sardines",
    "pad thai",
    "shakshuka",
    "pierogi",
    "ramen",
    "falafel wraps",
    "goulash",
    "paella",
]
ALLERGENS = ["shellfish", "peanuts", "gluten", "lactose", "sesame", "kiwi"]
ITEMS = [
    "a blue enamel kettle",
    "noise-cancelling headphones",
    "a standing desk",
    "hiking boots",
    "a cast-iron pan",
    "a mechanical keyboard",
    "a rain jacket",
    "a coffee grinder",
    "a bike lock",
    "a travel adapter",
]
SERVICES = ["billing-api", "auth-gateway", "search-indexer", "mail-relay", "report-worker", "media-cdn"]
FIXES = [
    "raising the connection pool size",
    "rotating the TLS certificate",
    "pinning the driver version",
    "clearing the stale cache",
    "increasing the worker timeout",
    "reverting the schema change",
]
HOBBIES = ["bouldering", "sourdough baking", "birdwatching", "chess", "sea kayaking", "pottery", "trail running"]


def _name(rng: random.Random) -> str:
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def _date(rng: random.Random) -> str:
    return f"{rng.randint(2023, 2026)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def passage(rng: random.Random) -> str:
    kind = rng.randrange(8)
    if kind == 0:
        return (
            f"{_name(rng)} said the Project {rng.choice(PROJECTS)} deadline moved to {_date(rng)}; "
            f"{_name(rng)} will update the plan for {rng.choice(TOPICS)}."
        )
    if kind == 1:
        return (
            f"Bought {rng.choice(ITEMS)} for {rng.randint(12, 480)} EUR in {rng.choice(CITIES)} on {_date(rng)} "
            f"(order {rng.randint(10000, 99999)})."
        )
    if kind == 2:
        return (
            f"{_name(rng)} loves {rng.choice(FOODS)} but is allergic to {rng.choice(ALLERGENS)}; "
            f"remember this when we host dinner."
        )
    if kind == 3:
        return (
            f"Meeting with {_name(rng)} about {rng.choice(TOPICS)}: we decided to revisit it on {_date(rng)} "
            f"and to involve the {rng.choice(PROJECTS)} team."
        )
    if kind == 4:
        return (
            f"Error E{rng.randint(100, 999)} in {rng.choice(SERVICES)} after deploying v{rng.randint(1, 9)}."
            f"{rng.randint(0, 30)}; fixed by {rng.choice(FIXES)}."
        )
    if kind == 5:
        return (
            f"Trip to {rng.choice(CITIES)}: stayed {rng.randint(1, 9)} nights in room {rng.randint(100, 950)}, "
            f"took the train back on {_date(rng)}."
        )
    if kind == 6:
        return (
            f"{_name(rng)} took up {rng.choice(HOBBIES)} this year and recommends a club in "
            f"{rng.choice(CITIES)}; call extension {rng.randint(2000, 7999)} to reach them."
        )
    return (
        f"Note for Project {rng.choice(PROJECTS)}: the {rng.choice(SERVICES)} owner is {_name(rng)}, "
        f"on-call rotation changes every {rng.choice(['Monday', 'Wednesday', 'Friday'])}."
    )


def question(rng: random.Random) -> str:
    kind = rng.randrange(8)
    return [
        lambda: f"When is the Project {rng.choice(PROJECTS)} deadline?",
        lambda: f"What did I buy in {rng.choice(CITIES)}?",
        lambda: f"Which food allergies does {rng.choice(FIRST)} have?",
        lambda: f"What did we decide about {rng.choice(TOPICS)}?",
        lambda: f"How was the {rng.choice(SERVICES)} error fixed?",
        lambda: f"Which room did I stay in during the {rng.choice(CITIES)} trip?",
        lambda: f"Who took up {rng.choice(HOBBIES)}?",
        lambda: f"Who owns {rng.choice(SERVICES)} for Project {rng.choice(PROJECTS)}?",
    ][kind]()


def passages(count: int, seed: int = 7) -> Iterator[str]:
    rng = random.Random(seed)
    seen: set[str] = set()
    while len(seen) < count:
        text = passage(rng)
        if text not in seen:
            seen.add(text)
            yield text


def questions(count: int, seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    return [question(rng) for _ in range(count)]


OPENERS = ["", "btw ", "quick one: ", "so, ", "update: ", "fyi ", "hey, ", "ok so "]
REPLIES = [
    "Got it, I'll keep that in mind: {fact}",
    "Thanks for the update. Want me to set a reminder about {topic}?",
    "Noted. Is there anything else about {topic} I should know?",
    "That makes sense. Last time you mentioned {topic} too; shall we plan the next step?",
    "Sounds good! Let me know how {topic} goes.",
    "Understood. I can draft a short checklist for {topic} if that helps.",
    "Good to know. I'll remember it the next time {topic} comes up.",
]
ASKS = [
    "can you remind me what we said about {topic}?",
    "what's the plan for {topic} again?",
    "any ideas for {topic}?",
    "I keep forgetting the details of {topic}",
]


def chat_turn(rng: random.Random, role: str, previous: str) -> str:
    """A user turn (a fact or a request) or the assistant's reply to `previous`."""
    topic = rng.choice(TOPICS + HOBBIES + [f"the {city} trip" for city in CITIES] + [f"Project {p}" for p in PROJECTS])
    if role == "user":
        if rng.random() < 0.25:
            return rng.choice(OPENERS) + rng.choice(ASKS).format(topic=topic)
        return rng.choice(OPENERS) + passage(rng)
    fact = previous[:80].rstrip() + ("…" if len(previous) > 80 else "")
    return rng.choice(REPLIES).format(topic=topic, fact=fact)


def conversations(count: int, turns: int, seed: int = 5) -> list[list[tuple[str, str]]]:
    """`count` conversations of `turns` (role, text) pairs each, alternating user and assistant."""
    rng = random.Random(seed)
    threads: list[list[tuple[str, str]]] = []
    for _ in range(count):
        thread: list[tuple[str, str]] = []
        previous = ""
        for number in range(turns):
            role = "user" if number % 2 == 0 else "assistant"
            previous = chat_turn(rng, role, previous)
            thread.append((role, previous))
        threads.append(thread)
    return threads
