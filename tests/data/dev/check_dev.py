"""Checks for the hand-written dev set (tests/data/dev). Needs pandas only.

Run: python tests/data/dev/check_dev.py   (exits non-zero and lists the failures if any check fails)
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
CRITERIA_PY = HERE.parents[2] / "src" / "psy_agents_noaug" / "data" / "criteria.py"
FALLBACK = (
    "DEPRESSED_MOOD",
    "ANHEDONIA",
    "APPETITE_CHANGE",
    "SLEEP_ISSUES",
    "PSYCHOMOTOR",
    "FATIGUE",
    "WORTHLESSNESS",
    "COGNITIVE_ISSUES",
    "SUICIDAL_THOUGHTS",
)


def criterion_symptoms() -> tuple[str, ...]:
    """The nine criterion labels, read from criteria.py (loaded alone, not via the package)."""
    if CRITERIA_PY.exists():
        spec = importlib.util.spec_from_file_location("_dev_criteria", CRITERIA_PY)
        mod = importlib.util.module_from_spec(spec)
        sys.modules["_dev_criteria"] = mod
        spec.loader.exec_module(mod)
        return tuple(c.symptom for c in mod.CRITERIA)
    return FALLBACK


def main() -> int:
    posts = pd.read_csv(
        HERE / "posts.csv", dtype={"post_id": str, "text": str}, keep_default_na=False
    )
    ann = pd.read_csv(HERE / "annotations.csv", dtype=str, keep_default_na=False)
    symptoms = criterion_symptoms()
    errors: list[str] = []

    if list(posts.columns) != ["post_id", "text"]:
        errors.append(f"posts.csv columns {list(posts.columns)}")
    cols = ["post_id", "sentence_id", "sentence_text", "DSM5_symptom", "status", "explanation"]
    if list(ann.columns) != cols:
        errors.append(f"annotations.csv columns {list(ann.columns)}")
    expected = [f"d{i:03d}" for i in range(1, 65)]
    if sorted(posts.post_id) != expected:
        errors.append("post ids are not exactly d001..d064")
    texts = dict(zip(posts.post_id, posts.text, strict=True))

    for i, r in ann.iterrows():
        where = f"annotations row {i} ({r.post_id})"
        if r.post_id not in texts:
            errors.append(f"{where}: unknown post_id")
            continue
        if not r.sentence_text or r.sentence_text not in texts[r.post_id]:
            errors.append(f"{where}: sentence_text not a substring of the post")
        if r.DSM5_symptom not in symptoms:
            errors.append(f"{where}: invalid symptom {r.DSM5_symptom!r}")
        if r.status not in {"0", "1"}:
            errors.append(f"{where}: status {r.status!r} not 0/1")
        if not re.fullmatch(rf"{r.post_id}_s\d+", r.sentence_id):
            errors.append(f"{where}: bad sentence_id {r.sentence_id!r}")
        if not r.explanation.strip():
            errors.append(f"{where}: empty explanation")
    if ann.duplicated(["post_id", "sentence_text", "DSM5_symptom"]).any():
        errors.append("duplicate annotation rows")

    pos = ann[ann.status == "1"]
    for s in symptoms:
        n = pos[pos.DSM5_symptom == s].post_id.nunique()
        if n < 9:
            errors.append(f"{s}: only {n} positive posts (need >= 9)")

    words = {p: len(t.split()) for p, t in texts.items()}
    over200 = [p for p, w in words.items() if w > 200]
    if len(over200) < 20:
        errors.append(f"only {len(over200)} posts over 200 words (need >= 20)")
    if sum(w > 450 for w in words.values()) < 6:
        errors.append("fewer than 6 posts over 450 words")

    # Late evidence: in a post over 200 words, some criterion's first status-1 sentence starts
    # after at least 150 words of other text.
    late = 0
    for p in over200:
        firsts = (
            pos[pos.post_id == p]
            .groupby("DSM5_symptom")
            .sentence_text.apply(
                lambda ss, text=texts[p]: min(len(text[: text.index(s)].split()) for s in ss)
            )
        )
        if len(firsts) and firsts.max() >= 150:
            late += 1
    if late < 20:
        errors.append(f"only {late} long late-evidence posts (need >= 20)")

    no_symptom = len(set(texts) - set(pos.post_id))
    if not 8 <= no_symptom <= 16:
        errors.append(f"{no_symptom} no-symptom posts (expected about 12)")

    if errors:
        print("FAIL")
        for e in errors:
            print("  -", e)
        return 1
    print(
        f"OK: {len(posts)} posts, {len(ann)} annotation rows, {len(over200)} posts > 200 words, "
        f"{late} long late-evidence posts, {no_symptom} no-symptom posts"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
