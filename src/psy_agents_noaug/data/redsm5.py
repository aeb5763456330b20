"""Read the ReDSM5 CSVs (or anything in their format, like the bundled sample).

Real annotation files are hand-made, so the reader is forgiving where the
intent is clear (label case, spacing, plural/singular, small misspellings,
status written as ``1.0`` or ``true``) and strict where it is not (unknown
labels, missing columns, duplicate post ids): a silent guess there would
train a model on the wrong labels. Rows it cannot use are dropped and each
one is reported in :attr:`ReDSM5Data.dropped`.
"""

from __future__ import annotations

import difflib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from psy_agents_noaug.data.criteria import SYMPTOMS

logger = logging.getLogger(__name__)

POSTS_COLUMNS: tuple[str, ...] = ("post_id", "text")
ANNOTATIONS_COLUMNS: tuple[str, ...] = (
    "post_id",
    "sentence_id",
    "sentence_text",
    "DSM5_symptom",
    "status",
    "explanation",
)

# Spellings seen in hand-made label files that mean one of the valid labels
# without doubt. Keys are already upper-cased with runs of non-alphanumerics -> "_".
_LABEL_ALIASES: dict[str, str] = {
    "DEPRESSED": "DEPRESSED_MOOD",
    "DEPRESSIVE_MOOD": "DEPRESSED_MOOD",
    "LOSS_OF_INTEREST": "ANHEDONIA",
    "APPETITE": "APPETITE_CHANGE",
    "APPETITE_CHANGES": "APPETITE_CHANGE",
    "APPETITE_WEIGHT_CHANGE": "APPETITE_CHANGE",
    "WEIGHT_CHANGE": "APPETITE_CHANGE",
    "SLEEP": "SLEEP_ISSUES",
    "SLEEP_ISSUE": "SLEEP_ISSUES",
    "SLEEP_PROBLEMS": "SLEEP_ISSUES",
    "SLEEP_DISTURBANCE": "SLEEP_ISSUES",
    "PSYCHOMOTOR_AGITATION": "PSYCHOMOTOR",
    "PSYCHOMOTOR_RETARDATION": "PSYCHOMOTOR",
    "PSYCHOMOTOR_CHANGES": "PSYCHOMOTOR",
    "LOSS_OF_ENERGY": "FATIGUE",
    "WORTHLESSNESS_GUILT": "WORTHLESSNESS",
    "WORTHLESS": "WORTHLESSNESS",
    "COGNITIVE_ISSUE": "COGNITIVE_ISSUES",
    "COGNITIVE": "COGNITIVE_ISSUES",
    "SUICIDAL_THOUGHT": "SUICIDAL_THOUGHTS",
    "SUICIDAL_IDEATION": "SUICIDAL_THOUGHTS",
    "SUICIDALITY": "SUICIDAL_THOUGHTS",
    "SPECIAL_CASES": "SPECIAL_CASE",
    "SPECIAL": "SPECIAL_CASE",
}
# How close a misspelling must be to a valid label (difflib ratio) to be accepted.
_TYPO_CUTOFF = 0.85

_TRUE_STATUS = frozenset({"1", "1.0", "true", "yes", "y", "present", "positive"})
_FALSE_STATUS = frozenset({"0", "0.0", "false", "no", "n", "absent", "negative"})


class DataError(ValueError):
    """A data file is missing, unreadable or malformed; the message says which and how to fix it."""


@dataclass
class ReDSM5Data:
    """Posts and their sentence-level annotations, cleaned.

    Attributes:
        posts: Columns ``post_id``, ``text`` (strings); ``post_id`` is unique.
        annotations: Columns ``post_id``, ``sentence_id``, ``sentence_text``,
            ``DSM5_symptom`` (a label in :data:`~psy_agents_noaug.data.criteria.SYMPTOMS`),
            ``status`` (int 0/1), ``explanation``. Every ``post_id`` is in ``posts``.
        dropped: One human-readable line per row that was left out, with the reason.
        label_fixes: Raw ``DSM5_symptom`` spellings that were mapped to a valid label.
    """

    posts: pd.DataFrame
    annotations: pd.DataFrame
    dropped: list[str] = field(default_factory=list)
    label_fixes: dict[str, str] = field(default_factory=dict)


def load_redsm5(posts_path: str | Path, annotations_path: str | Path) -> ReDSM5Data:
    """Read and clean a ReDSM5-format pair of CSV files.

    Args:
        posts_path: CSV with columns ``post_id,text`` (extra columns are ignored).
        annotations_path: CSV with columns
            ``post_id,sentence_id,sentence_text,DSM5_symptom,status,explanation``.

    Returns:
        The cleaned :class:`ReDSM5Data`. Rows that cannot be used (empty post id or
        text, unparsable status, empty label, annotations of unknown posts) are
        dropped and listed in ``dropped``.

    Raises:
        DataError: A file is missing, empty, not a readable CSV, lacks required
            columns, repeats a ``post_id`` in the posts file, or uses a
            ``DSM5_symptom`` label that is neither valid nor a recognisable typo.

    Example:
        >>> from psy_agents_noaug.data.sample import sample_paths
        >>> data = load_redsm5(*sample_paths())
        >>> sorted(data.annotations["status"].unique().tolist())
        [0, 1]
    """
    posts_path, annotations_path = Path(posts_path), Path(annotations_path)
    dropped: list[str] = []
    posts = _clean_posts(_read_csv(posts_path, "posts", POSTS_COLUMNS), posts_path, dropped)
    raw_annotations = _read_csv(annotations_path, "annotations", ANNOTATIONS_COLUMNS)
    annotations, label_fixes = _clean_annotations(
        raw_annotations, annotations_path, set(posts["post_id"]), dropped
    )
    if label_fixes:
        fixes = ", ".join(f"{raw!r}->{label}" for raw, label in sorted(label_fixes.items()))
        logger.info("%s: normalised DSM5_symptom labels: %s", annotations_path, fixes)
    if dropped:
        logger.warning("%s", _skipped_summary(dropped, posts_path, annotations_path))
    return ReDSM5Data(
        posts=posts, annotations=annotations, dropped=dropped, label_fixes=label_fixes
    )


def _skipped_summary(dropped: list[str], posts_path: Path, annotations_path: Path) -> str:
    """One line: how many rows of each file were left out, and the first few reasons."""
    counts = []
    for path in (posts_path, annotations_path):
        n = sum(line.startswith(f"{path.name} ") for line in dropped)
        if n:
            counts.append(f"{n} row(s) of {path}")
    examples = "; ".join(dropped[:3]) + ("; …" if len(dropped) > 3 else "")
    return f"skipped {' and '.join(counts)}, the rest is used: {examples}"


def normalize_symptom(raw: str) -> str | None:
    """Map a raw ``DSM5_symptom`` value to a valid label, or ``None`` if it is unknown.

    Case, surrounding spaces, spaces/hyphens for underscores, plural/singular
    and small misspellings are forgiven; anything else is unknown.

    Example:
        >>> normalize_symptom(" sleep issue ")
        'SLEEP_ISSUES'
        >>> normalize_symptom("LEADEN_PARALYSIS") is None
        True
    """
    key = re.sub(r"[^A-Z0-9]+", "_", raw.strip().upper()).strip("_")
    if not key:
        return None
    if key in SYMPTOMS:
        return key
    if key in _LABEL_ALIASES:
        return _LABEL_ALIASES[key]
    squashed = {label.replace("_", ""): label for label in (*SYMPTOMS, *_LABEL_ALIASES)}
    if key.replace("_", "") in squashed:
        return normalize_symptom(squashed[key.replace("_", "")])
    close = difflib.get_close_matches(key, list(SYMPTOMS), n=1, cutoff=_TYPO_CUTOFF)
    return close[0] if close else None


def _read_csv(path: Path, kind: str, required: tuple[str, ...]) -> pd.DataFrame:
    """Read one CSV as strings, with an actionable error for each way it can be unusable."""
    fix_path = f"fix: pass the ReDSM5 {kind} CSV as data.{kind}_path=/path/to/file.csv"
    header = ",".join(required)
    if not path.exists():
        raise DataError(f"{kind} file not found: {path}; {fix_path}")
    if not path.is_file():
        raise DataError(f"{kind} path is not a file: {path}; {fix_path}")
    if not path.read_bytes().strip():
        raise DataError(
            f"{kind} file is empty: {path}; fix: it needs a header row ({header}) and data rows"
        )
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise DataError(
            f"{kind} file is empty: {path}; fix: it needs a header row ({header}) and data rows"
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataError(
            f"{kind} file is not a readable CSV: {path} ({reason}); "
            f"fix: save it as UTF-8, comma-separated, with the header {header}"
        ) from exc
    frame = _canonical_columns(frame, path, kind, required)
    if frame.empty:
        raise DataError(
            f"{kind} file has a header but no data rows: {path}; fix: add the {kind} rows"
        )
    return frame


def _canonical_columns(
    frame: pd.DataFrame, path: Path, kind: str, required: tuple[str, ...]
) -> pd.DataFrame:
    """Match header names ignoring case and spaces, keep only the required columns."""
    by_key: dict[str, str] = {}
    for column in frame.columns:
        key = str(column).strip().lower()
        if key in by_key:
            raise DataError(
                f"{kind} file has the column {column!r} twice: {path}; "
                "fix: keep one column of that name"
            )
        by_key[key] = column
    missing = [name for name in required if name.lower() not in by_key]
    if missing:
        found = [str(c) for c in frame.columns]
        raise DataError(
            f"{kind} file is missing column(s) {missing}: {path} (found {found}); "
            f"fix: the header must include {','.join(required)}"
        )
    return pd.DataFrame({name: frame[by_key[name.lower()]].astype(str) for name in required})


def _clean_posts(frame: pd.DataFrame, path: Path, dropped: list[str]) -> pd.DataFrame:
    frame = frame.assign(post_id=frame["post_id"].str.strip())
    keep = []
    for row, (post_id, text) in enumerate(zip(frame["post_id"], frame["text"], strict=True), 1):
        if not post_id:
            dropped.append(f"{path.name} data row {row}: empty post_id")
        elif not text.strip():
            dropped.append(f"{path.name} data row {row} (post_id={post_id!r}): empty text")
        else:
            keep.append(row - 1)
    frame = frame.iloc[keep].reset_index(drop=True)
    duplicated = frame["post_id"][frame["post_id"].duplicated()].unique().tolist()
    if duplicated:
        shown = ", ".join(repr(p) for p in duplicated[:5])
        more = f" and {len(duplicated) - 5} more" if len(duplicated) > 5 else ""
        raise DataError(
            f"posts file repeats post_id {shown}{more}: {path}; "
            "fix: each post must appear once (merge or remove the duplicates)"
        )
    return frame


def _clean_annotations(
    frame: pd.DataFrame, path: Path, known_posts: set[str], dropped: list[str]
) -> tuple[pd.DataFrame, dict[str, str]]:
    frame = frame.assign(post_id=frame["post_id"].str.strip())
    fixes: dict[str, str] = {}
    unknown: dict[str, int] = {}
    symptoms: list[str] = []
    statuses: list[int] = []
    keep: list[int] = []
    for row, record in enumerate(frame.itertuples(index=False), 1):
        where = f"{path.name} data row {row} (post_id={record.post_id!r})"
        raw_label = record.DSM5_symptom
        if not raw_label.strip():
            dropped.append(f"{where}: empty DSM5_symptom")
            continue
        label = normalize_symptom(raw_label)
        if label is None:
            unknown[raw_label.strip()] = unknown.get(raw_label.strip(), 0) + 1
            continue
        if label != raw_label:
            fixes[raw_label] = label
        status = _parse_status(record.status)
        if status is None:
            dropped.append(f"{where}: status {record.status!r} is not 0/1")
            continue
        if record.post_id not in known_posts:
            dropped.append(f"{where}: post_id is not in the posts file")
            continue
        keep.append(row - 1)
        symptoms.append(label)
        statuses.append(status)
    if unknown:
        listed = ", ".join(f"{label!r} ({n} rows)" for label, n in sorted(unknown.items()))
        raise DataError(
            f"annotations file has unknown DSM5_symptom label(s) {listed}: {path}; "
            f"fix: use one of {', '.join(SYMPTOMS)} or remove those rows"
        )
    if not keep:
        raise DataError(
            f"annotations file has no usable rows: {path} (all {len(frame)} dropped, e.g. "
            f"{dropped[-1]}); fix: check that its post_ids match the posts file"
        )
    cleaned = frame.iloc[keep].reset_index(drop=True)
    cleaned["DSM5_symptom"] = pd.Series(symptoms, dtype=str)
    cleaned["status"] = pd.Series(statuses, dtype="int64")
    return cleaned[list(ANNOTATIONS_COLUMNS)], fixes


def _parse_status(raw: str) -> int | None:
    value = raw.strip().lower()
    if value in _TRUE_STATUS:
        return 1
    if value in _FALSE_STATUS:
        return 0
    return None
