"""Lead-ins and tails that join a sentence to the talk around it.

People rarely state a symptom as a bare clause: they hedge ("idk if this
counts but"), place it in time ("ever since the breakup,"), or trail off
(", if that makes sense"). Most of these words also go on neutral and
hard-negative sentences (see ``SHARED_LEADS``), so a lead-in alone never
marks a sentence as evidence.
"""

from __future__ import annotations

SHARED_LEADS: tuple[str, ...] = (
    "honestly ",
    "honestly, ",
    "idk, ",
    "tbh ",
    "not gonna lie, ",
    "to be honest, ",
    "the thing is, ",
    "I mean, ",
    "so ",
    "ok so ",
    "like ",
    "and yeah, ",
    "for context, ",
    "weirdly, ",
    "idk if this is relevant but ",
    "not sure if this matters but ",
)
"""Lead-ins that fit any statement, evidence or not, even at the start of a paragraph."""

CONTINUING_LEADS: tuple[str, ...] = (
    "also ",
    "also, ",
    "and ",
    "plus ",
    "oh and ",
    "but ",
    "on top of that, ",
    "anyway ",
    "and then ",
    "meanwhile ",
    "besides that, ",
)
"""Lead-ins that only follow another sentence, never open a paragraph."""

TIME_FRAMES: tuple[str, ...] = (
    "lately ",
    "recently ",
    "for the past {past_span} ",
    "ever since {event}, ",
    "these days ",
    "this past month ",
    "since {month} ",
    "over the last {past_span} ",
    "the last {past_span} or so ",
)
"""Time frames for an ongoing state; neutral "I've been …" sentences take them too."""

PRESENT_LEADS: tuple[str, ...] = (
    *(t for t in TIME_FRAMES if "since {month}" not in t),
    "most days ",
    "some days ",
    "at this point ",
    "right now ",
    "and now ",
    "but lately ",
)
"""Time frames and frequencies for a present state."""

EVIDENCE_LEADS: tuple[str, ...] = (
    "it's gotten to the point where ",
    "I've noticed that ",
    "the worst part is ",
    "I hate admitting it but ",
    "idk if this counts but ",
    "I don't know why but ",
    "I keep telling myself it's fine but ",
    "I think ",
    "I guess ",
    "I'm pretty sure ",
    "it sounds dumb but ",
    "I haven't told anyone this but ",
    "if I'm being honest ",
    "kinda embarrassing but ",
    "the main thing is ",
    "what worries me is ",
    "I didn't notice at first but ",
)
"""Hedges and framings people put in front of what they feel; confusers use some of them too."""

EVIDENCE_TAILS: tuple[str, ...] = (
    " and it's getting worse",
    " and I don't know why",
    ", which isn't like me at all",
    " and I hate it",
    ", if that makes sense",
    " and it scares me",
    " and I'm so over it",
    " (sorry)",
    ", and nobody really gets it",
    " and I can't snap out of it",
    ", and I used to be fine",
    " and I don't know how to fix it",
    ", at least that's how it feels",
    " and I can't explain it to anyone",
    ", and it's not getting better",
    ", which is new for me",
    " and honestly it's wearing me down",
    ", I don't even know how it got like this",
)
"""Tails that say how the writer takes it: worsening, helplessness, how new it is."""

TIME_TAILS: tuple[str, ...] = (
    ", and it's been like this for {dur}",
    " most of the time",
    " pretty much every day",
    " since {event}",
    " lately",
    " these days",
    " for {dur} now",
    ", it's been {dur}",
    " basically every day now",
    " since around {month}",
)
"""Tails that say how long or how often; never added after a time-frame lead."""

FOLLOW_UPS: tuple[str, ...] = (
    "it's been like this for a while",
    "I don't really know what to do about it",
    "I haven't told anyone",
    "it sounds dumb when I type it out",
    "so yeah",
    "I don't know",
    "that's kind of where I'm at",
    "it is what it is I guess",
    "I'm not sure what to make of it",
    "anyway",
    "which, great",
    "it's a lot",
    "I keep going back and forth about it",
    "nobody else seems to notice",
    "I don't even know why I'm writing this part",
    "it's been on my mind a lot",
    "I've been meaning to bring it up with someone",
    "I just wanted to get that out",
    "not sure if that's normal",
    "that part is hard to explain",
)
"""Short follow-ups that go after any sentence, evidence or not."""
