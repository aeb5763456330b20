#!/usr/bin/env python3
"""Generate the bundled sample: synthetic Reddit-style posts in the ReDSM5 CSV format.

Every post is written by this script from hand-made sentence templates; no
real post text is used. Each post shows positive evidence for 1-4 criteria,
explicitly denies 1-3 others (e.g. "my appetite is normal"), and may have a
little neutral filler, some of it using symptom words about other people
("my cat sleeps on my desk all afternoon"). The same words therefore appear in positive
and negative sentences, so no single keyword separates the labels: a model
has to read what the writer says about themselves.

Output is deterministic (fixed seed, stdlib ``random`` only):

    python scripts/make_sample_data.py            # writes src/psy_agents_noaug/data/sample/
    python scripts/make_sample_data.py --out DIR  # somewhere else
    python scripts/make_sample_data.py --out DIR --n-posts 1000  # a bigger corpus, e.g. for a GPU

The bundled size is chosen so that a 4-epoch MiniLM run on two CPU cores takes minutes.
"""

from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

SEED = 5_2013  # DSM-5 came out in 2013
N_POSTS = 180
# Short posts: fast to train on a CPU, and a whole post plus any criterion description
# fits in 128 tokens (about 3.5 characters per token at worst), so no evidence is cut off.
MIN_WORDS, MAX_WORDS, MAX_CHARS = 20, 50, 260
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "psy_agents_noaug" / "data" / "sample"

# How many criteria a post shows positive evidence for (weights for 1, 2, 3, 4).
POSITIVE_COUNT_WEIGHTS = (5, 30, 40, 25)
NEGATIVE_COUNT_WEIGHTS = (55, 40, 5)  # explicit denials: 1, 2, 3
SPECIAL_CASE_RATE = 0.1

# "{when}" is filled with a time phrase, so templates recombine into new sentences.
WHEN = (
    "lately",
    "these days",
    "all month",
    "since spring",
    "this semester",
    "since the move",
    "since the holidays",
)

# Each criterion has a few anchor words ("sleep", "appetite", "energy", ...) that its
# description, its evidence sentences and its denials all use: the words say what a
# sentence is about, and only the rest of the sentence says whether it is evidence.
POSITIVE: dict[str, tuple[str, ...]] = {
    "DEPRESSED_MOOD": (
        "I feel sad all day {when}.",
        "My mood is so low {when}.",
        "I feel hopeless and sad.",
        "I feel down and cry every day.",
        "I'm sad for no reason {when}.",
        "My mood is awful, I feel hopeless.",
        "I feel down all the time {when}.",
        "Everything feels hopeless {when}.",
    ),
    "ANHEDONIA": (
        "I've lost interest in my hobbies {when}.",
        "Nothing is fun anymore.",
        "I can't enjoy anything {when}.",
        "I have no interest in things I used to love.",
        "My hobbies aren't fun anymore.",
        "I don't enjoy music or games now.",
        "I lost all interest in drawing.",
        "Seeing friends isn't fun anymore {when}.",
    ),
    "APPETITE_CHANGE": (
        "I've lost my appetite {when}.",
        "I barely eat anymore.",
        "I lost a lot of weight without trying.",
        "I eat way too much and gained weight.",
        "My appetite is gone, I skip meals.",
        "I eat much more than usual {when}.",
        "I have no appetite and I'm losing weight.",
        "I can't stop eating {when}.",
    ),
    "SLEEP_ISSUES": (
        "I can't sleep at night {when}.",
        "I sleep twelve hours a day and still want more.",
        "I wake at 4am and can't get back to sleep.",
        "I lie awake for hours and can't fall asleep.",
        "My sleep is terrible {when}.",
        "I sleep way too much {when}.",
        "I only sleep three hours a night.",
        "I can't fall asleep until morning.",
    ),
    "PSYCHOMOTOR": (
        "I'm so restless I can't sit still {when}.",
        "I move and talk so slow now.",
        "People say I'm slow {when}.",
        "I pace all day because I'm restless.",
        "Everything I do is slow {when}.",
        "I'm agitated and can't sit still.",
        "My body feels slow and heavy.",
        "I'm restless and fidget all day.",
    ),
    "FATIGUE": (
        "I'm tired all the time {when}.",
        "I have no energy to do anything.",
        "I feel exhausted even after resting.",
        "My energy is gone {when}.",
        "I'm so tired that chores wear me out.",
        "I feel exhausted every day.",
        "I have zero energy {when}.",
        "Showering leaves me tired and out of energy.",
    ),
    "WORTHLESSNESS": (
        "I feel worthless {when}.",
        "I'm a failure at everything.",
        "I feel guilty about everything.",
        "I feel like a worthless burden.",
        "I hate myself, I'm a failure.",
        "The guilt is eating me up {when}.",
        "I feel useless and worthless.",
        "I blame myself for everything {when}.",
    ),
    "COGNITIVE_ISSUES": (
        "I can't concentrate {when}.",
        "I can't focus at work or in class.",
        "I can't make simple decisions.",
        "My mind is foggy and I can't focus.",
        "I forget things and can't concentrate.",
        "I can't think clearly {when}.",
        "Reading is hard, I can't concentrate.",
        "My focus is gone {when}.",
    ),
    "SUICIDAL_THOUGHTS": (
        "I think about suicide {when}.",
        "I want to die.",
        "I've thought about killing myself.",
        "I think about death all the time {when}.",
        "I wish I was dead.",
        "I think about ending my life.",
        "Sometimes I want to die {when}.",
        "Thoughts of suicide keep coming back.",
    ),
}

NEGATIVE: dict[str, tuple[str, ...]] = {
    "DEPRESSED_MOOD": (
        "My mood is fine {when}.",
        "I feel fine, not sad or down.",
        "My mood has been okay {when}.",
        "I'm in a good mood most days.",
        "I'm not sad or hopeless.",
    ),
    "ANHEDONIA": (
        "I still enjoy my hobbies {when}.",
        "Things are still fun for me.",
        "My interest in hobbies is the same as ever.",
        "I enjoy music and games like always.",
        "My hobbies are still fun {when}.",
    ),
    "APPETITE_CHANGE": (
        "My appetite is normal {when}.",
        "I eat fine and my weight is stable.",
        "My appetite is the same as always.",
        "My weight hasn't changed {when}.",
        "I eat normal meals {when}.",
    ),
    "SLEEP_ISSUES": (
        "I sleep fine {when}.",
        "My sleep is normal.",
        "I sleep well, about eight hours.",
        "My sleep is good {when}.",
        "I fall asleep easily.",
    ),
    "PSYCHOMOTOR": (
        "I can sit still just fine.",
        "My speed is normal, nobody says I'm slow.",
        "I'm calm, not restless {when}.",
        "I move at a normal pace, not slow.",
        "I sit still fine {when}.",
    ),
    "FATIGUE": (
        "My energy is fine {when}.",
        "I have plenty of energy.",
        "I feel rested, not tired.",
        "My energy is normal {when}.",
        "I have good energy for the gym.",
    ),
    "WORTHLESSNESS": (
        "I feel good about myself, not worthless.",
        "I don't feel guilty about anything.",
        "I know I'm not a failure.",
        "I don't blame myself {when}.",
        "I feel fine about myself, not a failure.",
    ),
    "COGNITIVE_ISSUES": (
        "I can concentrate fine.",
        "My focus is normal {when}.",
        "Making decisions is easy for me.",
        "I focus well at work.",
        "I think clearly {when}.",
    ),
    "SUICIDAL_THOUGHTS": (
        "I'm not suicidal.",
        "I don't want to die.",
        "I have no thoughts of suicide.",
        "I never think about death {when}.",
        "I want to live, no thoughts of suicide.",
    ),
}

EXPLAIN_POSITIVE: dict[str, tuple[str, ...]] = {
    "DEPRESSED_MOOD": ("Reports persistent sadness.", "Describes a low, hopeless mood."),
    "ANHEDONIA": ("Describes lost interest in activities.", "Reports no enjoyment in hobbies."),
    "APPETITE_CHANGE": ("Reports a change in appetite.", "Describes weight change from eating."),
    "SLEEP_ISSUES": ("Describes insomnia or broken sleep.", "Reports sleeping far more or less."),
    "PSYCHOMOTOR": ("Describes restlessness or agitation.", "Reports slowed movement or speech."),
    "FATIGUE": ("Reports constant tiredness.", "Describes loss of energy."),
    "WORTHLESSNESS": ("Expresses worthlessness.", "Describes excessive guilt or self-blame."),
    "COGNITIVE_ISSUES": ("Reports poor concentration.", "Describes indecision or forgetfulness."),
    "SUICIDAL_THOUGHTS": ("Expresses thoughts of death or suicide.", "Reports wishing to be dead."),
}

EXPLAIN_NEGATIVE: dict[str, str] = {
    "DEPRESSED_MOOD": "States that mood is not low.",
    "ANHEDONIA": "States that interest and enjoyment remain.",
    "APPETITE_CHANGE": "States that appetite and weight are unchanged.",
    "SLEEP_ISSUES": "States that sleep is normal.",
    "PSYCHOMOTOR": "Denies restlessness or slowing.",
    "FATIGUE": "States that energy is normal.",
    "WORTHLESSNESS": "Denies worthlessness or guilt.",
    "COGNITIVE_ISSUES": "States that concentration is intact.",
    "SUICIDAL_THOUGHTS": "Explicitly denies suicidal thoughts.",
}

SPECIAL_CASE = (
    "My doctor wants to check my thyroid first.",
    "I started new meds last month, maybe it's that.",
    "My dad died in spring, maybe this is grief.",
    "I had a baby three months ago.",
    "I've been drinking more on weekends.",
    "Maybe it's the night shifts I work.",
)
EXPLAIN_SPECIAL = (
    "Possible medical or situational explanation.",
    "Context that needs clinical judgement.",
)

FILLER = (
    "I'm 24 and work at a coffee shop.",
    "I moved for grad school last fall.",
    "My sister visited last weekend.",
    "I have a dog named Biscuit.",
    "I work from home as a tester.",
    "I'm in my second year of nursing school.",
    "I started a library job in March.",
    "My best friend is getting married in June.",
    "I live with two roommates.",
    "It has been rainy here for weeks.",
    # Symptom words about other people or things: no evidence about the writer.
    "My cat sleeps on my desk all afternoon.",
    "My roommate works nights and comes home tired.",
    "My mom always asks what I've been eating.",
    "My little brother can never sit still.",
    "We studied memory and focus in psych class.",
)
OPENERS = (
    "Not sure where else to post this.",
    "Throwaway account.",
    "First time posting.",
    "Sorry if this rambles.",
    "This is hard to write.",
)
CLOSERS = (
    "Any advice would help.",
    "Thanks for reading.",
    "Has anyone dealt with this?",
    "Is this normal?",
)
CONNECTORS = ("Honestly, ", "Also ", "And ", "Plus ")

SYMPTOMS = tuple(POSITIVE)


def fill(template: str, rng: random.Random) -> str:
    """Fill the time slot, so the same template recombines into different sentences."""
    return template.replace("{when}", rng.choice(WHEN))


def connect(sentence: str, rng: random.Random) -> str:
    """Sometimes join a sentence to the one before with a connector ("Also I ...")."""
    if rng.random() >= 0.2:
        return sentence
    head = sentence if sentence.startswith(("I ", "I'")) else sentence[0].lower() + sentence[1:]
    return rng.choice(CONNECTORS) + head


def make_post(rng: random.Random) -> list[tuple[str, str | None, int | None, str | None]]:
    """One post as (sentence, symptom, status, explanation) tuples; symptom None = unannotated."""
    n_pos = rng.choices((1, 2, 3, 4), weights=POSITIVE_COUNT_WEIGHTS)[0]
    n_neg = rng.choices((1, 2, 3), weights=NEGATIVE_COUNT_WEIGHTS)[0]
    chosen = rng.sample(SYMPTOMS, n_pos + n_neg)
    body: list[tuple[str, str | None, int | None, str | None]] = []
    for symptom in chosen[:n_pos]:
        explanation = rng.choice(EXPLAIN_POSITIVE[symptom])
        body.append((fill(rng.choice(POSITIVE[symptom]), rng), symptom, 1, explanation))
    for symptom in chosen[n_pos:]:
        body.append(
            (fill(rng.choice(NEGATIVE[symptom]), rng), symptom, 0, EXPLAIN_NEGATIVE[symptom])
        )
    for filler in rng.sample(FILLER, rng.choice((0, 0, 0, 1))):
        body.append((filler, None, None, None))
    if rng.random() < SPECIAL_CASE_RATE:
        body.append((rng.choice(SPECIAL_CASE), "SPECIAL_CASE", 1, rng.choice(EXPLAIN_SPECIAL)))
    rng.shuffle(body)
    body[1:] = [
        (connect(text, rng), symptom, status, why) for text, symptom, status, why in body[1:]
    ]
    if rng.random() < 0.2:
        body.insert(0, (rng.choice(OPENERS), None, None, None))
    if rng.random() < 0.2:
        body.append((rng.choice(CLOSERS), None, None, None))
    return body


def generate(n_posts: int = N_POSTS, seed: int = SEED) -> tuple[list[list[str]], list[list[str]]]:
    """Rows of posts.csv and annotations.csv (without headers)."""
    rng = random.Random(seed)
    posts: list[list[str]] = []
    annotations: list[list[str]] = []
    while len(posts) < n_posts:
        sentences = make_post(rng)
        text = " ".join(s for s, *_ in sentences)
        if not MIN_WORDS <= len(text.split()) <= MAX_WORDS or len(text) > MAX_CHARS:
            continue  # resample: keeps every post short enough to fit the model untruncated
        post_id = f"s_{len(posts) + 1:04d}"
        posts.append([post_id, text])
        for k, (sentence, symptom, status, explanation) in enumerate(sentences, 1):
            if symptom is not None:
                annotations.append(
                    [post_id, f"{post_id}_{k}", sentence, symptom, str(status), str(explanation)]
                )
    return posts, annotations


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument("--n-posts", type=int, default=N_POSTS, help="number of posts")
    parser.add_argument("--seed", type=int, default=SEED, help="random seed")
    args = parser.parse_args()
    if args.n_posts < 1:
        parser.error(f"--n-posts must be >= 1, got {args.n_posts}")
    args.out.mkdir(parents=True, exist_ok=True)
    posts, annotations = generate(args.n_posts, args.seed)
    write_csv(args.out / "posts.csv", ["post_id", "text"], posts)
    write_csv(
        args.out / "annotations.csv",
        ["post_id", "sentence_id", "sentence_text", "DSM5_symptom", "status", "explanation"],
        annotations,
    )
    print(f"wrote {len(posts)} posts and {len(annotations)} annotations to {args.out}")


if __name__ == "__main__":
    main()
