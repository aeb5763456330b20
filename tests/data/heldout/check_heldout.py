"""Sanity checks for the hand-written held-out set (no project imports).

Run:  python tests/data/heldout/check_heldout.py
Exits non-zero with an AssertionError if any check fails; prints a summary otherwise.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
SYMPTOMS = {
    "DEPRESSED_MOOD": "A.1",
    "ANHEDONIA": "A.2",
    "APPETITE_CHANGE": "A.3",
    "SLEEP_ISSUES": "A.4",
    "PSYCHOMOTOR": "A.5",
    "FATIGUE": "A.6",
    "WORTHLESSNESS": "A.7",
    "COGNITIVE_ISSUES": "A.8",
    "SUICIDAL_THOUGHTS": "A.9",
}
CRITERION_IDS = set(SYMPTOMS.values())


def whole_sentence(text: str, sent: str) -> bool:
    """``sent`` occurs in ``text`` starting at a sentence start and ending at a sentence end."""
    for m in re.finditer(re.escape(sent), text):
        s, e = m.start(), m.end()
        starts = s == 0 or text[s - 1].isspace()
        ends = sent.rstrip()[-1] in ".!?" or e == len(text) or text[e] == "\n"
        if starts and ends and (e == len(text) or text[e].isspace()):
            return True
    return False


def main() -> int:
    posts = pd.read_csv(HERE / "posts.csv", dtype=str, keep_default_na=False)
    ann = pd.read_csv(HERE / "annotations.csv", dtype={"status": int}, keep_default_na=False)
    late = pd.read_csv(HERE.parent / "late_evidence.csv", dtype=str, keep_default_na=False)

    assert list(posts.columns) == ["post_id", "text"], posts.columns
    assert list(ann.columns) == [
        "post_id",
        "sentence_id",
        "sentence_text",
        "DSM5_symptom",
        "status",
        "explanation",
    ], ann.columns
    assert list(late.columns) == ["post_id", "criterion_id", "evidence_sentence", "text"]

    assert posts.post_id.is_unique, "duplicate post ids"
    assert len(posts) >= 72, f"only {len(posts)} posts"
    for i in range(1, 73):
        assert f"h{i:03d}" in set(posts.post_id), f"missing h{i:03d}"
    text = dict(zip(posts.post_id, posts.text, strict=True))

    # annotations
    assert set(ann.post_id) <= set(text), set(ann.post_id) - set(text)
    assert set(ann.DSM5_symptom) <= set(SYMPTOMS), set(ann.DSM5_symptom) - set(SYMPTOMS)
    assert set(ann.status) <= {0, 1}, set(ann.status)
    assert (ann.explanation.str.strip() != "").all(), "empty explanation"
    for r in ann.itertuples():
        t = text[r.post_id]
        assert r.sentence_text in t, f"{r.sentence_id}: sentence not in post"
        assert whole_sentence(t, r.sentence_text), f"{r.sentence_id}: not a whole sentence"
        assert r.sentence_id.startswith(f"{r.post_id}_s"), r.sentence_id
    assert not ann.duplicated(["post_id", "sentence_text", "DSM5_symptom"]).any()

    pos = ann[ann.status == 1]
    words = posts.set_index("post_id").text.map(lambda s: len(s.split()))

    # no-symptom posts
    no_symptom = sorted(set(text) - set(pos.post_id))
    assert len(no_symptom) >= 16, f"only {len(no_symptom)} no-symptom posts"

    # per-criterion positives
    per_crit = pos.groupby("DSM5_symptom").post_id.nunique().reindex(list(SYMPTOMS), fill_value=0)
    for sym, n in per_crit.items():
        assert n >= 7, f"{sym} positive in only {n} posts"

    # long posts with late evidence: first status-1 sentence starts after 60 % of the text
    late_long = []
    for pid, grp in pos.groupby("post_id"):
        t = text[pid]
        if words[pid] <= 200:
            continue
        first = min(t.index(s) for s in grp.sentence_text)
        if first > 0.6 * len(t):
            late_long.append(pid)
    assert len(late_long) >= 24, f"only {len(late_long)} long late-evidence posts"

    # late_evidence.csv
    assert len(late) == 6 and late.post_id.tolist() == [f"late{i}" for i in range(1, 7)]
    assert set(late.criterion_id) <= CRITERION_IDS and late.criterion_id.is_unique
    for r in late.itertuples():
        assert r.evidence_sentence in r.text, r.post_id
        assert r.text.count(r.evidence_sentence) == 1, r.post_id
        before = r.text[: r.text.index(r.evidence_sentence)]
        assert len(before.split()) >= 400, f"{r.post_id}: {len(before.split())} words before"
        assert r.text.rstrip().endswith(r.evidence_sentence), f"{r.post_id}: evidence not last"

    # summary
    neg = ann[ann.status == 0].groupby("DSM5_symptom").size().reindex(list(SYMPTOMS), fill_value=0)
    print(
        f"posts: {len(posts)}  annotation rows: {len(ann)} "
        f"(status 1: {len(pos)}, status 0: {len(ann) - len(pos)})"
    )
    print(f"no-symptom posts: {len(no_symptom)}")
    print(
        f"posts > 200 words: {(words > 200).sum()}  "
        f"(with evidence after 60% of text: {len(late_long)})"
    )
    print(
        f"words per post: mean {words.mean():.1f}, median {words.median():.0f}, "
        f"min {words.min()}, max {words.max()}"
    )
    print("criterion  symptom             positive_posts  status0_rows")
    for sym, cid in SYMPTOMS.items():
        print(f"{cid:9}  {sym:18}  {per_crit[sym]:14d}  {neg[sym]:12d}")
    lw = late.apply(lambda r: len(r.text[: r.text.index(r.evidence_sentence)].split()), axis=1)
    print(
        "late_evidence:",
        ", ".join(
            f"{p} {c} ({n} words before)"
            for p, c, n in zip(late.post_id, late.criterion_id, lw, strict=True)
        ),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
