"""Sentences an annotator would set apart as ``SPECIAL_CASE``: context for clinical judgement.

ReDSM5 has a ``SPECIAL_CASE`` label for what belongs to no criterion but
changes how a post reads (a medical cause, grief, a new medication, a
recent birth, substance use). The reader accepts it and the pair builder
ignores it; a few posts carry one so that path stays exercised.
"""

from __future__ import annotations

SPECIAL_CASES: tuple[str, ...] = (
    "{doctor} wants to check my thyroid before anything else",
    "I started new meds [last month|a few weeks ago] so maybe it's that",
    "my dad died in {month} so maybe this is just grief",
    "I had a baby [three|four] months ago",
    "I've been drinking [a lot more|more than I should] on weekends",
    "maybe it's the night shifts I've been working",
    "I was diagnosed with [long covid|an autoimmune thing] this year",
    "I recently came off {meds} cold turkey, which I know was dumb",
    "my grandma passed two weeks ago and we were really close",
    "I've been smoking a lot of weed [to cope|every night] lately",
)

EXPLANATIONS: tuple[str, ...] = (
    "Possible medical or situational explanation.",
    "Context that needs clinical judgement.",
    "Grief, medication or substance context.",
)
