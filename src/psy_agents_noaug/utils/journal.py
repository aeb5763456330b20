"""The on-disk journal: metric points (and run-status changes) the store could not take yet.

One JSON-lines file per run: a header line naming the run and the tracking URI,
then one line per point ``["m", key, value, step, timestamp_ms]`` or status change
``["s", status]``. Points keep their original timestamps, so uploading a point
twice is a no-op on SQL stores (MLflow's metric primary key includes them), and a
``.progress`` file beside the journal records how many lines are uploaded, so a
replay that is interrupted and started again resumes instead of repeating.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_BATCH = 1000
SYNCED_SUFFIX = ".synced"


@dataclass(frozen=True)
class Point:
    """One metric value, as MLflow stores it."""

    key: str
    value: float
    step: int
    timestamp_ms: int


def journal_path(journal_dir: str | Path, run_id: str) -> Path:
    return Path(journal_dir) / f"{run_id}.journal.jsonl"


def append_points(
    path: Path, run_id: str, tracking_uri: str, points: Iterable[Point], status: str | None = None
) -> int:
    """Append points (and optionally a final run status) durably; returns lines written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists() or path.stat().st_size == 0
    lines = []
    if new:
        lines.append(json.dumps({"run_id": run_id, "tracking_uri": tracking_uri, "version": 1}))
    count = 0
    for p in points:
        lines.append(json.dumps(["m", p.key, _json_value(p.value), p.step, p.timestamp_ms]))
        count += 1
    if status is not None:
        lines.append(json.dumps(["s", status]))
        count += 1
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return count


def _json_value(v: float) -> float | str:
    # JSON has no NaN/inf; keep them as strings and turn them back on read.
    return v if math.isfinite(v) else repr(v)


def _from_json_value(v: Any) -> float:
    return float(v)


@dataclass
class Journal:
    """A parsed journal file."""

    path: Path
    run_id: str
    tracking_uri: str
    entries: list[list[Any]]

    @classmethod
    def read(cls, path: str | Path) -> Journal:
        """Parse a journal; a torn last line (crash mid-write) is ignored."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"journal not found: {path}")
        raw = path.read_text(encoding="utf-8").splitlines()
        if not raw:
            raise ValueError(f"journal {path} is empty")
        try:
            header = json.loads(raw[0])
            run_id, uri = header["run_id"], header["tracking_uri"]
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"{path} is not a psy-agents journal (bad header line)") from None
        entries = []
        for i, line in enumerate(raw[1:], start=2):
            try:
                entries.append(json.loads(line))
            except ValueError:
                if i != len(raw):
                    raise ValueError(f"{path}: line {i} is corrupt") from None
        return cls(path, run_id, uri, entries)

    def progress_path(self) -> Path:
        return self.path.with_name(self.path.name + ".progress")

    def uploaded(self) -> int:
        try:
            return int(self.progress_path().read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def mark_uploaded(self, n: int) -> None:
        tmp = self.progress_path().with_suffix(".tmp")
        tmp.write_text(str(n))
        os.replace(tmp, self.progress_path())

    def chunks(self, start: int) -> Iterator[tuple[int, list[Point], str | None]]:
        """(end index, points, status or None) chunks of at most MAX_BATCH points from `start`."""
        points: list[Point] = []
        i = start
        for i in range(start, len(self.entries)):
            entry = self.entries[i]
            if entry[0] == "m":
                _, key, value, step, ts = entry
                points.append(Point(key, _from_json_value(value), int(step), int(ts)))
                if len(points) == MAX_BATCH:
                    yield i + 1, points, None
                    points = []
            elif entry[0] == "s":
                yield i + 1, points, entry[1]
                points = []
        if points:
            yield len(self.entries), points, None


def replay(journal: Journal, client: Any, *, run_id: str | None = None) -> int:
    """Upload what is not uploaded yet; returns points uploaded. Raises on store errors."""
    from mlflow.entities import Metric

    target = run_id or journal.run_id
    sent = 0
    for end, points, status in journal.chunks(journal.uploaded()):
        if points:
            client.log_batch(
                target,
                metrics=[Metric(p.key, p.value, p.timestamp_ms, p.step) for p in points],
                synchronous=True,
            )
            sent += len(points)
        if status is not None:
            client.set_terminated(target, status=status)
        journal.mark_uploaded(end)
    return sent


def finish(journal: Journal) -> Path:
    """Mark a fully uploaded journal as done (renamed, kept for audit)."""
    done = journal.path.with_name(journal.path.name + SYNCED_SUFFIX)
    os.replace(journal.path, done)
    journal.progress_path().unlink(missing_ok=True)
    return done
