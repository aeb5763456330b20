"""The on-disk journal: metric points and run ends that the store could not take yet.

One file per run, ``<run_id>.journal.jsonl``, append-only. Each line is one record,
framed so that a reader can always resynchronise after a damaged one::

    <crc32 of the JSON, 8 hex digits> <JSON object>\\n

The first record is a header (``{"journal": 2, "run_id": …, "tracking_uri": …, "host": …,
"pid": …}``); then points records ``{"id": "<sink session>:<seq>:<part>", "m": [[key,
value, step, timestamp_ms], …]}``, params/tags records ``{"id": …, "params": {…}, "tags":
{…}}``, dataset-input records ``{"id": …, "inputs": [[{dataset fields}, context], …]}``,
artifact records ``{"id": …, "artifacts": "<local copy>", "path": …}`` and end
records ``{"id": …, "end": "FINISHED", "reason": …}``. A line whose checksum does not
match (a writer killed mid-append, a disk that filled up) is skipped and counted; because
the metric sink resends every message its writer had not confirmed, such a torn record is
normally written again, whole, further down, and the reader can tell (same ``id``).
Appends take a lock (one file in the journal folder) and are fsynced; an append first ends
a torn last line, so it never glues a new record onto a broken one. Points keep their
timestamps, so uploading one twice is a no-op on SQL stores; ``<journal>.progress``
records how many lines are uploaded, so an interrupted upload resumes instead of
repeating. Journals of format 1 (one JSON value per line, no checksum) are still read.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import re
import shutil
import socket
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psy_agents_noaug.tracking.store import LOG_BATCH_MAX_METRICS

FORMAT_VERSION = 2
SUFFIX = ".journal.jsonl"
SYNCED_SUFFIX = ".synced"
PROGRESS_SUFFIX = ".progress"
LOCK_NAME = ".lock"
_ID_IN_LINE = re.compile(rb'"id": ?"([^"]+)"')
_FRAMED = re.compile(rb"^([0-9a-f]{8}) (.*)$", re.S)


@dataclass(frozen=True, slots=True)
class Point:
    """One metric value, as MLflow stores it."""

    key: str
    value: float
    step: int
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class PointsRecord:
    id: str
    points: list[Point]
    line: int = 0


@dataclass(frozen=True, slots=True)
class EndRecord:
    id: str
    status: str
    reason: str | None = None
    line: int = 0


@dataclass(frozen=True, slots=True)
class RunDataRecord:
    id: str
    params: dict[str, str]
    tags: dict[str, str]
    line: int = 0


@dataclass(frozen=True, slots=True)
class InputsRecord:
    """Dataset inputs: ``(dataset fields, context)`` pairs (see :class:`.messages.Inputs`)."""

    id: str
    datasets: list[tuple[dict[str, str], str]]
    line: int = 0


@dataclass(frozen=True, slots=True)
class ArtifactsRecord:
    """A file or folder to upload; ``local_path`` is a copy the journal owns."""

    id: str
    local_path: str
    artifact_path: str | None
    line: int = 0


Record = PointsRecord | EndRecord | RunDataRecord | InputsRecord | ArtifactsRecord


@dataclass(frozen=True, slots=True)
class DamagedLine:
    """A line that could not be read; ``recovered`` when the same record follows whole."""

    line: int
    size: int
    id: str | None
    recovered: bool
    #: The header line: it names the store, and holds no data of the run.
    header: bool = False


def journal_path(journal_dir: str | Path, run_id: str) -> Path:
    return Path(journal_dir) / f"{run_id}{SUFFIX}"


def artifacts_dir(journal_dir: str | Path, run_id: str) -> Path:
    """Where the journal keeps its own copies of artifacts that wait for the store."""
    return Path(journal_dir) / f"{run_id}.artifacts"


def keep_copy(journal_dir: Path, run_id: str, seq: int, source: Path, *, owned: bool) -> Path:
    """The journal's own copy of an artifact; ``owned`` (a staged copy) is kept as it is."""
    if owned:
        return source
    target = artifacts_dir(journal_dir, run_id) / str(seq) / source.name
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    else:
        shutil.copy2(source, target)
    return target


def run_id_of(path: Path) -> str:
    return path.name.removesuffix(SYNCED_SUFFIX).removesuffix(SUFFIX)


@contextlib.contextmanager
def journal_lock(journal_dir: Path) -> Iterator[None]:
    """Excludes every other appender and finisher of the journals in this folder."""
    journal_dir.mkdir(parents=True, exist_ok=True)
    with open(journal_dir / LOCK_NAME, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _frame(obj: dict[str, Any]) -> bytes:
    data = json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()
    return b"%08x %s\n" % (zlib.crc32(data), data)


def _json_value(v: float) -> float | str:
    # JSON has no NaN/inf; keep them as strings and turn them back on read.
    return v if math.isfinite(v) else repr(v)


def append(
    path: Path, run_id: str, tracking_uri: str, records: Sequence[Record], *, owner_pid: int
) -> int:
    """Append records durably (locked, fsynced); returns the points + ends written.

    ``owner_pid`` is the training process the records come from (named in the header, so
    that `sync` can tell whether it still runs).
    """
    if not records:
        return 0
    chunks: list[bytes] = []
    count = 0
    for record in records:
        if isinstance(record, PointsRecord):
            rows = [[p.key, _json_value(p.value), p.step, p.timestamp_ms] for p in record.points]
            chunks.append(_frame({"id": record.id, "m": rows}))
            count += len(rows)
            continue
        if isinstance(record, EndRecord):
            body: dict[str, Any] = {"end": record.status, "reason": record.reason}
        elif isinstance(record, RunDataRecord):
            body = {"params": record.params, "tags": record.tags}
        elif isinstance(record, InputsRecord):
            body = {"inputs": [[fields, context] for fields, context in record.datasets]}
        else:
            body = {"artifacts": record.local_path, "path": record.artifact_path}
        chunks.append(_frame({"id": record.id, **body}))
        count += 1
    with journal_lock(path.parent), open(path, "a+b") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            header = {
                "journal": FORMAT_VERSION,
                "run_id": run_id,
                "tracking_uri": tracking_uri,
                "host": socket.gethostname(),
                "pid": owner_pid,
            }
            chunks.insert(0, _frame(header))
        else:
            fh.seek(size - 1)
            if fh.read(1) != b"\n":  # a torn last line: end it, so the next record stays whole
                chunks.insert(0, b"\n")
        fh.write(b"".join(chunks))
        fh.flush()
        os.fsync(fh.fileno())
    return count


@dataclass
class Journal:
    """A parsed journal file: what it holds, and what could not be read."""

    path: Path
    run_id: str
    tracking_uri: str | None
    records: list[Record]
    damaged: list[DamagedLine] = field(default_factory=list)
    lines: int = 0
    owner_host: str | None = None
    owner_pid: int | None = None
    #: The file's inode when read: progress is only ever about this very file.
    inode: int = 0

    @classmethod
    def read(cls, path: str | Path) -> Journal:
        """Parse every readable record; damaged lines are listed, never fatal."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"journal not found: {path}")
        with open(path, "rb") as fh:  # one open file: its inode and its bytes agree
            inode = os.fstat(fh.fileno()).st_ino
            raw = fh.read().split(b"\n")
        if raw and raw[-1] == b"":
            raw.pop()
        journal = cls(path, run_id_of(path), None, [], lines=len(raw), inode=inode)
        bad: list[tuple[int, bytes]] = []
        for number, line in enumerate(raw):
            parsed = _parse_line(line)
            if parsed is None:
                bad.append((number, line))
            elif isinstance(parsed, dict) and ("journal" in parsed or "version" in parsed):
                journal._take_header(parsed)
            else:
                record = _record(parsed, number)
                if record is None:
                    bad.append((number, line))
                else:
                    journal.records.append(record)
        later_ids: dict[str, int] = {}
        for record in journal.records:
            later_ids[record.id] = max(later_ids.get(record.id, -1), record.line)
        for number, line in bad:
            match = _ID_IN_LINE.search(line)
            rid = match.group(1).decode(errors="replace") if match else None
            recovered = rid is not None and later_ids.get(rid, -1) > number
            header = number == 0 and journal.tracking_uri is None and rid is None
            journal.damaged.append(DamagedLine(number, len(line), rid, recovered, header))
        return journal

    def _take_header(self, header: dict[str, Any]) -> None:
        self.run_id = str(header.get("run_id") or self.run_id)
        self.tracking_uri = header.get("tracking_uri") or self.tracking_uri
        self.owner_host = header.get("host")
        pid = header.get("pid")
        self.owner_pid = int(pid) if isinstance(pid, int) else None

    @property
    def unrecovered(self) -> list[DamagedLine]:
        """Damaged lines whose records are lost (no whole copy follows; not the header)."""
        return [d for d in self.damaged if not d.recovered and not d.header]

    @property
    def end(self) -> EndRecord | None:
        ends = [r for r in self.records if isinstance(r, EndRecord)]
        return ends[-1] if ends else None

    @property
    def n_points(self) -> int:
        return sum(len(r.points) for r in self.records if isinstance(r, PointsRecord))

    # -- upload progress ------------------------------------------------------------------
    def progress_path(self) -> Path:
        return self.path.with_name(self.path.name + PROGRESS_SUFFIX)

    def uploaded(self) -> int:
        """Lines already uploaded (records before this line index are in the store).

        Progress names the journal file's inode: a journal made anew for the run after
        another process finished the old one starts at 0, whatever was recorded before.
        """
        try:
            parts = self.progress_path().read_text().split()
            inode, lines = (int(parts[0]), int(parts[1])) if len(parts) == 2 else (0, -1)
        except (FileNotFoundError, ValueError, IndexError):
            return 0
        return lines if inode == self.inode and lines >= 0 else 0

    def mark_uploaded(self, lines: int) -> None:
        """Record progress, unless another process finished (renamed) this file meanwhile."""
        with journal_lock(self.path.parent):
            try:
                if self.path.stat().st_ino != self.inode:
                    return
            except FileNotFoundError:
                return
            tmp = self.progress_path().with_suffix(".tmp")
            tmp.write_text(f"{self.inode} {lines}")
            os.replace(tmp, self.progress_path())

    def chunks(self, start: int) -> Iterator[tuple[int, list[Point], Record | None]]:
        """(lines done, points, another record or None) from line ``start``.

        At most one batch of points each; upload the points, then the other record (params
        and tags, artifacts, the end), then record ``lines done`` as progress.
        """
        points: list[Point] = []
        done = start
        for record in self.records:
            if record.line < start:
                continue
            if not isinstance(record, PointsRecord):
                yield record.line + 1, points, record
                points, done = [], record.line + 1
                continue
            if points and len(points) + len(record.points) > LOG_BATCH_MAX_METRICS:
                yield done, points, None
                points = []
            points.extend(record.points)
            done = record.line + 1
            while len(points) > LOG_BATCH_MAX_METRICS:  # only a hand-made record is this big
                yield record.line, points[:LOG_BATCH_MAX_METRICS], None
                points = points[LOG_BATCH_MAX_METRICS:]
        if points:
            yield done, points, None


def _parse_line(line: bytes) -> dict[str, Any] | list[Any] | None:
    framed = _FRAMED.match(line)
    try:
        if framed:
            crc, data = framed.groups()
            if int(crc, 16) != zlib.crc32(data):
                return None
            value = json.loads(data)
        elif line[:1] in (b"{", b"["):  # format 1: no checksum
            value = json.loads(line)
        else:
            return None
    except ValueError:
        return None
    return value if isinstance(value, dict | list) else None


def _record(parsed: dict[str, Any] | list[Any], line: int) -> Record | None:
    try:
        if isinstance(parsed, list):  # format 1
            if parsed[0] == "m":
                _, key, value, step, ts = parsed
                point = Point(str(key), float(value), int(step), int(ts))
                return PointsRecord(f"v1:{line}", [point], line)
            if parsed[0] == "s":
                return EndRecord(f"v1:{line}", str(parsed[1]), None, line)
            return None
        if "m" in parsed:
            points = [Point(str(k), float(v), int(s), int(t)) for k, v, s, t in parsed["m"]]
            return PointsRecord(str(parsed["id"]), points, line)
        if "end" in parsed:
            return EndRecord(str(parsed["id"]), str(parsed["end"]), parsed.get("reason"), line)
        if "params" in parsed or "tags" in parsed:
            params = {str(k): str(v) for k, v in (parsed.get("params") or {}).items()}
            run_tags = {str(k): str(v) for k, v in (parsed.get("tags") or {}).items()}
            return RunDataRecord(str(parsed["id"]), params, run_tags, line)
        if "inputs" in parsed:
            datasets = [
                ({str(k): str(v) for k, v in fields.items()}, str(context))
                for fields, context in parsed["inputs"]
            ]
            return InputsRecord(str(parsed["id"]), datasets, line)
        if "artifacts" in parsed:
            path = parsed.get("path")
            return ArtifactsRecord(str(parsed["id"]), str(parsed["artifacts"]), path, line)
    except (KeyError, TypeError, ValueError, IndexError):
        return None
    return None


def finish(journal: Journal) -> Path | None:
    """Rename a fully uploaded journal to ``*.synced``; None if it grew since it was read."""
    with journal_lock(journal.path.parent):
        if not journal.path.exists():
            return None
        lines = journal.path.read_bytes().count(b"\n")
        if lines > journal.lines:
            return None  # another process appended meanwhile: upload that first
        done = journal.path.with_name(journal.path.name + SYNCED_SUFFIX)
        os.replace(journal.path, done)
        journal.progress_path().unlink(missing_ok=True)
        return done
