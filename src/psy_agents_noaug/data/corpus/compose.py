"""Assemble one post from its plan: evidence, hard negatives, filler, framing, style.

A post is built as *blocks* (a few sentences on one thing: a vent about
sleep, two sentences about the landlord, a worry about a sister), laid out
in paragraphs and typed in the post's voice. Evidence can sit anywhere;
in long posts it often comes late, after the context, the way people
write. Hard negatives for any criterion go in every kind of post.

Each sentence is typed before it is placed, so the post's word count is
exact and every annotation's ``sentence_text`` is the sentence as it
appears. After layout the post is cut with
:func:`~psy_agents_noaug.data.corpus.sentences.split_sentences` and checked
against the sentences written, so an annotation's index always matches.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from psy_agents_noaug.data.corpus import framing, special_cases
from psy_agents_noaug.data.corpus.confusers import TOPIC, ConfuserKind, realize_confuser
from psy_agents_noaug.data.corpus.connectives import FOLLOW_UPS
from psy_agents_noaug.data.corpus.evidence import realize_evidence, realize_tldr
from psy_agents_noaug.data.corpus.filler import COMMENTS, TOPICS, realize_filler, realize_vignette
from psy_agents_noaug.data.corpus.plan import PostPlan
from psy_agents_noaug.data.corpus.sentences import split_sentences
from psy_agents_noaug.data.corpus.style import Voice, end_mark, stylize
from psy_agents_noaug.data.corpus.templates import Persona, render
from psy_agents_noaug.data.criteria import CRITERIA

SYMPTOM_LABELS: tuple[str, ...] = tuple(c.symptom for c in CRITERIA)
SPECIAL_CASE = "SPECIAL_CASE"
SPECIAL_CASE_RATE = 0.03
"""Share of posts with a ``SPECIAL_CASE`` sentence."""

LATE_EVIDENCE_RATE = 0.55
"""Share of long posts (over ``LONG_POST_WORDS``) whose evidence all comes in the last third."""
LONG_POST_WORDS = 250
VIGNETTE_RATE = 0.6
"""Share of neutral blocks told as a short story rather than loose sentences."""
EARLY_EVIDENCE_RATE = 0.3
"""Share of the other posts that open with their evidence."""

# What each theme talks about (topic -> weight); topics not named get their default weight.
_DEFAULT_TOPIC_WEIGHT: dict[str, float] = {
    "weather": 0.4,
    "errands": 0.5,
    "tech": 0.5,
    "commute": 0.6,
    "cooking": 0.7,
    "stress": 1.5,
}
TOPIC_SENTENCE_LIMIT = 5
"""Loose sentences a post says on one topic before it moves on (stories not counted)."""
_TOPIC_WEIGHTS: dict[str, dict[str, float]] = {
    "vent": {"work": 3, "school": 2.5, "family": 2.5, "relationships": 2.5, "housing": 2},
    "support": {"family": 4, "relationships": 4, "friends": 4, "treatment": 2},
    "recovery": {"treatment": 4, "hobbies": 3, "work": 2, "friends": 2},
    "question": {"treatment": 5, "work": 2, "school": 2},
    "life": {"work": 3, "housing": 3, "money": 3, "pets": 2, "games": 2, "hobbies": 2},
}
# Which kinds of hard negative each theme leans on.
_KIND_WEIGHTS: dict[str, dict[ConfuserKind, float]] = {
    "vent": {
        ConfuserKind.NEGATED: 3,
        ConfuserKind.OTHER_PERSON: 2,
        ConfuserKind.PAST_RESOLVED: 1.5,
        ConfuserKind.GENERAL: 1,
        ConfuserKind.ORDINARY: 2.5,
    },
    "support": {
        ConfuserKind.NEGATED: 1,
        ConfuserKind.OTHER_PERSON: 6,
        ConfuserKind.PAST_RESOLVED: 1,
        ConfuserKind.GENERAL: 1.5,
        ConfuserKind.ORDINARY: 1,
    },
    "recovery": {
        ConfuserKind.NEGATED: 2,
        ConfuserKind.OTHER_PERSON: 1,
        ConfuserKind.PAST_RESOLVED: 6,
        ConfuserKind.GENERAL: 1,
        ConfuserKind.ORDINARY: 1,
    },
    "question": {
        ConfuserKind.NEGATED: 2,
        ConfuserKind.OTHER_PERSON: 1,
        ConfuserKind.PAST_RESOLVED: 1,
        ConfuserKind.GENERAL: 5,
        ConfuserKind.ORDINARY: 1,
    },
    "life": {
        ConfuserKind.NEGATED: 2.5,
        ConfuserKind.OTHER_PERSON: 1.5,
        ConfuserKind.PAST_RESOLVED: 1,
        ConfuserKind.GENERAL: 1,
        ConfuserKind.ORDINARY: 5,
    },
}
# Topics a post with this symptom leaves out, so its filler never contradicts its evidence
# ("I've lost interest in everything" next to "I just joined a climbing club").
_EXCLUDED_TOPICS: dict[str, frozenset[str]] = {
    "ANHEDONIA": frozenset({"hobbies", "games"}),
    "FATIGUE": frozenset({"hobbies"}),
    "APPETITE_CHANGE": frozenset({"cooking"}),
}
COMMENT_RATE = 0.1
"""Chance a neutral sentence is followed by an aside ("which, fine")."""
# A positive post's own criterion may also appear in these kinds (about others, in general).
_SAME_CRITERION_KINDS = (ConfuserKind.OTHER_PERSON, ConfuserKind.GENERAL, ConfuserKind.ORDINARY)


@dataclass(frozen=True)
class Label:
    """One annotation of a sentence."""

    symptom: str
    status: int
    explanation: str


@dataclass
class Unit:
    """One typed sentence (without its final punctuation) and its annotations."""

    text: str
    labels: tuple[Label, ...] = ()

    @property
    def words(self) -> int:
        return len(self.text.split())


@dataclass
class Block:
    """Sentences about one thing, kept together; a story is never split or interrupted."""

    units: list[Unit]
    story: bool = False

    @property
    def words(self) -> int:
        return sum(u.words for u in self.units)


@dataclass(frozen=True)
class Annotation:
    """One row of ``annotations.csv`` before the post id is added."""

    sentence_index: int
    sentence_text: str
    symptom: str
    status: int
    explanation: str


@dataclass(frozen=True)
class ComposedPost:
    """A finished post: its text and its sentence annotations."""

    post_id: str
    text: str
    annotations: tuple[Annotation, ...]


@dataclass
class _Writer:
    """The post's random generator, sticky choices and voice, and what it has used."""

    rng: random.Random
    persona: Persona = field(default_factory=Persona)
    voice: Voice | None = None
    used_cores: set[str] = field(default_factory=set)
    used_filler: set[str] = field(default_factory=set)
    facets: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.voice = Voice.draw(self.rng)

    def typed(self, raw: str, *labels: Label) -> Unit:
        assert self.voice is not None
        return Unit(stylize(raw, self.voice, self.rng), labels)

    def evidence(self, symptom: str, *, continuing: bool) -> Unit:
        text, why = realize_evidence(
            symptom,
            self.rng,
            self.persona,
            continuing=continuing,
            avoid=self.used_cores,
            facets_used=self.facets,
        )
        return self.typed(text, Label(symptom, 1, why))

    def double_evidence(self, first: str, second: str, *, continuing: bool) -> Unit:
        """Two symptoms in one run-on sentence: "I can't sleep and my head is fog"."""
        text_a, why_a = realize_evidence(
            first,
            self.rng,
            self.persona,
            continuing=continuing,
            avoid=self.used_cores,
            tail_ok=False,
            facets_used=self.facets,
        )
        text_b, why_b = realize_evidence(
            second,
            self.rng,
            self.persona,
            continuing=True,
            avoid=self.used_cores,
            lead=False,
            facets_used=self.facets,
        )
        joiner = self.rng.choice((", and ", " and ", ", plus ", ", and on top of that "))
        return self.typed(text_a + joiner + text_b, Label(first, 1, why_a), Label(second, 1, why_b))

    def confuser(self, symptom: str, kind: ConfuserKind, *, continuing: bool) -> Unit:
        text, why = realize_confuser(symptom, kind, self.rng, self.persona, continuing=continuing)
        return self.typed(text, Label(symptom, 0, why))

    def filler(self, topic: str, *, continuing: bool) -> Unit:
        for _ in range(4):  # the same fact twice in one post reads like a bug
            text = realize_filler(
                topic, self.rng, self.persona, continuing=continuing, used=self.used_filler
            )
            if text.lower() not in self.used_filler:
                break
        self.used_filler.add(text.lower())
        return self.typed(text)

    def vignette(self, topic: str) -> list[Unit] | None:
        lines = realize_vignette(topic, self.rng, self.persona, self.used_filler)
        if lines is None or any(line.lower() in self.used_filler for line in lines):
            return None
        self.used_filler.update(line.lower() for line in lines)
        return [self.typed(line) for line in lines]

    def pick(self, bank: tuple[str, ...]) -> Unit:
        return self.typed(render(self.rng.choice(bank), self.rng, self.persona))


def compose_post(plan: PostPlan, rng: random.Random) -> ComposedPost:
    """Write one post.

    Args:
        plan: What the post must contain and how long it should be.
        rng: The post's own random generator.

    Returns:
        The post text and its annotations.

    Raises:
        RuntimeError: A written sentence does not come out as one sentence of
            the post (a phrase-bank bug).
    """
    writer = _Writer(rng)
    vents = _vent_blocks(writer, plan)
    confusers = _confusers(writer, plan)
    head, tail = _framing(writer, plan)
    if rng.random() < SPECIAL_CASE_RATE:
        raw = render(rng.choice(special_cases.SPECIAL_CASES), rng, writer.persona)
        label = Label(SPECIAL_CASE, 1, rng.choice(special_cases.EXPLANATIONS))
        confusers.append((writer.typed(raw, label), True))
    fixed = sum(b.words for b in vents) + sum(u.words for u, _ in confusers)
    if fixed + head.words + tail.words > plan.target_words:
        head, tail = Block([]), Block([])  # a short post: no room for openers and sign-offs
    fixed += head.words + tail.words
    fillers = _filler_blocks(writer, plan, plan.target_words - fixed)
    body = _arrange(writer, plan, vents, fillers, confusers)
    blocks = [b for b in (head, *body, tail) if b.units]
    paragraphs = _paragraphs(writer, blocks, tail=tail)
    return _render(writer, plan.post_id, paragraphs)


def _evidence_count(rng: random.Random, target: int) -> int:
    trials = min(8, target // 110)
    return 1 + sum(rng.random() < 0.4 for _ in range(trials))


def _vent_blocks(writer: _Writer, plan: PostPlan) -> list[Block]:
    """Evidence sentences, grouped into blocks of one to three (with the odd follow-up)."""
    rng = writer.rng
    items = [s for s in plan.symptoms for _ in range(_evidence_count(rng, plan.target_words))]
    rng.shuffle(items)
    if rng.random() < 0.5:  # people often finish one symptom before the next
        items.sort(key=plan.symptoms.index)
    blocks: list[Block] = []
    while items:
        size = min(len(items), rng.choice((1, 1, 2, 2, 3)))
        chunk, items = items[:size], items[size:]
        units: list[Unit] = []
        i = 0
        while i < len(chunk):
            if i + 1 < len(chunk) and chunk[i] != chunk[i + 1] and rng.random() < 0.2:
                units.append(writer.double_evidence(chunk[i], chunk[i + 1], continuing=bool(units)))
                i += 2
            else:
                units.append(writer.evidence(chunk[i], continuing=bool(units)))
                i += 1
            if rng.random() < 0.15:
                units.append(writer.pick(FOLLOW_UPS))
        blocks.append(Block(units))
    return blocks


def _confusers(writer: _Writer, plan: PostPlan) -> list[tuple[Unit, bool]]:
    """Hard negatives, each with whether it goes inside another block (else on its own)."""
    rng = writer.rng
    target = plan.target_words
    if plan.symptoms:
        n = sum(rng.random() < 0.35 for _ in range(1 + target // 120))
    else:
        n = 0 if rng.random() < 0.1 else 1 + sum(rng.random() < 0.3 for _ in range(target // 100))
    kinds = list(_KIND_WEIGHTS[plan.theme])
    kind_weights = list(_KIND_WEIGHTS[plan.theme].values())
    others = [s for s in SYMPTOM_LABELS if s not in plan.symptoms]
    out: list[tuple[Unit, bool]] = []
    for _ in range(n):
        if plan.symptoms and rng.random() < 0.15:
            symptom = rng.choice(plan.symptoms)
            kind = rng.choice(_SAME_CRITERION_KINDS)
        else:
            symptom = rng.choice(others)
            kind = rng.choices(kinds, weights=kind_weights)[0]
            if plan.symptoms and symptom == "DEPRESSED_MOOD" and kind is ConfuserKind.NEGATED:
                kind = ConfuserKind.ORDINARY  # "my mood is fine" would contradict any vent
        inside = rng.random() < 0.6
        out.append((writer.confuser(symptom, kind, continuing=inside), inside))
    return out


def _framing(writer: _Writer, plan: PostPlan) -> tuple[Block, Block]:
    """The opening lines (opener, who I am) and the closing ones (question, thanks, tl;dr)."""
    rng = writer.rng
    long_post = plan.target_words > 400
    head = Block([])
    if rng.random() < (0.45 if long_post else 0.25):
        bank = framing.LONG_OPENERS if long_post and rng.random() < 0.4 else framing.OPENERS
        head.units.append(writer.pick(bank))
    if plan.target_words > 40 and rng.random() < 0.35:
        head.units.append(writer.filler("intro", continuing=False))
    tail = Block([])
    if rng.random() < (0.35 if plan.target_words > 40 else 0.15):
        tail.units.append(writer.filler("question", continuing=False))
    if rng.random() < (0.45 if long_post else 0.25):
        bank = framing.LONG_CLOSERS if long_post and rng.random() < 0.5 else framing.CLOSERS
        tail.units.append(writer.pick(bank))
    if rng.random() < (0.3 if long_post else 0.04):
        tail.units.append(_tldr(writer, plan))
    return head, tail


def _tldr(writer: _Writer, plan: PostPlan) -> Unit:
    rng = writer.rng
    prefix = rng.choice(framing.TLDR_PREFIXES)
    if not plan.symptoms or rng.random() < 0.2:
        return writer.pick(tuple(prefix + t for t in framing.NEUTRAL_TLDR))
    chosen = rng.sample(plan.symptoms, min(len(plan.symptoms), rng.choice((1, 1, 2))))
    phrases = [realize_tldr(s, rng, writer.persona) for s in chosen]
    labels = [Label(s, 1, f"The tl;dr states the writer's {TOPIC[s]}.") for s in chosen]
    return writer.typed(prefix + rng.choice((", ", " and ", ", also ")).join(phrases), *labels)


def _filler_blocks(writer: _Writer, plan: PostPlan, budget: int) -> list[Block]:
    """Neutral blocks on a few topics until the post reaches its length.

    A post stays on a handful of topics; a topic it has said enough about
    (``TOPIC_SENTENCE_LIMIT`` loose sentences, every story told) gives way
    to a new one, so long posts move on instead of repeating themselves.
    """
    rng = writer.rng
    if budget <= 0:
        return []
    weights = {t: _DEFAULT_TOPIC_WEIGHT.get(t, 1.0) for t in TOPICS}
    weights.update(_TOPIC_WEIGHTS[plan.theme])
    excluded = {t for s in plan.symptoms for t in _EXCLUDED_TOPICS.get(s, ())}
    pool = [t for t in TOPICS if t not in excluded]
    said: dict[str, int] = {}

    def new_topic() -> str | None:
        fresh = [t for t in pool if t not in said]
        if not fresh:
            return None
        pick = rng.choices(fresh, weights=[weights[t] for t in fresh])[0]
        said[pick] = 0
        return pick

    n_topics = max(1, min(len(pool), 1 + plan.target_words // 200))
    topics = [t for t in (new_topic() for _ in range(n_topics)) if t is not None]
    max_block = 2 if plan.target_words < 60 else (4 if plan.target_words < 200 else 6)
    limit = TOPIC_SENTENCE_LIMIT
    blocks: list[Block] = []
    words = 0
    while words < budget:
        topic = rng.choice(topics)
        story = writer.vignette(topic) if rng.random() < VIGNETTE_RATE else None
        if story is not None:
            block = Block(story, story=True)
            if words + block.words <= budget + 8:
                blocks.append(block)
                words += block.words
                continue
        if said[topic] >= limit:
            topics.remove(topic)
            replacement = new_topic()
            if replacement is not None:
                topics.append(replacement)
            if not topics:  # a pathological post has said everything: say more
                limit += TOPIC_SENTENCE_LIMIT
                topics = list(said)
            continue
        units: list[Unit] = []
        for _ in range(rng.randint(1, max_block)):
            unit = writer.filler(topic, continuing=bool(units))
            if words + unit.words - budget > budget - words:  # closer to the target without it
                words = budget
                break
            units.append(unit)
            said[topic] += 1
            words += unit.words
            if words < budget and rng.random() < COMMENT_RATE:
                aside = writer.pick(COMMENTS)
                units.append(aside)
                words += aside.words
            if words >= budget or said[topic] >= limit:
                break
        if units:
            blocks.append(Block(units))
    return blocks


def _arrange(
    writer: _Writer,
    plan: PostPlan,
    vents: list[Block],
    fillers: list[Block],
    extras: list[tuple[Unit, bool]],
) -> list[Block]:
    """Place the evidence blocks among the filler, then tuck in the hard negatives."""
    rng = writer.rng
    body = list(fillers)
    late = plan.target_words > LONG_POST_WORDS and rng.random() < LATE_EVIDENCE_RATE
    low = -(-2 * len(body) // 3) if late else 0  # late: only after the first two thirds
    slots = sorted(rng.randint(low, len(body)) for _ in vents)
    if vents and not late and rng.random() < EARLY_EVIDENCE_RATE:
        slots[0] = 0  # straight to the point
    for offset, (slot, vent) in enumerate(zip(slots, vents, strict=True)):
        body.insert(slot + offset, vent)
    for unit, inside in extras:
        hosts = [b for b in body if not b.story]
        if inside and hosts:
            host = rng.choice(hosts)
            host.units.insert(rng.randint(1, len(host.units)), unit)
        else:
            body.insert(rng.randint(0, len(body)), Block([unit]))
    return body


def _paragraphs(writer: _Writer, blocks: list[Block], *, tail: Block) -> list[list[Unit]]:
    """Join blocks into paragraphs, the way the post's style breaks lines."""
    rng = writer.rng
    assert writer.voice is not None
    rate = writer.voice.style.paragraph_rate
    paragraphs: list[list[Block]] = []
    for block in blocks:
        new = not paragraphs or rng.random() < rate
        if block is tail and rate > 0:
            new = new or rng.random() < 0.5
        if new:
            paragraphs.append([block])
        else:
            paragraphs[-1].append(block)
    out: list[list[Unit]] = []
    for paragraph in paragraphs:
        # A very long paragraph is broken between two of its blocks, unless this writer
        # never breaks lines.
        while rate > 0 and len(paragraph) > 1 and sum(len(b.units) for b in paragraph) > 9:
            if rng.random() < 0.3:
                break
            cut = rng.randint(1, len(paragraph) - 1)
            out.append([u for b in paragraph[:cut] for u in b.units])
            paragraph = paragraph[cut:]
        out.append([u for b in paragraph for u in b.units])
    return out


def _render(writer: _Writer, post_id: str, paragraphs: list[list[Unit]]) -> ComposedPost:
    rng = writer.rng
    assert writer.voice is not None
    sentences: list[str] = []
    lines: list[str] = []
    annotations: list[Annotation] = []
    for paragraph in paragraphs:
        typed = []
        for i, unit in enumerate(paragraph):
            text = end_mark(unit.text, writer.voice, rng, paragraph_end=i == len(paragraph) - 1)
            for label in unit.labels:
                annotations.append(
                    Annotation(len(sentences), text, label.symptom, label.status, label.explanation)
                )
            sentences.append(text)
            typed.append(text)
        lines.append(" ".join(typed))
    separator = "\n" if writer.voice.style.single_newline else "\n\n"
    text = separator.join(lines)
    found = split_sentences(text)
    if found != sentences:
        bad = next(
            (i for i, (a, b) in enumerate(zip(found, sentences, strict=False)) if a != b),
            min(len(found), len(sentences)),
        )
        got = found[bad] if bad < len(found) else None
        wrote = sentences[bad] if bad < len(sentences) else None
        raise RuntimeError(f"{post_id}: sentence {bad} was written {wrote!r} but reads {got!r}")
    return ComposedPost(post_id, text, tuple(annotations))
