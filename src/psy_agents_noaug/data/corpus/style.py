"""How people type: casing, apostrophes, typos, hedges, shorthand, paragraphs, emoji.

Each post gets one :class:`Style` (a register: tidy, casual, all
lowercase, a wall of text, typed on a phone, formal) and every sentence of
the post goes through it, evidence and filler alike, so the way a post is
typed says nothing about its labels. A transform never touches sentence
punctuation, so a sentence stays one sentence.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Style:
    """One register of writing; the rates are per sentence unless stated.

    Attributes:
        name: Short name of the register.
        capitalize: Probability a sentence starts with a capital letter.
        lower_all: Type everything in lowercase (``i``, names, all of it).
        lower_i: Probability a post writes the pronoun as ``i``.
        drop_apostrophes: Per contraction: ``don't`` -> ``dont``.
        expand_contractions: Per contraction: ``can't`` -> ``cannot`` (formal writers).
        typo_rate: Per word of four letters or more.
        hedge_rate: An ``idk`` / ``i guess`` / ``tbh`` added at one end.
        shorthand_rate: Per eligible phrase: ``because`` -> ``bc``, ``right now`` -> ``rn``.
        emphasis_rate: One word in capitals ("SO", "NEVER").
        exclaim_rate: A sentence ends in ``!``.
        ellipsis_rate: A sentence ends in ``...``.
        paragraph_rate: Probability a new block of the post starts a paragraph.
        single_newline: Paragraphs are separated by one newline, not a blank line.
        bare_end_rate: The last sentence of a paragraph has no final punctuation.
        emoji_rate: Per paragraph end (only on bare ends).
    """

    name: str
    capitalize: float
    lower_all: bool
    lower_i: float
    drop_apostrophes: float
    expand_contractions: float
    typo_rate: float
    hedge_rate: float
    shorthand_rate: float
    emphasis_rate: float
    exclaim_rate: float
    ellipsis_rate: float
    paragraph_rate: float
    single_newline: bool
    bare_end_rate: float
    emoji_rate: float


STYLES: tuple[tuple[float, Style], ...] = (
    (
        0.22,
        Style(
            "tidy",
            1.0,
            False,
            0.0,
            0.0,
            0.0,
            0.002,
            0.03,
            0.0,
            0.0,
            0.02,
            0.01,
            0.65,
            False,
            0.0,
            0.0,
        ),
    ),
    (
        0.28,
        Style(
            "casual",
            0.85,
            False,
            0.15,
            0.2,
            0.0,
            0.006,
            0.10,
            0.06,
            0.02,
            0.04,
            0.04,
            0.45,
            False,
            0.12,
            0.05,
        ),
    ),
    (
        0.18,
        Style(
            "lowercase",
            0.0,
            True,
            1.0,
            0.65,
            0.0,
            0.012,
            0.18,
            0.25,
            0.03,
            0.02,
            0.07,
            0.35,
            False,
            0.4,
            0.08,
        ),
    ),
    (
        0.12,
        Style(
            "wall",
            0.7,
            False,
            0.2,
            0.3,
            0.0,
            0.01,
            0.12,
            0.12,
            0.02,
            0.02,
            0.03,
            0.0,
            False,
            0.0,
            0.0,
        ),
    ),
    (
        0.12,
        Style(
            "mobile",
            0.95,
            False,
            0.0,
            0.05,
            0.0,
            0.02,
            0.10,
            0.08,
            0.02,
            0.05,
            0.03,
            0.6,
            True,
            0.2,
            0.1,
        ),
    ),
    (
        0.08,
        Style(
            "formal",
            1.0,
            False,
            0.0,
            0.0,
            0.6,
            0.001,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.7,
            False,
            0.0,
            0.0,
        ),
    ),
)
"""Registers and how often a post is written in each."""

HEDGE_PREFIXES: tuple[str, ...] = (
    "idk ",
    "I guess ",
    "honestly ",
    "tbh ",
    "like ",
    "I mean ",
    "ngl ",
    "kinda weird but ",
)
HEDGE_SUFFIXES: tuple[str, ...] = (
    ", I guess",
    ", idk",
    " tbh",
    " or whatever",
    " lol",
    " haha",
    ", I think",
    " I suppose",
    ", kinda",
    " ig",
)
EMOJI: tuple[str, ...] = ("🙃", "😩", "😭", "🥲", "😅", "🫠", "💀", ":(", ":/", "ugh", "lol")

_SHORTHAND: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...] = tuple(
    (re.compile(rf"\b{phrase}\b"), forms)
    for phrase, forms in (
        ("because", ("bc", "cause", "cuz", "because")),
        ("right now", ("rn",)),
        ("to be honest", ("tbh",)),
        ("I don't know", ("idk", "I dunno")),
        ("though", ("tho",)),
        ("probably", ("prob", "prolly")),
        ("something", ("smth", "somethin")),
        ("people", ("ppl",)),
        ("going to (?=be|get|have|try|do|say|tell|ask|need|make|take|lose|fail)", ("gonna ",)),
        ("want to (?=be|get|have|try|do|say|tell|ask|go|make|die|disappear)", ("wanna ",)),
        ("kind of", ("kinda",)),
        ("sort of", ("sorta",)),
        ("okay", ("ok", "k")),
        ("you", ("u",)),
        ("your", ("ur",)),
        ("with", ("w",)),
        ("really", ("rly", "realy", "really really")),
        ("tomorrow", ("tmrw",)),
        ("and", ("&", "n")),
        ("minutes", ("mins",)),
        ("about", ("abt",)),
    )
)
_EXPANSIONS: dict[str, str] = {
    "I'm": "I am",
    "can't": "cannot",
    "don't": "do not",
    "won't": "will not",
    "I've": "I have",
    "isn't": "is not",
    "doesn't": "does not",
    "didn't": "did not",
    "haven't": "have not",
    "I'll": "I will",
    "wasn't": "was not",
    "wouldn't": "would not",
    "couldn't": "could not",
    "aren't": "are not",
    "we're": "we are",
    "they're": "they are",
    "you're": "you are",
    "hasn't": "has not",
}
_CONTRACTION = re.compile(r"\b([A-Za-z]+)'([A-Za-z]+)\b")
_MISSPELLINGS: dict[str, str] = {
    "definitely": "definately",
    "because": "becuase",
    "really": "realy",
    "separate": "seperate",
    "tomorrow": "tommorow",
    "weird": "wierd",
    "believe": "beleive",
    "probably": "probly",
    "their": "thier",
    "friend": "freind",
    "friends": "freinds",
    "until": "untill",
    "which": "wich",
    "actually": "actualy",
    "basically": "basicly",
    "literally": "literaly",
    "embarrassing": "embarassing",
    "whether": "wether",
    "going": "goign",
    "anything": "anythign",
    "something": "somethign",
    "though": "thought",
    "than": "then",
    "lose": "loose",
    "apartment": "appartment",
    "therapist": "therapits",
    "schedule": "schedual",
}
_EMPHASIS = re.compile(r"\b(so|really|never|always|every|nothing|anything|all|hate|need|just)\b")
_LED = tuple(
    p.lower().strip(" ,")
    for p in (
        *HEDGE_PREFIXES,
        "so",
        "ok",
        "also",
        "and",
        "plus",
        "but",
        "to be honest",
        "not gonna",
    )
)
_WORD = re.compile(r"[A-Za-z]{4,}")
_PRONOUN_I = re.compile(r"\bI\b")


def pick_style(rng: random.Random) -> Style:
    """Draw the register a post is written in."""
    weights = [w for w, _ in STYLES]
    return rng.choices([s for _, s in STYLES], weights=weights)[0]


@dataclass(frozen=True)
class Voice:
    """A :class:`Style` plus the per-post choices it implies (does this writer type ``i``?)."""

    style: Style
    lower_i: bool

    @classmethod
    def draw(cls, rng: random.Random) -> Voice:
        style = pick_style(rng)
        return cls(style, rng.random() < style.lower_i)


def stylize(text: str, voice: Voice, rng: random.Random) -> str:
    """Type one sentence in ``voice`` (no final punctuation is added here).

    Args:
        text: The sentence as the banks write it, in sentence case, maybe ending in ``?``.
        voice: The post's voice.
        rng: The post's random generator.

    Returns:
        The typed sentence; it has no new sentence boundaries inside.
    """
    style = voice.style
    text = _tidy(text)
    if rng.random() < style.hedge_rate:
        text = _hedge(text, rng)
    if style.shorthand_rate:
        text = _shorthand(text, style.shorthand_rate, rng)
    if style.expand_contractions:
        text = _CONTRACTION.sub(
            lambda m: (
                _EXPANSIONS.get(m.group(0), m.group(0))
                if rng.random() < style.expand_contractions
                else m.group(0)
            ),
            text,
        )
    if style.drop_apostrophes:
        text = _CONTRACTION.sub(
            lambda m: (
                m.group(1) + m.group(2) if rng.random() < style.drop_apostrophes else m.group(0)
            ),
            text,
        )
    if style.typo_rate:
        text = _WORD.sub(lambda m: _typo(m.group(0), style.typo_rate, rng), text)
    text = _case(text, voice, rng)
    if style.emphasis_rate and rng.random() < style.emphasis_rate:
        hits = list(_EMPHASIS.finditer(text))
        if hits:
            hit = rng.choice(hits)
            text = text[: hit.start()] + hit.group(0).upper() + text[hit.end() :]
    return text


def end_mark(text: str, voice: Voice, rng: random.Random, *, paragraph_end: bool) -> str:
    """The sentence with its final punctuation (or, at a paragraph end, maybe none).

    A sentence without final punctuation only ever ends a paragraph, where
    the newline ends it; that keeps every sentence findable by a splitter.
    """
    style = voice.style
    if paragraph_end and not text.endswith(("?", "!")) and rng.random() < style.bare_end_rate:
        if rng.random() < style.emoji_rate / max(style.bare_end_rate, 1e-9):
            return f"{text} {rng.choice(EMOJI)}"
        return text
    if text.endswith("?"):
        return text + "?" if rng.random() < style.exclaim_rate else text
    if text.endswith("!"):
        return text
    roll = rng.random()
    if roll < style.exclaim_rate:
        return text + "!"
    if roll < style.exclaim_rate + style.ellipsis_rate:
        return text + "..."
    return text + "."


def _hedge(text: str, rng: random.Random) -> str:
    """Add an "idk" / ", I guess" at the end that does not already have one."""
    lowered = text.lower()
    led = lowered.startswith(_LED)
    trailed = lowered.endswith(("?", "!", "lol", "haha", "idk", "tbh", ")"))
    if not led and (trailed or rng.random() < 0.5):
        return rng.choice(HEDGE_PREFIXES) + text
    if not trailed:
        return text + rng.choice(HEDGE_SUFFIXES)
    return text


def _tidy(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+([,?!])", r"\1", text)
    text = re.sub(r",(?=[,?!]|$)", "", text)
    return text.rstrip(",; ")


def _shorthand(text: str, rate: float, rng: random.Random) -> str:
    for pattern, forms in _SHORTHAND:
        if pattern.search(text) and rng.random() < rate:
            text = pattern.sub(rng.choice(forms), text, count=1)
    return text


def _typo(word: str, rate: float, rng: random.Random) -> str:
    if rng.random() >= rate:
        return word
    lower = word.lower()
    if lower in _MISSPELLINGS and word == lower:
        return _MISSPELLINGS[lower]
    i = rng.randrange(1, len(word) - 1)
    kind = rng.randrange(3)
    if kind == 0:  # swap two letters
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == 1:  # drop one
        return word[:i] + word[i + 1 :]
    return word[:i] + word[i] + word[i:]  # double one


def _case(text: str, voice: Voice, rng: random.Random) -> str:
    if voice.style.lower_all:
        return text.lower()
    if voice.lower_i:
        text = _PRONOUN_I.sub("i", text)
    first = text[:1]
    if rng.random() < voice.style.capitalize:
        return first.upper() + text[1:]
    if text[:2] in ("I ", "I'") or text[1:2].isupper():  # "I'm", "TL;DR"
        return text
    return first.lower() + text[1:]
