"""How posts open and close: throwaway notes, apologies, tl;dr lines, edits.

These frame posts of every kind (with symptoms or without), so none of
them tells a model anything about the labels; they make the start and the
end of a post look like a real one.
"""

from __future__ import annotations

OPENERS: tuple[str, ...] = (
    "throwaway because [my family knows my main|people I know follow my main account]",
    "long time lurker, first time posting",
    "not sure if this is the right sub for this",
    "sorry for formatting, I'm on mobile",
    "this is going to be long, sorry",
    "I don't usually post here",
    "mods please remove if this isn't allowed",
    "okay so",
    "hi everyone",
    "English isn't my first language so sorry for any mistakes",
    "I need to get this off my chest",
    "I've never really written this down before",
    "first post here",
    "hey all",
    "not really sure what I'm looking for here",
    "new account, long story",
    "so this is kind of random",
    "I've been going back and forth on whether to post this",
    "I'll try to keep this short",
    "hi, [{age}{sex}|{age2}{sex}] here",
    "posting here because I don't know where else to",
    "bit of a vent, bear with me",
    "this might be a weird question",
)

LONG_OPENERS: tuple[str, ...] = (
    "this is going to be a long one, sorry in advance",
    "buckle up, this is long",
    "warning, wall of text incoming",
    "I'm going to ramble, sorry",
)
"""Openers only long posts use."""

CLOSERS: tuple[str, ...] = (
    "thanks for reading if you got this far",
    "any advice is appreciated",
    "I don't really know what I'm asking",
    "thanks in advance",
    "idk, I just needed to say it somewhere",
    "I'll probably delete this later",
    "sorry if this doesn't make sense",
    "anyway thanks for listening",
    "edit: thanks for the replies everyone",
    "edit: formatting",
    "edit: typo",
    "sorry for rambling",
    "that's it I guess",
    "appreciate you all",
    "I'll answer questions if anyone has any",
    "thanks, this sub has helped me a lot",
    "okay that's all",
)

LONG_CLOSERS: tuple[str, ...] = (
    "sorry for the wall of text",
    "wow that was longer than I meant, sorry",
    "if you read all of that, thank you",
    "sorry this got so long",
)
"""Closers only long posts use."""

TLDR_PREFIXES: tuple[str, ...] = ("tl;dr ", "tl;dr: ", "TLDR: ", "tldr ", "TL;DR ")

NEUTRAL_TLDR: tuple[str, ...] = (
    "roommate drama and I need advice",
    "work is a mess and I don't know if I should quit",
    "{partner} and I keep arguing about money",
    "should I move to {city}?",
    "landlord won't fix anything",
    "family stuff, long story",
    "how do I support {who}?",
    "thinking of switching therapists",
    "new meds, lots of questions",
    "I don't know what to do about school",
)
"""tl;dr lines about the post's neutral content; evidence tl;drs come from the evidence bank."""
