"""The metric sink: the one lossless, near-zero-overhead path from training to MLflow.

The training thread only appends ``(run, key, value, step, time)`` to a deque
(about a microsecond); values may be device tensors, which are read back in
bulk off the training thread, so logging never forces a device sync there. A
daemon "shipper" thread hands batches to a writer *process*
(`sink_writer.py`) twice a second; the writer owns the MLflow client, so store
work never holds this process's GIL, and it runs on idle CPU only
(SCHED_IDLE) while nobody waits on it. The writer batches (at most 1000 metrics
per write, bulk SQL on sqlite/PostgreSQL, see `bulk_metrics.py`), retries,
journals to disk when the store is unreachable and replays later, so no point
is dropped. If the writer cannot be started, the shipper journals to disk itself.

Example:
    >>> import mlflow
    >>> from psy_agents_noaug.utils.metric_sink import get_sink
    >>> with mlflow.start_run():                      # doctest: +SKIP
    ...     sink = get_sink()
    ...     sink.log("train/loss_step", 0.5, step=1)
    ...     sink.flush()
    True
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psy_agents_noaug.utils import journal as jr
from psy_agents_noaug.utils.sink_protocol import read_frame, write_frame

#: How often queued points leave this process. Each hand-over costs this process about
#: 0.1 ms of CPU however few points it carries, so it is not more frequent; a SIGKILL of
#: the training process loses at most this much of the most recent points.
SHIP_INTERVAL_S = 0.5
DEFAULT_JOURNAL_DIR = ".psy_agents/journal"

Value = Any  # float | int | 0-dim torch.Tensor


@dataclass
class FlushResult:
    """What a flush achieved: True-ish when every point so far is in the store."""

    stored: bool
    written: int = 0
    journaled: int = 0
    journals: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.stored


class _Writer:
    """One writer process per tracking URI, shared by every sink of this process."""

    def __init__(self, tracking_uri: str, journal_dir: Path) -> None:
        self.tracking_uri = tracking_uri
        self.journal_dir = journal_dir
        self.queue: deque[tuple[str, str, Value, int, int]] = deque()
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.send_lock = threading.Lock()
        self.acks: dict[int, tuple[threading.Event, dict[str, Any]]] = {}
        self.flush_ids = itertools.count(1)
        self.enqueued = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.broken = False
        self.local_journaled = 0
        self._start_process()
        self.shipper = threading.Thread(
            target=self._ship_loop, name="psy-agents-metric-shipper", daemon=True
        )
        self.shipper.start()

    # -- process ----------------------------------------------------------------------
    def _start_process(self) -> None:
        env = dict(os.environ)
        src = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
        try:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "psy_agents_noaug.utils.sink_writer",
                    self.tracking_uri,
                    str(self.journal_dir),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
                start_new_session=True,  # Ctrl-C goes to training, not to the writer
            )
        except OSError as exc:
            self._mark_broken(f"cannot start the writer process ({exc})")
            return
        threading.Thread(target=self._ack_loop, name="psy-agents-sink-acks", daemon=True).start()

    def _ack_loop(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while True:
            message = read_frame(self.proc.stdout)
            if message is None:
                break
            if message[0] == "ack" and message[1] in self.acks:
                event, stats = self.acks[message[1]]
                stats.update(message[2])
                event.set()
        if not self.stopping.is_set():
            self._mark_broken("the writer process exited")
        for event, _ in list(self.acks.values()):
            event.set()

    def _mark_broken(self, why: str) -> None:
        if not self.broken:
            self.broken = True
            print(
                f"[psy-agents sink] {why}; journaling metrics to {self.journal_dir}",
                file=sys.stderr,
                flush=True,
            )

    def _send(self, message: Any) -> bool:
        if self.broken or self.proc is None or self.proc.stdin is None:
            return False
        try:
            write_frame(self.proc.stdin, message)
            return True
        except (BrokenPipeError, OSError, ValueError):
            self._mark_broken("the writer process is gone")
            return False

    # -- shipping ---------------------------------------------------------------------
    def _ship_loop(self) -> None:
        while not self.stopping.is_set():
            self.wake.wait(SHIP_INTERVAL_S)
            self.wake.clear()
            try:
                self.ship()
            except Exception as exc:  # keep shipping whatever one bad batch did
                print(f"[psy-agents sink] shipping failed: {exc!r}", file=sys.stderr, flush=True)

    def ship(self) -> None:
        """Drain the queue, read tensors back in bulk, and hand the batch to the writer."""
        with self.send_lock:
            n = len(self.queue)
            if not n:
                return
            batch = [self.queue.popleft() for _ in range(n)]
            rows = _materialize(batch)
            if not self._send(("points", rows)):
                self._journal_locally(rows)

    def _journal_locally(self, rows: list[tuple[str, str, float, int, int]]) -> None:
        by_run: dict[str, list[jr.Point]] = {}
        for run_id, key, value, step, ts in rows:
            by_run.setdefault(run_id, []).append(jr.Point(key, value, step, ts))
        for run_id, points in by_run.items():
            path = jr.journal_path(self.journal_dir, run_id)
            self.local_journaled += jr.append_points(path, run_id, self.tracking_uri, points)

    def control(self, message: Any) -> None:
        """Send a control message after every point queued before it."""
        self.ship()
        with self.send_lock:
            if not self._send(message) and message[0] == "status":
                path = jr.journal_path(self.journal_dir, message[1])
                jr.append_points(path, message[1], self.tracking_uri, [], message[2])

    def flush(self, timeout: float | None) -> FlushResult:
        self.ship()
        flush_id = next(self.flush_ids)
        event, stats = threading.Event(), dict[str, Any]()
        self.acks[flush_id] = (event, stats)
        with self.send_lock:
            sent = self._send(("flush", flush_id))
        try:
            if sent:
                event.wait(timeout)
        finally:
            self.acks.pop(flush_id, None)
        if not sent or not event.is_set() or self.broken:
            journals = sorted(str(p) for p in self.journal_dir.glob("*.journal.jsonl"))
            return FlushResult(False, journaled=self.local_journaled, journals=journals)
        return FlushResult(
            stored=not stats.get("journals"),
            written=stats.get("written", 0),
            journaled=stats.get("journaled", 0),
            journals=list(stats.get("journals", [])),
        )

    def close(self, timeout: float | None = 120.0) -> None:
        """Ship everything, let the writer write or journal it, and wait for it to exit."""
        self.ship()
        self.stopping.set()
        self.wake.set()
        with self.send_lock:
            self._send(("close",))
            if self.proc is not None and self.proc.stdin is not None:
                with contextlib.suppress(OSError):
                    self.proc.stdin.close()
        if self.proc is not None:
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                print(
                    "[psy-agents sink] writer still busy at exit; it finishes in the background",
                    file=sys.stderr,
                    flush=True,
                )


def _materialize(
    batch: list[tuple[str, str, Value, int, int]],
) -> list[tuple[str, str, float, int, int]]:
    """Turn queued values into floats; device tensors are read back in one go per device.

    A value that is not a number (or not a one-element tensor) cannot be stored: it is
    left out with a message naming its key, and shipping goes on.
    """
    values: list[Any] = [item[2] for item in batch]
    on_device: dict[Any, list[int]] = {}
    for i, value in enumerate(values):
        device = getattr(value, "device", None)
        if device is not None and device.type != "cpu" and value.numel() == 1:
            on_device.setdefault(device, []).append(i)
            continue
        try:  # a CPU tensor's .item() is a memory load, not a device sync
            values[i] = float(value.item() if hasattr(value, "item") else value)
        except (TypeError, ValueError, RuntimeError) as exc:
            values[i] = None
            _warn_unstorable(batch[i][1], value, exc)
    for indices in on_device.values():
        import torch

        stacked = torch.stack([values[i].detach().reshape(()).float() for i in indices])
        for i, v in zip(indices, stacked.tolist(), strict=True):  # one sync per device
            values[i] = v
    return [
        (run_id, key, values[i], int(step), int(ts))
        for i, (run_id, key, _, step, ts) in enumerate(batch)
        if values[i] is not None
    ]


def _warn_unstorable(key: str, value: Any, exc: Exception) -> None:
    print(
        f"[psy-agents sink] metric {key!r} skipped: {type(value).__name__} value {value!r:.60} "
        f"is not a number ({exc}); log a float or a one-element tensor",
        file=sys.stderr,
        flush=True,
    )


class MetricSink:
    """Non-blocking metric logging for one MLflow run. Get one with `get_sink`."""

    def __init__(self, run_id: str, writer: _Writer) -> None:
        self.run_id = run_id
        self._writer = writer
        self._queue = writer.queue

    def log(self, key: str, value: Value, step: int, timestamp_ms: int | None = None) -> None:
        """Queue one point; returns at once. `value` may be a 0-dim (device) tensor."""
        ts = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
        self._queue.append((self.run_id, key, value, step, ts))

    def log_dict(
        self, metrics: Mapping[str, Value], step: int, timestamp_ms: int | None = None
    ) -> None:
        """Queue several points that share a step and a timestamp."""
        ts = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
        run_id, append = self.run_id, self._queue.append
        for key, value in metrics.items():
            append((run_id, key, value, step, ts))

    def flush(self, timeout: float | None = 60.0) -> FlushResult:
        """Block until every point queued so far is in the store (or safely journaled)."""
        return self._writer.flush(timeout)

    def own_run(self) -> None:
        """Declare this process the run's owner: if it dies, the writer marks the run KILLED."""
        self._writer.control(("own", self.run_id))

    def disown_run(self) -> None:
        """The run was ended normally: stop its heartbeat and orphan handling."""
        self._writer.control(("disown", self.run_id))

    def end_run(self, status: str = "FINISHED") -> None:
        """Set the run's terminal status after all its points (journaled if the store is down)."""
        self._writer.control(("status", self.run_id, status))


_WRITERS: dict[tuple[str, str], _Writer] = {}
_LOCK = threading.Lock()


def _writer_for(tracking_uri: str, journal_dir: str | Path | None) -> _Writer:
    with _LOCK:
        if journal_dir is None:  # reuse this store's writer (and its journal folder) if any
            for (uri, _), existing in _WRITERS.items():
                if uri == tracking_uri and not existing.stopping.is_set():
                    return existing
    jdir = Path(journal_dir or os.environ.get("PSY_AGENTS_JOURNAL_DIR", DEFAULT_JOURNAL_DIR))
    key = (tracking_uri, str(jdir.resolve()))
    with _LOCK:
        writer = _WRITERS.get(key)
        if writer is None or writer.stopping.is_set():
            writer = _WRITERS[key] = _Writer(tracking_uri, jdir.resolve())
        return writer


def get_sink(
    run_id: str | None = None,
    *,
    tracking_uri: str | None = None,
    journal_dir: str | Path | None = None,
) -> MetricSink:
    """The sink for a run (default: the calling thread's active MLflow run).

    Args:
        run_id: Run to log into; None means `mlflow.active_run()` of this thread.
        tracking_uri: Store to write to; None means `mlflow.get_tracking_uri()`.
        journal_dir: Where points wait if the store is down (default
            ``.psy_agents/journal`` or ``$PSY_AGENTS_JOURNAL_DIR``).

    Raises:
        RuntimeError: no run_id given and no active run.
    """
    import mlflow

    if run_id is None:
        run = mlflow.active_run()
        if run is None:
            raise RuntimeError(
                "no active MLflow run: start one with mlflow.start_run() or pass run_id"
            )
        run_id = run.info.run_id
    uri = tracking_uri or mlflow.get_tracking_uri()
    return MetricSink(run_id, _writer_for(uri, journal_dir))


def prestart(tracking_uri: str, journal_dir: str | Path | None = None) -> None:
    """Start the writer process early so store set-up overlaps with model loading."""
    _writer_for(tracking_uri, journal_dir)


def flush_all(timeout: float | None = 60.0) -> bool:
    """Flush every writer of this process; True when everything is in the store."""
    with _LOCK:
        writers = list(_WRITERS.values())
    return all([bool(w.flush(timeout)) for w in writers])


def shutdown(timeout: float | None = 120.0) -> None:
    """Flush and stop every writer (runs at interpreter exit too)."""
    with _LOCK:
        writers = list(_WRITERS.values())
        _WRITERS.clear()
    for writer in writers:
        writer.close(timeout)


atexit.register(shutdown)
