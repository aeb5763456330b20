"""Build the held-out CSVs from the hand-written source files in this folder.

The posts were written by hand, one at a time, in ``posts_*.txt`` and ``late.txt``.
An annotated sentence is written inline as

    <<A7|1|explanation|The sentence itself.>>

(several ``code|status|explanation`` triples may precede the sentence). The markup is
removed from the post text, so every ``sentence_text`` is an exact substring of its post.

Run:  python tests/data/heldout/source/build.py
Writes: tests/data/heldout/posts.csv, tests/data/heldout/annotations.csv,
        tests/data/late_evidence.csv
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

SOURCE = Path(__file__).resolve().parent
HELDOUT = SOURCE.parent
DATA = HELDOUT.parent

CODES = {
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
TAG = re.compile(r"<<(.+?)>>", re.S)
HEADER = re.compile(r"^=== (\S+)(?: (\S+))?\s*$", re.M)
SENT_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")


def blocks(path: Path):
    raw = path.read_text(encoding="utf-8")
    heads = list(HEADER.finditer(raw))
    for i, h in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(raw)
        yield h.group(1), h.group(2), raw[h.end() : end].strip()


def parse(body: str):
    """Return (text, [(start, sentence, symptom, status, explanation), ...])."""
    out, anns, pos = [], [], 0
    length = 0
    for m in TAG.finditer(body):
        chunk = body[pos : m.start()]
        out.append(chunk)
        length += len(chunk)
        fields = m.group(1).split("|")
        sentence, specs = fields[-1], fields[:-1]
        if len(specs) % 3 or not specs:
            raise ValueError(f"bad tag: {m.group(0)[:80]}")
        for i in range(0, len(specs), 3):
            code, status, expl = specs[i : i + 3]
            anns.append((length, sentence, CODES[code], int(status), expl.strip()))
        out.append(sentence)
        length += len(sentence)
        pos = m.end()
    out.append(body[pos:])
    text = "".join(out)
    assert "<<" not in text and ">>" not in text, text[:80]
    return text, anns


def sentence_index(text: str, start: int) -> int:
    prefix = text[:start].strip()
    return len([p for p in SENT_SPLIT.split(prefix) if p.strip()]) if prefix else 0


def main() -> None:
    posts, rows = [], []
    for path in sorted(SOURCE.glob("posts_*.txt")):
        for pid, _, body in blocks(path):
            text, anns = parse(body)
            posts.append({"post_id": pid, "text": text})
            for start, sent, sym, status, expl in anns:
                rows.append(
                    {
                        "post_id": pid,
                        "sentence_id": f"{pid}_s{sentence_index(text, start)}",
                        "sentence_text": sent,
                        "DSM5_symptom": sym,
                        "status": status,
                        "explanation": expl,
                    }
                )
    with open(HELDOUT / "posts.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["post_id", "text"])
        w.writeheader()
        w.writerows(posts)
    with open(HELDOUT / "annotations.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(
            f,
            fieldnames=[
                "post_id",
                "sentence_id",
                "sentence_text",
                "DSM5_symptom",
                "status",
                "explanation",
            ],
        )
        w.writeheader()
        w.writerows(rows)

    late = []
    for pid, crit, body in blocks(SOURCE / "late.txt"):
        text, anns = parse(body)
        (ann,) = anns
        late.append(
            {"post_id": pid, "criterion_id": crit, "evidence_sentence": ann[1], "text": text}
        )
    with open(DATA / "late_evidence.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["post_id", "criterion_id", "evidence_sentence", "text"])
        w.writeheader()
        w.writerows(late)
    print(f"{len(posts)} posts, {len(rows)} annotation rows, {len(late)} late-evidence posts")


if __name__ == "__main__":
    main()
