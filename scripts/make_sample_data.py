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
MIN_WORDS, MAX_WORDS, MAX_CHARS = 25, 55, 280
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "psy_agents_noaug" / "data" / "sample"

# How many criteria a post shows positive evidence for (weights for 1, 2, 3, 4).
POSITIVE_COUNT_WEIGHTS = (10, 35, 35, 20)
NEGATIVE_COUNT_WEIGHTS = (55, 35, 10)  # explicit denials: 1, 2, 3
SPECIAL_CASE_RATE = 0.1

# "{when}" is filled with a time phrase, so templates recombine into new sentences.
WHEN = (
    "lately",
    "for weeks",
    "these days",
    "all month",
    "since spring",
    "this semester",
    "since the move",
    "since the holidays",
)

POSITIVE: dict[str, tuple[str, ...]] = {
    "DEPRESSED_MOOD": (
        "I feel sad and empty all day {when}.",
        "I've been crying almost every day.",
        "Everything feels hopeless {when}.",
        "I feel down all the time and can't shake it.",
        "A constant sadness follows me around {when}.",
        "I feel numb and hollow most of the day.",
        "My mood has been really low {when}.",
        "I wake up miserable and it lasts all day.",
        "I'm sad for no clear reason {when}.",
        "Most days I'm drowning in sadness.",
        "I keep tearing up over nothing.",
        "I've felt hopeless and down {when}.",
    ),
    "ANHEDONIA": (
        "I used to love guitar but now I never touch it.",
        "Nothing is fun anymore, not games, not music.",
        "I've stopped caring about my hobbies {when}.",
        "Seeing friends used to be fun and now I feel nothing.",
        "I can't enjoy anything {when}, even movies.",
        "I've lost all interest in drawing.",
        "I quit the gym because it stopped giving me joy.",
        "Things that used to excite me feel pointless now.",
        "I don't look forward to anything {when}.",
        "Video games are a chore I have no interest in.",
        "I skipped my favorite band's show because I didn't care.",
        "My hobbies feel empty and boring {when}.",
    ),
    "APPETITE_CHANGE": (
        "I barely eat, maybe one small meal a day.",
        "I've lost ten pounds {when} without trying.",
        "Food doesn't appeal to me at all {when}.",
        "I've been stress eating and gained a lot of weight.",
        "I forget to eat and feel sick after a few bites.",
        "My appetite has disappeared {when}.",
        "I eat junk all night and my clothes don't fit.",
        "My jeans are loose because I'm hardly eating.",
        "I have no appetite and skip most meals.",
        "I can't stop snacking {when}, way more than usual.",
        "I've gained fifteen pounds from eating all the time.",
        "I've dropped a lot of weight {when}.",
    ),
    "SLEEP_ISSUES": (
        "I can't fall asleep until 5am {when}.",
        "I wake up at 3am every night and just lie there.",
        "I've been sleeping twelve hours a day.",
        "My sleep is a mess, I'm up half the night.",
        "I only sleep a few hours a night {when}.",
        "Some days I sleep until the afternoon.",
        "I lie awake for hours every night.",
        "Insomnia has been brutal {when}.",
        "I wake up way too early and can't get back to sleep.",
        "I oversleep constantly and miss my classes.",
        "I haven't slept through the night {when}.",
        "My nights are broken, I wake up every hour.",
    ),
    "PSYCHOMOTOR": (
        "I can't sit still and keep pacing around {when}.",
        "I feel like I'm moving in slow motion.",
        "My roommate says I talk really slowly now.",
        "I'm always fidgeting, I can't stay in one place.",
        "Everything I do feels slowed down {when}.",
        "I'm so restless I get up every few minutes.",
        "People say I seem sluggish and slow to respond.",
        "My body feels slow, like walking through mud.",
        "I've been pacing and wringing my hands {when}.",
        "Coworkers noticed I move and answer really slowly.",
        "I'm too agitated to stay seated through a meal.",
    ),
    "FATIGUE": (
        "I'm exhausted all the time even doing nothing.",
        "I have zero energy {when}, showering is a marathon.",
        "I'm so tired that a workday wipes me out.",
        "Even small chores drain all my energy.",
        "I feel worn out the moment I wake up.",
        "I have no energy to do anything {when}.",
        "Walking to the mailbox leaves me drained.",
        "I'm constantly fatigued and need to lie down.",
        "My body feels drained every single day.",
        "I'm too tired to cook or clean {when}.",
        "I run out of energy by noon {when}.",
    ),
    "WORTHLESSNESS": (
        "I feel like a complete failure.",
        "I feel like a burden to everyone {when}.",
        "I hate myself and feel worthless.",
        "I feel guilty about things that weren't my fault.",
        "I feel like I drag my friends down.",
        "I feel useless, like I let everybody down.",
        "I blame myself for my parents' divorce.",
        "I feel like I'm worth nothing.",
        "Guilt eats me up over tiny mistakes.",
        "I've been so ashamed of who I am {when}.",
        "I feel like a waste of space.",
    ),
    "COGNITIVE_ISSUES": (
        "I can't concentrate, I reread the same page.",
        "My brain is so foggy I lose my words.",
        "I can't make simple decisions like what to eat.",
        "At work I keep losing focus {when}.",
        "I can't focus in lectures, my mind goes blank.",
        "I keep forgetting appointments {when}.",
        "Picking what to wear takes forever, I can't decide.",
        "My thinking feels cloudy and scattered {when}.",
        "I can't follow conversations, my mind drifts.",
        "I can't hold my focus for five minutes.",
        "My memory has gotten really bad {when}.",
    ),
    "SUICIDAL_THOUGHTS": (
        "Sometimes I think about killing myself.",
        "Everyone would be better off if I was gone.",
        "Some nights I wish I wouldn't wake up.",
        "I've had thoughts of ending my life {when}.",
        "I think about death a lot {when}.",
        "I've thought about how I would end it.",
        "I don't want to be alive anymore.",
        "Thoughts of suicide keep coming back {when}.",
        "I wrote a goodbye note and tore it up.",
        "I wish I would just die in my sleep.",
    ),
}

NEGATIVE: dict[str, tuple[str, ...]] = {
    "DEPRESSED_MOOD": (
        "My mood is okay {when}, I'm not sad.",
        "I don't feel sad or down, oddly.",
        "Emotionally I'm fine, no crying or anything.",
        "I wouldn't say I'm depressed, my mood is stable.",
        "I'm not hopeless, my mood is decent.",
        "I'm not sad really, I still laugh a lot.",
    ),
    "ANHEDONIA": (
        "I still enjoy my hobbies {when}.",
        "Games and music are still fun for me.",
        "I still look forward to hiking every weekend.",
        "I still get excited about seeing friends.",
        "Guitar still makes me happy.",
        "I haven't lost interest in things, I love reading.",
    ),
    "APPETITE_CHANGE": (
        "My appetite is normal, I eat like always.",
        "I'm eating fine and my weight hasn't changed.",
        "I still eat three meals a day.",
        "My weight is stable and my appetite is fine.",
        "Eating hasn't been a problem {when}.",
        "I haven't gained or lost any weight.",
    ),
    "SLEEP_ISSUES": (
        "I'm sleeping fine {when}, eight hours a night.",
        "My sleep is normal, I fall asleep easily.",
        "Sleep hasn't been a problem at all.",
        "I get a solid night of sleep.",
        "I sleep pretty well, no insomnia.",
        "I'm not oversleeping or waking up at night.",
    ),
    "PSYCHOMOTOR": (
        "I'm not restless or slowed down.",
        "Nobody says I seem slow, and I'm not fidgety.",
        "Physically I'm normal, not pacing or sluggish.",
        "I can sit still just fine.",
        "My speech and movements are the same as always.",
        "I don't feel slowed down {when}.",
    ),
    "FATIGUE": (
        "I'm not really tired during the day.",
        "I have plenty of energy {when}.",
        "I don't feel tired or worn out.",
        "My energy is normal and I get through my day.",
        "I'm not exhausted, chores are no problem.",
        "Fatigue isn't an issue, I feel energetic.",
    ),
    "WORTHLESSNESS": (
        "I don't think I'm worthless.",
        "I don't feel guilty or like a failure.",
        "My self-esteem is actually okay {when}.",
        "I'm confident in myself and don't blame myself.",
        "I know I'm not a burden to anyone.",
        "I feel good about who I am.",
    ),
    "COGNITIVE_ISSUES": (
        "I can still focus fine at work.",
        "My concentration is normal, studying is easy.",
        "I don't have trouble making decisions.",
        "My memory and focus are the same as always.",
        "I'm still sharp in class {when}.",
        "Concentrating isn't an issue, my mind is clear.",
    ),
    "SUICIDAL_THOUGHTS": (
        "I'm not suicidal, to be clear.",
        "I've never thought of ending my life.",
        "No thoughts of death or suicide, I want to live.",
        "I don't want to die, I want to feel better.",
        "Suicide hasn't crossed my mind {when}.",
        "I'm not thinking about killing myself.",
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
    for filler in rng.sample(FILLER, rng.choice((0, 0, 1))):
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
