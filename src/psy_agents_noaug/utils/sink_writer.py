"""The sink's writer process: takes metric points over a pipe and writes them to MLflow.

Run as ``python -m psy_agents_noaug.utils.sink_writer TRACKING_URI JOURNAL_DIR``.
It lives in its own process (and at a lower CPU priority) so that MLflow's
per-point store work never competes with the training thread for the GIL.

Messages in (stdin), all tuples:
    ("points", [(run_id, key, value, step, timestamp_ms), ...])
    ("own", run_id)             the parent owns this run: heartbeat it, end it if the parent dies
    ("disown", run_id)          the parent ended the run itself
    ("status", run_id, status)  set a terminal status after that run's points
    ("flush", flush_id)         reply once everything sent before it is stored or journaled
    ("close",)                  final flush, replay journals, exit
Messages out (stdout): ("ack", flush_id, {"written": n, "journaled": n, "journals": [...]})

Points are written once a second (every 5 s to a tracking server; sooner when a
flush waits or 1000 points are pending), through the bulk SQL
path of `bulk_metrics.py` on sqlite/PostgreSQL stores and ``log_batch`` elsewhere.
Writes retry with backoff; when the store stays unreachable, points are spilled
to a per-run journal (see `journal.py`) and replayed once the store answers again.
If stdin closes without "close" (the training process was killed), everything
received is still written and the runs the parent owned are marked KILLED.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from psy_agents_noaug.utils import journal as jr
from psy_agents_noaug.utils.bulk_metrics import BulkMetricWriter
from psy_agents_noaug.utils.sink_protocol import read_frame, write_frame

FLUSH_INTERVAL_S = 1.0  # database stores: a write costs ~0.5 ms of CPU plus ~0.015 ms per point
#: A tracking server spends ~5 ms of its CPU on every request however small: fewer, larger
#: requests (still <= 1000 points each) keep a server on the same machine out of the way.
HTTP_FLUSH_INTERVAL_S = 5.0
MAX_PENDING = 200_000  # points held in memory before spilling to the journal
RETRY_DELAYS_S = (0.2, 0.5, 1.0)  # quick retries before a batch is journaled
REPLAY_EVERY_S = 2.0  # how often to retry journals while the store is down
HEARTBEAT_S = 30.0  # how often owned runs get their liveness tag refreshed
HEARTBEAT_TAG = "psy_agents.heartbeat"  # ms since the epoch; `psy-agents doctor` reads it
BULK_FAILURES_TO_DISABLE = 3  # bulk writes refused while log_batch succeeds: stop trying them
_UNSET = object()


def set_background_priority(background: bool) -> bool:
    """Run on idle CPU only (SCHED_IDLE) while training; normal priority when someone waits.

    Training never shares a core with the writer: it writes in the gaps, and a backlog
    simply waits in memory (or the journal) until a flush, when this process is given
    normal priority so that the caller does not wait on a starved writer.
    """
    if not hasattr(os, "sched_setscheduler") or os.environ.get("PSY_AGENTS_SINK_IDLE") == "0":
        return False
    policy = os.SCHED_IDLE if background else os.SCHED_OTHER
    try:
        os.sched_setscheduler(0, policy, os.sched_param(0))
        return True
    except OSError:  # not permitted here: stay at whatever priority we have
        return False


class Writer:
    """Batches points per run and writes them; journals what the store will not take."""

    def __init__(self, tracking_uri: str, journal_dir: Path, out: Any) -> None:
        self.tracking_uri = tracking_uri
        self.journal_dir = journal_dir
        self.out = out
        remote = tracking_uri.startswith(("http://", "https://"))
        self.flush_interval = HTTP_FLUSH_INTERVAL_S if remote else FLUSH_INTERVAL_S
        self.cond = threading.Condition()
        self.inbox: list[tuple[Any, ...]] = []
        self.eof = False
        self.closing = False
        self.owned: set[str] = set()
        self.written = 0
        self.journaled = 0
        self.journals: set[str] = set()  # run ids with a journal not yet replayed
        self.last_replay_try = 0.0
        self.last_heartbeat = 0.0
        self._client: Any = None
        self._bulk: Any = _UNSET
        self.bulk_failures = 0

    @property
    def client(self) -> Any:
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(self.tracking_uri)
        return self._client

    @property
    def bulk(self) -> BulkMetricWriter | None:
        if self._bulk is _UNSET:
            self._bulk = BulkMetricWriter.for_client(self.client)
        return self._bulk  # type: ignore[return-value]

    def warm_up(self) -> None:
        """Import MLflow now, while training is still loading its model.

        The store itself is opened at the first write, once the training process has
        created the run: two processes creating a new sqlite schema at once would race.
        """
        with contextlib.suppress(ImportError):
            import mlflow.store.tracking.sqlalchemy_store
            import mlflow.tracking  # noqa: F401

    # -- reading ----------------------------------------------------------------------
    def read_loop(self, stream: Any) -> None:
        while True:
            message = read_frame(stream)
            with self.cond:
                if message is None:
                    self.eof = True
                else:
                    self.inbox.append(message)
                self.cond.notify()
            if message is None or message[0] == "close":
                return

    # -- writing ----------------------------------------------------------------------
    def run(self) -> None:
        pending: dict[str, list[jr.Point]] = defaultdict(list)
        n_pending = 0
        deadline = time.monotonic() + self.flush_interval
        while True:
            with self.cond:
                while not self.inbox and not self.eof and time.monotonic() < deadline:
                    self.cond.wait(timeout=max(0.0, deadline - time.monotonic()))
                inbox, self.inbox = self.inbox, []
                eof = self.eof
            flush_ids: list[Any] = []
            statuses: list[tuple[str, str]] = []
            for message in inbox:
                kind = message[0]
                if kind == "points":
                    for run_id, key, value, step, ts in message[1]:
                        pending[run_id].append(jr.Point(key, value, step, ts))
                        n_pending += 1
                elif kind == "own":
                    self.owned.add(message[1])
                    self.last_heartbeat = 0.0  # beat at once for the new run
                elif kind == "disown":
                    self.owned.discard(message[1])
                elif kind == "status":
                    statuses.append((message[1], message[2]))
                elif kind == "flush":
                    flush_ids.append(message[1])
                elif kind == "close":
                    self.closing = True
            due = time.monotonic() >= deadline
            waited_on = bool(flush_ids or statuses or eof or self.closing)
            if waited_on:
                set_background_priority(False)
            if n_pending and (
                due or flush_ids or statuses or eof or self.closing or n_pending >= jr.MAX_BATCH
            ):
                self.write_pending(pending, urgent=bool(flush_ids or eof or self.closing))
                pending.clear()
                n_pending = 0
            for run_id, status in statuses:
                self.set_status(run_id, status)
                self.owned.discard(run_id)
            if self.journals and (flush_ids or self.closing or eof or self._replay_due()):
                self.replay_journals()
            if self.owned and time.monotonic() - self.last_heartbeat >= HEARTBEAT_S:
                self.heartbeat()
            for flush_id in flush_ids:
                self.ack(flush_id)
            if waited_on:
                set_background_priority(True)
            if due:
                deadline = time.monotonic() + self.flush_interval
            if eof or self.closing:
                if eof and not self.closing:
                    for run_id in sorted(self.owned):
                        self.end_orphan(run_id)
                self.report_leftovers()
                return

    def write_pending(self, pending: dict[str, list[jr.Point]], *, urgent: bool) -> None:
        for run_id, points in pending.items():
            if run_id in self.journals:
                # Keep order: once a run is journaling, new points queue behind the journal.
                self.spill(run_id, points)
                continue
            for i in range(0, len(points), jr.MAX_BATCH):
                chunk = points[i : i + jr.MAX_BATCH]
                if not self.try_write(run_id, chunk):
                    self.spill(run_id, points[i:])
                    break

    def try_write(self, run_id: str, points: list[jr.Point]) -> bool:
        for attempt, delay in enumerate((0.0, *RETRY_DELAYS_S)):
            if delay:
                time.sleep(delay)  # backoff between store retries (not synchronisation)
            try:
                self.store_points(run_id, points)
                self.written += len(points)
                return True
            except Exception as exc:  # the store can fail in many ways; all mean "retry"
                if attempt == len(RETRY_DELAYS_S):
                    _log(f"store unreachable for run {run_id} ({_short(exc)}); journaling")
        return False

    def store_points(self, run_id: str, points: list[jr.Point]) -> None:
        """Write one batch: the bulk SQL path when the store allows it, else ``log_batch``."""
        bulk_error: Exception | None = None
        if self.bulk is not None:
            try:
                self.bulk.write(run_id, points)
                self.bulk_failures = 0
                return
            except Exception as exc:
                bulk_error = exc
        from mlflow.entities import Metric

        metrics = [Metric(p.key, p.value, p.timestamp_ms, p.step) for p in points]
        self.client.log_batch(run_id, metrics=metrics, synchronous=True)
        if bulk_error is not None:  # MLflow took what the bulk path refused
            self.bulk_failures += 1
            if self.bulk_failures >= BULK_FAILURES_TO_DISABLE:
                _log(f"bulk metric writes disabled ({_short(bulk_error)}); using log_batch")
                self._bulk = None

    def spill(self, run_id: str, points: list[jr.Point], status: str | None = None) -> None:
        path = jr.journal_path(self.journal_dir, run_id)
        self.journaled += jr.append_points(path, run_id, self.tracking_uri, points, status)
        self.journals.add(run_id)

    def set_status(self, run_id: str, status: str) -> None:
        if run_id in self.journals:
            self.spill(run_id, [], status)
            return
        try:
            self.client.set_terminated(run_id, status=status)
        except Exception:
            self.spill(run_id, [], status)

    def heartbeat(self) -> None:
        """Tell the store the owned runs are alive, so a crash can later be told apart."""
        self.last_heartbeat = time.monotonic()
        now = str(int(time.time() * 1000))
        for run_id in sorted(self.owned):
            try:
                self.client.set_tag(run_id, HEARTBEAT_TAG, now)
            except Exception:
                return  # store down: the journal has the points; liveness can wait

    def end_orphan(self, run_id: str) -> None:
        """The parent died without ending a run it owned: record that, don't leave it RUNNING."""
        try:
            if self.client.get_run(run_id).info.status == "RUNNING":
                self.client.set_tag(run_id, "psy_agents.end_reason", "training process died")
                self.set_status(run_id, "KILLED")
        except Exception:
            self.spill(run_id, [], "KILLED")

    def _replay_due(self) -> bool:
        return time.monotonic() - self.last_replay_try >= REPLAY_EVERY_S

    def replay_journals(self) -> None:
        self.last_replay_try = time.monotonic()
        for run_id in sorted(self.journals):
            path = jr.journal_path(self.journal_dir, run_id)
            try:
                journal = jr.Journal.read(path)
                sent = jr.replay(journal, self.client)
            except Exception:
                return  # still down; try again later
            self.written += sent
            jr.finish(journal)
            self.journals.discard(run_id)

    def ack(self, flush_id: Any) -> None:
        stats = {
            "written": self.written,
            "journaled": self.journaled,
            "journals": [str(jr.journal_path(self.journal_dir, r)) for r in sorted(self.journals)],
        }
        with contextlib.suppress(BrokenPipeError, OSError):
            write_frame(self.out, ("ack", flush_id, stats))

    def report_leftovers(self) -> None:
        for run_id in sorted(self.journals):
            path = jr.journal_path(self.journal_dir, run_id)
            _log(
                f"the tracking store is unreachable; metrics of run {run_id} are safe in "
                f"{path}. Upload them later with: psy-agents sync {path}"
            )


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


def _log(message: str) -> None:
    print(f"[psy-agents sink] {message}", file=sys.stderr, flush=True)


def main(argv: list[str]) -> int:
    tracking_uri, journal_dir = argv[0], Path(argv[1])
    # Fail fast to our own retry-then-journal path instead of MLflow's minutes of HTTP retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    # Ctrl-C in the terminal is for the training process; this one must finish writing.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if not set_background_priority(True):
        with contextlib.suppress(OSError):
            os.nice(10)
    writer = Writer(tracking_uri, journal_dir, sys.stdout.buffer)
    reader = threading.Thread(
        target=writer.read_loop,
        args=(sys.stdin.buffer,),
        name="psy-agents-sink-reader",
        daemon=True,
    )
    reader.start()
    writer.warm_up()
    writer.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
