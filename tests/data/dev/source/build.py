"""Build tests/data/dev/posts.csv and annotations.csv from the hand-written source files.

Source: source/posts_*.txt. A line "=== <post_id>" starts a post; its text runs to the next
header. An annotated sentence is written inline as <<A7|1|explanation|The sentence.>>: the
marker is replaced by the sentence, so sentence_text is always an exact substring of the post.
Lines starting with "#" before the first header are comments.

Run: python tests/data/dev/source/build.py   (standard library only)
"""

from __future__ import annotations

import csv
import re
import statistics
import sys
from pathlib import Path

SOURCE = Path(__file__).resolve().parent
OUT = SOURCE.parent

SYMPTOM = {
    "A1": "DEPRESSED_MOOD",
    "A2": "ANHEDONIA",
    "A3": "APPETITE_CHANGE",
    "A4": "SLEEP_ISSUES",
    "A5": "PSYCHOMOTOR",
    "A6": "FATIGUE",
    "A7": "WORTHLESSNESS",
    "A8": "COGNITIVE_ISSUES",
    "A9": "SUICIDAL_THOUGHTS",
}
MARKER = re.compile(r"<<(A[1-9])\|([01])\|([^|<>]*)\|([^|<>]*?)>>")
HEADER = re.compile(r"^=== (d\d{3})\s*$", re.M)
SPLIT = re.compile(r"[.!?\n]+")


def parse_file(path: Path) -> list[tuple[str, str]]:
    """Return (post_id, raw text with markers) pairs from one source file."""
    raw = path.read_text(encoding="utf-8")
    parts = HEADER.split(raw)
    # parts[0] is the comment preamble; then id, body, id, body, ...
    return [(parts[i], parts[i + 1].strip()) for i in range(1, len(parts), 2)]


def render(post_id: str, raw: str) -> tuple[str, list[dict]]:
    """Replace the markers by their sentences; return the plain text and the annotation rows."""
    text_parts: list[str] = []
    rows: list[dict] = []
    pos = 0
    length = 0
    for m in MARKER.finditer(raw):
        before = raw[pos : m.start()]
        text_parts.append(before)
        length += len(before)
        crit, status, expl, sentence = m.groups()
        rows.append(
            {
                "start": length,
                "post_id": post_id,
                "sentence_text": sentence,
                "DSM5_symptom": SYMPTOM[crit],
                "status": int(status),
                "explanation": expl.strip(),
            }
        )
        text_parts.append(sentence)
        length += len(sentence)
        pos = m.end()
    text_parts.append(raw[pos:])
    text = "".join(text_parts)
    if "<<" in text or ">>" in text:
        sys.exit(f"{post_id}: malformed marker left in text")
    for r in rows:
        k = len([s for s in SPLIT.split(text[: r["start"]]) if s.strip()])
        r["sentence_id"] = f"{post_id}_s{k}"
    return text, rows


def main() -> None:
    posts: list[tuple[str, str]] = []
    ann: list[dict] = []
    for path in sorted(SOURCE.glob("posts_*.txt")):
        for post_id, raw in parse_file(path):
            text, rows = render(post_id, raw)
            posts.append((post_id, text))
            ann.extend(rows)
    ids = [p for p, _ in posts]
    if len(set(ids)) != len(ids):
        sys.exit("duplicate post_id")

    with open(OUT / "posts.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["post_id", "text"])
        w.writerows(posts)
    cols = ["post_id", "sentence_id", "sentence_text", "DSM5_symptom", "status", "explanation"]
    with open(OUT / "annotations.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(ann)

    # Summary for the README.
    texts = dict(posts)
    words = {p: len(t.split()) for p, t in posts}
    print(f"posts: {len(posts)}  rows: {len(ann)}")
    print(
        f"words: mean {statistics.mean(words.values()):.1f}, median "
        f"{statistics.median(words.values())}, min {min(words.values())}, max {max(words.values())}"
    )
    print(
        f"posts > 200 words: {sum(w > 200 for w in words.values())}, "
        f"> 450 words: {sum(w > 450 for w in words.values())}"
    )
    for sym in SYMPTOM.values():
        pos = {r["post_id"] for r in ann if r["DSM5_symptom"] == sym and r["status"] == 1}
        neg = sum(1 for r in ann if r["DSM5_symptom"] == sym and r["status"] == 0)
        print(f"  {sym:18s} positive posts {len(pos):3d}   status-0 rows {neg:3d}")
    positive = {r["post_id"] for r in ann if r["status"] == 1}
    print(f"no-symptom posts: {len(set(ids) - positive)}")
    print(
        f"status-1 rows: {sum(r['status'] == 1 for r in ann)}, "
        f"status-0 rows: {sum(r['status'] == 0 for r in ann)}"
    )
    late = []
    for p in ids:
        if words[p] <= 200:
            continue
        first: dict[str, int] = {}
        for r in ann:
            if r["post_id"] == p and r["status"] == 1:
                wi = len(texts[p][: r["start"]].split())
                first[r["DSM5_symptom"]] = min(first.get(r["DSM5_symptom"], wi), wi)
        if first and max(first.values()) >= 150:
            late.append((p, words[p], max(first.values())))
    print(
        f"long late-evidence posts (>200 words, a criterion first evidenced after word 150): "
        f"{len(late)}"
    )
    for p, w, s in late:
        print(f"    {p}: {w} words, late criterion starts at word {s}")
    per_post = {}
    for r in ann:
        if r["status"] == 1:
            per_post.setdefault(r["post_id"], set()).add(r["DSM5_symptom"])
    dist = {}
    for s in per_post.values():
        dist[len(s)] = dist.get(len(s), 0) + 1
    print(f"criteria per positive post: {dict(sorted(dist.items()))}")


if __name__ == "__main__":
    main()
