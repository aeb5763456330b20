"""The small template language every phrase bank is written in.

A bank entry is one sentence (or clause) with two kinds of holes:

- ``[a|b|c]`` picks one alternative at random; an empty alternative makes the
  part optional (``[really |]``). Alternatives nest: ``[so [very |]tired|drained]``.
- ``{slot}`` is filled from :data:`~psy_agents_noaug.data.corpus.slots.SLOTS`
  (whose values are templates themselves, so they can hold holes too).

Writing banks this way keeps each entry one readable idea while it still
yields many surface forms. Some slots are *sticky* (a post keeps one pet,
one job, one partner), and person slots bind pronouns (``{he}``, ``{his}``
…) until the next person is named or a new sentence starts fresh, so
"my sister … her breakup" agrees, within a sentence and across the
sentences of a short story.

Templates are parsed once and cached; rendering is a walk over the parsed
parts with the post's random generator, so output is deterministic.

Example:
    >>> import random
    >>> text = render("I [really |]like {pet}s", random.Random(0), Persona())
    >>> text.startswith("I ") and text.endswith("s")
    True
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import cache

from psy_agents_noaug.data.corpus.slots import PEOPLE, SLOTS, STICKY, Person


@dataclass(frozen=True)
class _Choice:
    options: tuple[tuple[_Part, ...], ...]


@dataclass(frozen=True)
class _Slot:
    name: str


_Part = str | _Choice | _Slot

_PRONOUNS = ("he", "him", "his", "himself")


@dataclass
class Persona:
    """What stays the same across one post: sticky slot values and people's genders.

    Attributes:
        values: Sticky slot name -> the value this post uses.
        genders: Person noun -> "m" or "f", so one roommate keeps one pronoun.
        pronouns: The pronoun forms bound by the last person named.
    """

    values: dict[str, str] = field(default_factory=dict)
    genders: dict[str, str] = field(default_factory=dict)
    pronouns: dict[str, str] = field(default_factory=dict)


def render(template: str, rng: random.Random, persona: Persona, *, fresh: bool = True) -> str:
    """Fill every ``[a|b]`` choice and ``{slot}`` of ``template``.

    Args:
        template: A bank entry in the template language.
        rng: The post's random generator.
        persona: The post's sticky choices; updated in place.
        fresh: Forget the pronouns of people named before (a new sentence about
            someone new); ``False`` continues a story about the same person.

    Returns:
        The filled text.

    Raises:
        KeyError: The template names a slot that does not exist (a bank bug).
    """
    if fresh:
        persona.pronouns = {}
    return _render_parts(_parse(template), rng, persona)


def _render_parts(parts: tuple[_Part, ...], rng: random.Random, persona: Persona) -> str:
    out: list[str] = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
        elif isinstance(part, _Choice):
            out.append(_render_parts(rng.choice(part.options), rng, persona))
        else:
            out.append(_fill_slot(part.name, rng, persona))
    return "".join(out)


def _fill_slot(name: str, rng: random.Random, persona: Persona) -> str:
    if name in _PRONOUNS:
        if not persona.pronouns:
            raise KeyError(f"pronoun {{{name}}} used before any person slot")
        return persona.pronouns[name]
    if name in PEOPLE:
        return _name_person(name, rng, persona)
    if name in STICKY and name in persona.values:
        return persona.values[name]
    value = _render_parts(_parse(rng.choice(SLOTS[name])), rng, persona)
    if name in STICKY:
        persona.values[name] = value
    return value


def _name_person(name: str, rng: random.Random, persona: Persona) -> str:
    key = f"person:{name}"
    if name in STICKY and key in persona.values:
        noun = persona.values[key]
    else:
        noun = _pick_person(PEOPLE[name], rng).noun
        if name in STICKY:
            persona.values[key] = noun
    person = next(p for p in PEOPLE[name] if p.noun == noun)
    gender = person.gender or persona.genders.get(noun) or rng.choice("mf")
    persona.genders[noun] = gender
    forms = ("he", "him", "his", "himself") if gender == "m" else ("she", "her", "her", "herself")
    persona.pronouns = dict(zip(_PRONOUNS, forms, strict=True))
    return noun


def _pick_person(people: tuple[Person, ...], rng: random.Random) -> Person:
    return rng.choice(people)


@cache
def _parse(template: str) -> tuple[_Part, ...]:
    parts, end = _parse_seq(template, 0, top=True)
    if end != len(template):
        raise ValueError(f"unbalanced ']' in template {template!r}")
    return parts


def _parse_seq(text: str, pos: int, *, top: bool) -> tuple[tuple[_Part, ...], int]:
    """Parse until the end (top level) or until the ``|``/``]`` that ends an alternative."""
    parts: list[_Part] = []
    literal: list[str] = []
    while pos < len(text):
        char = text[pos]
        if char == "[":
            if literal:
                parts.append("".join(literal))
                literal = []
            choice, pos = _parse_choice(text, pos + 1)
            parts.append(choice)
            continue
        if char == "{":
            close = text.index("}", pos)
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(_Slot(text[pos + 1 : close]))
            pos = close + 1
            continue
        if char in "|]":
            if top:
                raise ValueError(f"stray {char!r} in template {text!r}")
            break
        literal.append(char)
        pos += 1
    if literal:
        parts.append("".join(literal))
    return tuple(parts), pos


def _parse_choice(text: str, pos: int) -> tuple[_Choice, int]:
    options: list[tuple[_Part, ...]] = []
    while True:
        if pos >= len(text):
            raise ValueError(f"unclosed '[' in template {text!r}")
        option, pos = _parse_seq(text, pos, top=False)
        options.append(option)
        if pos >= len(text):
            raise ValueError(f"unclosed '[' in template {text!r}")
        if text[pos] == "]":
            return _Choice(tuple(options)), pos + 1
        pos += 1  # skip "|"
