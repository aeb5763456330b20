"""The messages between the metric sink (training process) and its writer process.

Each kind is a small frozen dataclass; the writer dispatches on the type, one handler
each. Every message from the sink carries a sequence number ``seq``, increasing for the
life of the sink. The writer answers with :class:`Ack`: every message up to ``seq`` is
*durable* (in the store, or fsynced in the run's journal, or applied for control
messages). The sink keeps each message until it is acknowledged and resends what was not
when it has to start a new writer, so a writer that dies loses nothing; writes are
idempotent, so a resent point that had already arrived is not doubled.

Frames on the pipe are a 4-byte big-endian length and a pickle: both ends are this
package, in processes this package started.
"""

from __future__ import annotations

import pickle
import struct
import time
from dataclasses import dataclass, field
from typing import IO, Any

#: One metric point on the wire: (run_id, key, value, step, timestamp_ms).
Row = tuple[str, str, float, int, int]


@dataclass(frozen=True, slots=True)
class Points:
    """Metric points, in the order they were logged.

    ``shipped_s``: when the sink sent them (``time.monotonic``, one clock for the whole
    machine); the writer reads its own lag from it.
    """

    seq: int
    rows: list[Row]
    shipped_s: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, slots=True)
class Own:
    """This process runs ``run_id``: heartbeat it; with ``exclusive``, end it if we die."""

    seq: int
    run_id: str
    exclusive: bool = True


@dataclass(frozen=True, slots=True)
class Disown:
    """Stop heartbeating ``run_id`` (it was ended elsewhere, or is not ours any more)."""

    seq: int
    run_id: str


@dataclass(frozen=True, slots=True)
class EndRun:
    """Set the run's terminal status, after every point of it sent before this message."""

    seq: int
    run_id: str
    status: str
    reason: str | None = None
    end_time_ms: int | None = None


@dataclass(frozen=True, slots=True)
class RunData:
    """Params and tags of a run (MLflow keeps params immutable: a repeat must match)."""

    seq: int
    run_id: str
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Artifacts:
    """Upload a file or folder into the run's artifacts (under ``artifact_path``).

    With ``remove_after`` the local copy is this message's own (a staging copy) and is
    deleted once uploaded.
    """

    seq: int
    run_id: str
    local_path: str
    artifact_path: str | None = None
    remove_after: bool = False


@dataclass(frozen=True, slots=True)
class Inputs:
    """Dataset inputs of a run: ``(dataset fields, context)`` pairs, the fields as
    :meth:`mlflow.data.dataset.Dataset.to_dict` gives them (name, digest, source, …)."""

    seq: int
    run_id: str
    datasets: tuple[tuple[dict[str, str], str], ...]


@dataclass(frozen=True, slots=True)
class Flush:
    """Write everything sent so far now, then acknowledge."""

    seq: int


@dataclass(frozen=True, slots=True)
class Close:
    """Final flush, replay what the journals hold if the store answers, then exit."""

    seq: int


ToWriter = Points | Own | Disown | EndRun | RunData | Inputs | Artifacts | Flush | Close


@dataclass(frozen=True, slots=True)
class WriterStats:
    """Counters of one writer process, sent with every acknowledgement."""

    written: int = 0
    journaled: int = 0
    #: Journals of runs whose points are not all in the store yet.
    journals: tuple[str, ...] = ()
    #: The store did not answer at the last write.
    store_down: bool = False
    #: (run id, "artifact: reason") of artifacts the artifact location refused (full,
    #: read-only); each waits in its run's journal for `psy-agents sync`.
    refused: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Ack:
    """Every message with a sequence number up to ``seq`` is durable."""

    seq: int
    stats: WriterStats = field(default_factory=WriterStats)


_HEADER = struct.Struct("!I")


def write_frame(stream: IO[bytes], message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def read_frame(stream: IO[bytes]) -> Any | None:
    """The next message, or None at the end of the stream (the other side is gone)."""
    header = _read_exact(stream, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    body = _read_exact(stream, size)
    return None if body is None else pickle.loads(body)


def _read_exact(stream: IO[bytes], n: int) -> bytes | None:
    chunks = []
    while n:
        chunk = stream.read(n)
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)
