"""The metric writer process: takes messages from the sink and makes them durable in MLflow.

Forked by the launcher (:mod:`.launcher`, which calls :func:`serve`), or run as ``python
-m psy_agents_noaug.tracking.writer TRACKING_URI JOURNAL_DIR SESSION``. It lives in its
own process (on idle CPU) so that MLflow's store work never competes with the training
thread for the GIL. One handler per message kind (see :mod:`.messages`).

Points are written once a second (every 5 s to a tracking server; at once when a flush or
a run end waits, or 1000 points are pending), through the bulk SQL path
(:mod:`.bulk_sql`) on sqlite/PostgreSQL stores and ``log_batch`` elsewhere, with a few
quick retries. When the store stays unreachable, the points go to the run's journal
(:mod:`.journal`), and later points of that run queue behind them there, so order holds;
the journal is replayed once the store answers. After each write the writer acknowledges
(:class:`~.messages.Ack`) every message it has made durable, and only then may the sink
forget it. If the sink's end of the pipe closes without :class:`~.messages.Close` (the
training process died), everything received is still written and the runs it owned
exclusively are ended KILLED.
"""

from __future__ import annotations

import contextlib
import enum
import os
import signal
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from psy_agents_noaug.tracking import journal as jr
from psy_agents_noaug.tracking import tags
from psy_agents_noaug.tracking.messages import (
    Ack,
    Artifacts,
    Close,
    Disown,
    EndRun,
    Flush,
    Inputs,
    Own,
    Points,
    RunData,
    ToWriter,
    WriterStats,
    read_frame,
    write_frame,
)
from psy_agents_noaug.tracking.store import (
    DEFAULT_HTTP_MAX_RETRIES,
    DEFAULT_HTTP_TIMEOUT_S,
    LOG_BATCH_MAX_METRICS,
    LOG_BATCH_MAX_PARAMS,
    apply_http_settings,
    is_rejection,
)

#: Points handled this long after the sink shipped them mean the writer is starved of idle
#: CPU (a training that keeps every core busy): it takes normal priority until it handles
#: points within CAUGHT_UP_LAG_S again, so its lag, its memory and a run's final wait stay
#: bounded. It needs about 1 % of one core.
BEHIND_LAG_S = 3.0
CAUGHT_UP_LAG_S = 0.5
WATCH_INTERVAL_S = 0.5  # how often the watchdog looks at the current pass
WATCH_START_TIMEOUT_S = 5.0  # a watchdog not started by then is not waited for
#: Database stores: one write costs ~0.5 ms of CPU plus ~0.015 ms per point.
FLUSH_INTERVAL_S = 1.0
#: A tracking server spends ~5 ms of its CPU on every request however small: fewer, larger
#: requests (still <= 1000 points each) keep a server on the same machine out of the way.
HTTP_FLUSH_INTERVAL_S = 5.0
RETRY_DELAYS_S = (0.2, 0.5, 1.0)  # quick retries before a batch is journaled
REPLAY_EVERY_S = 2.0  # how often to retry journals while the store is down
BULK_FAILURES_TO_DISABLE = 3  # bulk writes refused while log_batch succeeds: stop trying them


class Outcome(enum.Enum):
    STORED = "stored"
    REJECTED = "rejected"  # the store answered no: retrying cannot help
    UNREACHABLE = "unreachable"  # after the quick retries: journal it


def batch_ranges(sizes: list[int], limit: int = LOG_BATCH_MAX_METRICS) -> list[tuple[int, int]]:
    """Consecutive groups packed into store calls of at most ``limit`` points: [first, end).

    The sink ships a group every half second; one call per group would pay a tracking
    server's ~15 ms per request ten times per 5 s batch. A group above ``limit`` goes alone
    (and is split by :meth:`Writer.write_group`).
    """
    ranges: list[tuple[int, int]] = []
    first, total = 0, 0
    for index, size in enumerate(sizes):
        if index > first and total + size > limit:
            ranges.append((first, index))
            first, total = index, 0
        total += size
    if first < len(sizes):
        ranges.append((first, len(sizes)))
    return ranges


class WriterState(enum.Enum):
    RUNNING = "running"
    CLOSING = "closing"  # Close received: write, replay, exit
    ORPHANED = "orphaned"  # the sink's pipe closed without Close: write, end owned runs, exit


_NORMAL_THREADS: set[int] = set()  # native ids of threads that always keep normal priority


def set_background_priority(background: bool) -> bool:
    """Run on idle CPU only (SCHED_IDLE) while training; normal priority when someone waits.

    Training never shares a core with the writer: it writes in the gaps. It gets normal
    priority while a flush waits on it, so that the caller does not wait on a starved
    writer, and while it is behind (see :meth:`Writer.pace`). Linux schedules threads,
    not processes: every thread of this process is set.
    """
    if not hasattr(os, "sched_setscheduler") or os.environ.get("PSY_AGENTS_SINK_IDLE") == "0":
        return False
    policy = os.SCHED_IDLE if background else os.SCHED_OTHER
    try:
        threads = [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:
        threads = [0]
    threads = [tid for tid in threads if tid not in _NORMAL_THREADS]
    try:
        for tid in threads:
            with contextlib.suppress(ProcessLookupError):  # a thread that just ended
                os.sched_setscheduler(tid, policy, os.sched_param(0))
        return True
    except OSError:  # not permitted here: stay at whatever priority we have
        return False


class Writer:
    """Batches points per run and writes them; journals what the store will not take."""

    def __init__(
        self, tracking_uri: str, journal_dir: Path, out: Any, *, session: str, owner_pid: int
    ) -> None:
        self.tracking_uri = tracking_uri
        self.journal_dir = journal_dir
        self.out = out
        self.session = session
        self.owner_pid = owner_pid
        remote = tracking_uri.startswith(("http://", "https://"))
        self.flush_interval = HTTP_FLUSH_INTERVAL_S if remote else FLUSH_INTERVAL_S
        self.state = WriterState.RUNNING
        self.cond = threading.Condition()
        self.inbox: list[ToWriter] = []
        self.sink_gone = False
        #: run id -> [(seq, points)] waiting for the next write, in arrival order.
        self.pending: dict[str, list[tuple[int, list[jr.Point]]]] = defaultdict(list)
        self.n_pending = 0
        self.behind = False  # starved of idle CPU: at normal priority until caught up
        self.pace_lock = threading.Lock()
        self.working_since: float | None = None  # when the loop's current pass began
        self.watch_stop = threading.Event()
        self.watching = threading.Event()  # the watchdog is exempt from idle priority
        self.handled_seq = 0  # every message up to here was handled (maybe still pending)
        self.acked_seq = 0
        self.owned: dict[str, bool] = {}  # run id -> exclusive
        self.journaling: set[str] = set()  # runs with a journal not yet replayed
        self.seen_runs: set[str] = set()
        self.written = 0
        self.journaled = 0
        self.store_down = False
        self.refused: list[tuple[str, str]] = []
        self.last_refusal = ""
        self.last_replay_try = 0.0
        self.last_heartbeat = 0.0
        self._client: Any = None
        self._bulk: Any = None
        self._bulk_checked = False
        self.bulk_failures = 0
        self.handlers: dict[type, Callable[[Any], None]] = {
            Points: self.on_points,
            Own: self.on_own,
            Disown: self.on_disown,
            EndRun: self.on_end_run,
            RunData: self.on_run_data,
            Inputs: self.on_inputs,
            Artifacts: self.on_artifacts,
            Flush: self.on_flush,
            Close: self.on_close,
        }

    @property
    def client(self) -> Any:
        if self._client is None:
            from mlflow.tracking import MlflowClient

            from psy_agents_noaug.tracking.store import ensure_schema

            ensure_schema(self.tracking_uri)  # raises while the store is unusable: retried
            self._client = MlflowClient(self.tracking_uri)
        return self._client

    @property
    def bulk(self) -> Any:
        if not self._bulk_checked:
            from psy_agents_noaug.tracking.bulk_sql import BulkMetricWriter

            self._bulk = BulkMetricWriter.for_client(self.client)
            self._bulk_checked = True
        return self._bulk

    # -- reading ----------------------------------------------------------------------
    def read_loop(self, stream: Any) -> None:
        while True:
            message = read_frame(stream)
            with self.cond:
                if message is None:
                    self.sink_gone = True
                else:
                    self.inbox.append(message)
                self.cond.notify()
            if message is None or isinstance(message, Close):
                return

    # -- the loop ---------------------------------------------------------------------
    def run(self) -> None:
        deadline = time.monotonic() + self.flush_interval
        while self.state == WriterState.RUNNING:
            with self.cond:
                while not self.inbox and not self.sink_gone and time.monotonic() < deadline:
                    self.cond.wait(timeout=max(0.0, deadline - time.monotonic()))
                inbox, self.inbox = self.inbox, []
                if self.sink_gone and not inbox:
                    self.state = WriterState.ORPHANED
            self.working_since = time.monotonic()
            for message in inbox:
                self.handlers[type(message)](message)
                self.handled_seq = max(self.handled_seq, message.seq)
            if self.sink_gone and self.state == WriterState.RUNNING:
                self.state = WriterState.ORPHANED
            if time.monotonic() >= deadline or self.n_pending >= LOG_BATCH_MAX_METRICS:
                self.write_pending()
                deadline = time.monotonic() + self.flush_interval
            if self.journaling and self._replay_due():
                self.replay_journals()
            if self.owned and time.monotonic() - self.last_heartbeat >= tags.HEARTBEAT_INTERVAL_S:
                self.heartbeat()
            self.acknowledge()
            self.working_since = None
        self.watch_stop.set()
        with self.urgent():
            self.write_pending()
            if self.state == WriterState.ORPHANED:
                for run_id, exclusive in sorted(self.owned.items()):
                    if exclusive:
                        self.end_orphan(run_id)
            if self.journaling:
                self.replay_journals()
            self.acknowledge()
            self.report_leftovers()

    # -- handlers: one per message kind ----------------------------------------------
    def on_points(self, message: Points) -> None:
        self.pace(time.monotonic() - message.shipped_s)
        by_run: dict[str, list[jr.Point]] = defaultdict(list)
        for run_id, key, value, step, ts in message.rows:
            by_run[run_id].append(jr.Point(key, value, step, ts))
        for run_id, points in by_run.items():
            self._note_run(run_id)
            self.pending[run_id].append((message.seq, points))
            self.n_pending += len(points)

    def pace(self, lag_s: float) -> None:
        """Idle CPU while the writer keeps up; normal priority while it is behind."""
        with self.pace_lock:
            if not self.behind and lag_s > BEHIND_LAG_S:
                self.behind = True
                set_background_priority(False)
            elif self.behind and lag_s < CAUGHT_UP_LAG_S:
                self.behind = False
                set_background_priority(True)

    def watch(self) -> None:
        """Catch a writer starved in the middle of a pass (a write of 1000 points needs
        ~20 ms of CPU, which idle priority can stretch to many seconds on a busy machine).

        This thread keeps normal priority and only wakes twice a second to look."""
        _NORMAL_THREADS.add(threading.get_native_id())
        self.watching.set()
        while not self.watch_stop.wait(WATCH_INTERVAL_S):
            started = self.working_since
            running_s = 0.0 if started is None else time.monotonic() - started
            if running_s > BEHIND_LAG_S:
                self.pace(running_s)  # raises it; only handled points lower it again

    @contextlib.contextmanager
    def urgent(self) -> Any:
        """Normal CPU priority while someone waits on this process."""
        set_background_priority(False)
        try:
            yield
        finally:
            with self.pace_lock:  # the watchdog may decide at the same moment
                set_background_priority(not self.behind)

    def _note_run(self, run_id: str) -> None:
        if run_id not in self.seen_runs:
            self.seen_runs.add(run_id)
            if jr.journal_path(self.journal_dir, run_id).exists():
                self.journaling.add(run_id)  # an earlier writer left one: queue behind it

    def on_own(self, message: Own) -> None:
        self.owned[message.run_id] = message.exclusive
        self.last_heartbeat = 0.0  # beat at once for the new run

    def on_disown(self, message: Disown) -> None:
        self.owned.pop(message.run_id, None)

    def on_end_run(self, message: EndRun) -> None:
        with self.urgent():
            self.write_pending()
            self.set_status(message)
        self.owned.pop(message.run_id, None)

    def on_run_data(self, message: RunData) -> None:
        from mlflow.entities import Param, RunTag

        self._note_run(message.run_id)
        record = jr.RunDataRecord(
            f"{self.session}:{message.seq}:data", message.params, message.tags
        )
        if message.run_id not in self.journaling:
            params = [Param(k, v) for k, v in message.params.items()]
            run_tags = [RunTag(k, v) for k, v in message.tags.items()]

            def store() -> None:  # MLflow takes at most 100 params and 100 tags per call
                for start in range(0, max(len(params), len(run_tags)), LOG_BATCH_MAX_PARAMS):
                    end = start + LOG_BATCH_MAX_PARAMS
                    self.client.log_batch(
                        message.run_id, params=params[start:end], tags=run_tags[start:end]
                    )

            outcome = self.attempt(store, f"params and tags of run {message.run_id}")
            if outcome != Outcome.UNREACHABLE:
                return
        self._append(message.run_id, [record])

    def on_inputs(self, message: Inputs) -> None:
        from psy_agents_noaug.tracking.datasets import dataset_inputs

        self._note_run(message.run_id)
        if message.run_id not in self.journaling:
            outcome = self.attempt(
                lambda: self.client.log_inputs(
                    message.run_id, datasets=dataset_inputs(message.datasets)
                ),
                f"dataset inputs of run {message.run_id}",
            )
            if outcome != Outcome.UNREACHABLE:
                return
        record = jr.InputsRecord(f"{self.session}:{message.seq}:in", list(message.datasets))
        self._append(message.run_id, [record])

    def on_artifacts(self, message: Artifacts) -> None:
        from psy_agents_noaug.tracking.sync import remove_local_copy

        self._note_run(message.run_id)
        path = Path(message.local_path)
        if not path.exists():
            _log(f"artifact {path} of run {message.run_id} is gone before its upload; skipped")
            return
        # unreachable: journaled, and the run's later messages queue behind it until a replay
        # uploads it; refused: kept in the journal (and said), while the metrics go on
        queue_behind = True
        if message.run_id not in self.journaling:
            upload = self.client.log_artifacts if path.is_dir() else self.client.log_artifact
            outcome = self.attempt(
                lambda: upload(message.run_id, str(path), message.artifact_path),
                f"artifact {path.name} of run {message.run_id}",
                kept=True,
            )
            if outcome == Outcome.STORED:
                if message.remove_after:
                    remove_local_copy(path)
                return
            if outcome == Outcome.REJECTED:  # full or read-only: the metrics still go on
                self.refused.append((message.run_id, f"{path.name}: {self.last_refusal}"))
                queue_behind = False
        kept = jr.keep_copy(
            self.journal_dir, message.run_id, message.seq, path, owned=message.remove_after
        )
        record = jr.ArtifactsRecord(
            f"{self.session}:{message.seq}:art", str(kept), message.artifact_path
        )
        self._append(message.run_id, [record], journaling=queue_behind)

    def on_flush(self, message: Flush) -> None:
        with self.urgent():
            self.write_pending()
            if self.journaling:
                self.replay_journals()

    def on_close(self, message: Close) -> None:
        self.state = WriterState.CLOSING

    # -- writing ----------------------------------------------------------------------
    def write_pending(self) -> None:
        pending, self.pending = self.pending, defaultdict(list)
        self.n_pending = 0
        for run_id, groups in pending.items():
            if run_id in self.journaling:
                self.spill(run_id, groups)  # keep order: behind what the journal holds
                continue
            for first, end in batch_ranges([len(points) for _, points in groups]):
                points = [point for _, group in groups[first:end] for point in group]
                if not self.write_group(run_id, points):
                    self.spill(run_id, groups[first:])
                    break

    def write_group(self, run_id: str, points: list[jr.Point]) -> bool:
        for start in range(0, len(points), LOG_BATCH_MAX_METRICS):
            if not self.try_write(run_id, points[start : start + LOG_BATCH_MAX_METRICS]):
                return False
        return True

    def try_write(self, run_id: str, points: list[jr.Point]) -> bool:
        """Store one batch; False when the store stays unreachable (journal it)."""
        outcome = self.attempt(
            lambda: self.store_points(run_id, points), f"{len(points)} points of run {run_id}"
        )
        if outcome == Outcome.STORED:
            self.written += len(points)
        return outcome != Outcome.UNREACHABLE

    def attempt(self, call: Callable[[], Any], what: str, *, kept: bool = False) -> Outcome:
        """Run one store call with a few quick retries; a refusal is final (and said).

        ``kept``: what was refused is kept (journaled), not dropped; the message says so.
        """
        for attempt, delay in enumerate((0.0, *RETRY_DELAYS_S)):
            if delay:
                time.sleep(delay)  # backoff between store retries (not synchronisation)
            try:
                call()
            except Exception as exc:  # the store can fail in many ways; most mean "retry"
                if is_rejection(exc):
                    fate = "kept in the journal" if kept else "dropped"
                    _log(f"the store refused {what} ({_short(exc)}); {fate}")
                    self.last_refusal = _short(exc)
                    return Outcome.REJECTED
                if attempt == len(RETRY_DELAYS_S):
                    _log(f"store unreachable for {what} ({_short(exc)}); journaling")
                    self.store_down = True
                continue
            self.store_down = False
            return Outcome.STORED
        return Outcome.UNREACHABLE

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

    def spill(self, run_id: str, groups: list[tuple[int, list[jr.Point]]]) -> None:
        records: list[jr.Record] = []
        for seq, points in groups:
            for part, start in enumerate(range(0, len(points), LOG_BATCH_MAX_METRICS)):
                chunk = points[start : start + LOG_BATCH_MAX_METRICS]
                records.append(jr.PointsRecord(f"{self.session}:{seq}:{part}", chunk))
        self._append(run_id, records)

    def _append(self, run_id: str, records: list[jr.Record], *, journaling: bool = True) -> None:
        """Append to the run's journal; with ``journaling`` its later points follow there."""
        path = jr.journal_path(self.journal_dir, run_id)
        self.journaled += jr.append(
            path, run_id, self.tracking_uri, records, owner_pid=self.owner_pid
        )
        if journaling:
            self.journaling.add(run_id)

    def set_status(self, message: EndRun) -> None:
        record = jr.EndRecord(f"{self.session}:{message.seq}:end", message.status, message.reason)
        if message.run_id in self.journaling:
            self._append(message.run_id, [record])
            return
        try:
            if message.reason:
                self.client.set_tag(message.run_id, tags.END_REASON, message.reason[:5000])
            self.client.set_terminated(
                message.run_id, status=message.status, end_time=message.end_time_ms
            )
        except Exception as exc:
            _log(f"cannot end run {message.run_id} now ({_short(exc)}); journaling its end")
            self.store_down = True
            self._append(message.run_id, [record])

    def heartbeat(self) -> None:
        """Tell the store the owned runs are alive, so a crash can later be told apart."""
        self.last_heartbeat = time.monotonic()
        now = tags.heartbeat_value()
        for run_id in sorted(self.owned):
            try:
                self.client.set_tag(run_id, tags.HEARTBEAT, now)
            except Exception:
                return  # store down: the journal has the points; liveness can wait

    def end_orphan(self, run_id: str) -> None:
        """The sink died without ending a run it owned: record that, don't leave it RUNNING."""
        if run_id not in self.journaling:
            try:
                if self.client.get_run(run_id).info.status != "RUNNING":
                    return
            except Exception:
                pass  # store down: the end is journaled below
        self.set_status(EndRun(self.handled_seq, run_id, "KILLED", "the training process died"))

    def _replay_due(self) -> bool:
        return time.monotonic() - self.last_replay_try >= REPLAY_EVERY_S

    def replay_journals(self) -> None:
        from psy_agents_noaug.tracking.sync import RunGone, upload

        self.last_replay_try = time.monotonic()
        for run_id in sorted(self.journaling):
            path = jr.journal_path(self.journal_dir, run_id)
            try:
                journal = jr.Journal.read(path)
            except FileNotFoundError:  # synced by someone else meanwhile
                self.journaling.discard(run_id)
                continue
            try:
                uploaded = upload(journal, self.client)
            except RunGone as exc:
                _log(f"{exc}; its journal stays at {path}")
                self.journaling.discard(run_id)
                continue
            except Exception:
                self.store_down = True
                return  # still down; try again later
            self.store_down = False
            self.written += uploaded.points
            for missing in uploaded.missing_artifacts:
                _log(f"journaled artifact {missing} of run {run_id} is gone; it is not uploaded")
            if journal.unrecovered:
                lines = ", ".join(str(d.line + 1) for d in journal.unrecovered[:10])
                _log(f"{path}: line(s) {lines} were torn and never written again: lost")
            if jr.finish(journal) is not None:
                self.journaling.discard(run_id)

    # -- acknowledgements ----------------------------------------------------------------
    def stats(self) -> WriterStats:
        journals = tuple(str(jr.journal_path(self.journal_dir, r)) for r in sorted(self.journaling))
        return WriterStats(
            self.written, self.journaled, journals, self.store_down, tuple(self.refused)
        )

    def acknowledge(self) -> None:
        """Tell the sink every message up to the last durable one may be forgotten."""
        durable = self.handled_seq
        if self.n_pending:
            first = min(seq for groups in self.pending.values() for seq, _ in groups)
            durable = min(durable, first - 1)
        if durable <= self.acked_seq:
            return
        self.acked_seq = max(self.acked_seq, durable)
        with contextlib.suppress(BrokenPipeError, OSError, ValueError):
            write_frame(self.out, Ack(self.acked_seq, self.stats()))

    def report_leftovers(self) -> None:
        for run_id in sorted(self.journaling):
            path = jr.journal_path(self.journal_dir, run_id)
            _log(
                f"the tracking store is unreachable; metrics of run {run_id} are safe in "
                f"{path}. Upload them later with: psy-agents sync {path}"
            )


def warm_up() -> None:
    """Import what writing needs (MLflow's client and SQL store): 2-3 s of CPU, paid while
    training still loads its model, or once by the launcher for all its writers."""
    with contextlib.suppress(ImportError):
        import mlflow.store.tracking.sqlalchemy_store
        import mlflow.tracking  # noqa: F401


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


def _log(message: str) -> None:
    print(f"[psy-agents sink] {message}", file=sys.stderr, flush=True)


def serve(
    tracking_uri: str,
    journal_dir: Path,
    session: str,
    *,
    owner_pid: int,
    stdin: BinaryIO,
    stdout: BinaryIO,
) -> int:
    """Be the writer: read messages from ``stdin`` and acknowledge on ``stdout`` until the
    sink closes (or dies). Started fresh by :func:`main` or forked by the launcher."""
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    # Fail fast to our own retry-then-journal path, not MLflow's minutes of HTTP retries;
    # the training process's settings (inherited) say how long one request may take.
    apply_http_settings(
        int(os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT", DEFAULT_HTTP_TIMEOUT_S)),
        int(os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", DEFAULT_HTTP_MAX_RETRIES)),
        backoff_factor=0,  # our own retries space the attempts
    )
    # Ctrl-C, a closed terminal and a stop are for the training process; this one must
    # finish writing. SIGTTOU: a background group's warning on a `stty tostop` terminal.
    for terminal_signal in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGTTOU):
        signal.signal(terminal_signal, signal.SIG_IGN)
    writer = Writer(tracking_uri, journal_dir, stdout, session=session, owner_pid=owner_pid)
    watchdog = threading.Thread(target=writer.watch, name="psy-agents-sink-watch", daemon=True)
    watchdog.start()  # before the idle priority below: it keeps normal priority
    writer.watching.wait(WATCH_START_TIMEOUT_S)  # exempt before the threads go idle
    if not set_background_priority(True):
        with contextlib.suppress(OSError):
            os.nice(10)
    reader = threading.Thread(
        target=writer.read_loop, args=(stdin,), name="psy-agents-sink-reader", daemon=True
    )
    reader.start()
    warm_up()
    writer.run()
    return 0


def main(argv: list[str]) -> int:
    tracking_uri, journal_dir, session = argv[0], Path(argv[1]), argv[2]
    return serve(
        tracking_uri,
        journal_dir,
        session,
        owner_pid=os.getppid(),
        stdin=sys.stdin.buffer,
        stdout=sys.stdout.buffer,
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
