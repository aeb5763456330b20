"""The metric sink: the one lossless, near-zero-overhead path from training to MLflow.

The training thread only appends ``(run, key, value, step, time)`` to a deque (well
under a microsecond); values may be device tensors, which are read back in bulk off the
training thread, so logging never forces a device sync there. A daemon "shipper" thread
hands batches to a writer *process* (:mod:`.writer`, forked from :mod:`.launcher`) twice a
second; the writer owns the MLflow client, so store work never holds this process's GIL.

Every message to the writer has a sequence number and stays here until the writer
acknowledges it durable (stored, or fsynced in the run's journal). If the writer dies,
this side starts a new one and resends whatever was not acknowledged; after repeated
deaths it writes the journal itself. So a point is lost only if *this* process is killed
before shipping it (at most the last half second).

Example:
    >>> import mlflow
    >>> from psy_agents_noaug.tracking.sink import get_sink
    >>> with mlflow.start_run():                      # doctest: +SKIP
    ...     sink = get_sink()
    ...     sink.log("train/loss_step", 0.5, step=1)
    ...     sink.flush()
    True
"""

from __future__ import annotations

import atexit
import contextlib
import enum
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from psy_agents_noaug.tracking import journal as jr
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
    Row,
    RunData,
    ToWriter,
    WriterStats,
    read_frame,
    write_frame,
)

#: How often queued points leave this process. Each hand-over costs this process about
#: 0.1 ms of CPU however few points it carries, so it is not more frequent; a SIGKILL of
#: the training process loses at most this much of the most recent points.
SHIP_INTERVAL_S = 0.5
DEFAULT_JOURNAL_DIR = ".psy_agents/journal"
JOURNAL_DIR_ENV = "PSY_AGENTS_JOURNAL_DIR"
#: Writer deaths tolerated within RESTART_WINDOW_S before this process journals itself.
MAX_WRITER_DEATHS = 3
RESTART_WINDOW_S = 60.0
DEFAULT_FLUSH_TIMEOUT_S = 60.0
#: After the writer exited, how long to wait for its last acknowledgements to be read.
ACK_DRAIN_TIMEOUT_S = 10.0

Value = Any  # float | int | 0-dim torch.Tensor
QueuedPoint = tuple[str, str, Value, int, int]


@dataclass
class FlushResult:
    """What a flush achieved: truthy when every point so far is in the store."""

    stored: bool
    written: int = 0
    journaled: int = 0
    journals: list[str] = field(default_factory=list)
    #: (run id, "artifact: reason") of artifacts the artifact location refused.
    refused: list[tuple[str, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.stored


class WriterProc(Protocol):
    """A writer process: ``subprocess.Popen`` or the launcher's :class:`WriterProcess`."""

    pid: int
    stdin: IO[bytes] | None
    stdout: IO[bytes] | None

    def wait(self, timeout: float | None = None) -> int | None: ...

    def kill(self) -> None: ...


class ConnectionState(enum.Enum):
    CONNECTED = "connected"  # a writer process takes the messages
    JOURNALING = "journaling"  # writers kept dying: this process writes the journal itself
    CLOSING = "closing"  # Close sent: the writer finishes and exits
    CLOSED = "closed"


def _log(message: str) -> None:
    print(f"[psy-agents sink] {message}", file=sys.stderr, flush=True)


def _exit_words(code: int | None) -> str:
    return "" if code is None else f" (exit code {code})"


class WriterConnection:
    """One writer process per (tracking URI, journal folder), shared by this process's sinks."""

    def __init__(self, tracking_uri: str, journal_dir: Path) -> None:
        self.tracking_uri = tracking_uri
        self.journal_dir = journal_dir
        self.session = secrets.token_hex(4)
        self.queue: deque[QueuedPoint] = deque()
        self.runs: set[str] = set()  # runs that logged through this connection
        self._lock = threading.RLock()
        self._acked = threading.Condition(self._lock)
        self._ship_lock = threading.Lock()
        self._seq = 0
        self._acked_seq = 0
        self._unacked: dict[int, ToWriter] = {}
        self._owned: dict[str, Own] = {}
        self._stats = WriterStats()
        self._local = WriterStats()
        self._deaths: list[float] = []
        self.state = ConnectionState.CONNECTED
        self.proc: WriterProc | None = None
        self._ack_reader: threading.Thread | None = None
        self._wake = threading.Event()
        with self._lock:
            if not self._start_process():
                self.state = ConnectionState.JOURNALING
        self._shipper = threading.Thread(
            target=self._ship_loop, name="psy-agents-metric-shipper", daemon=True
        )
        self._shipper.start()

    # -- the writer process ------------------------------------------------------------
    def _start_process(self) -> bool:
        from psy_agents_noaug.tracking.launcher import start_writer

        try:  # forked from the warm launcher: milliseconds
            proc: WriterProc = start_writer(self.tracking_uri, self.journal_dir, self.session)
        except OSError:
            try:  # a fresh interpreter: a few seconds of imports
                proc = self._start_fresh_writer()
            except OSError as exc:
                _log(f"cannot start the metric writer ({exc}); journaling to {self.journal_dir}")
                return False
        self.proc = proc
        self._ack_reader = threading.Thread(
            target=self._ack_loop, args=(proc,), name="psy-agents-sink-acks", daemon=True
        )
        self._ack_reader.start()
        return True

    def _start_fresh_writer(self) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        src = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
        command = [sys.executable, "-m", "psy_agents_noaug.tracking.writer"]
        return subprocess.Popen(
            [*command, self.tracking_uri, str(self.journal_dir), self.session],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            process_group=0,  # Ctrl-C goes to training; same session: see .launcher
        )

    @property
    def writer_pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def _ack_loop(self, proc: WriterProc) -> None:
        assert proc.stdout is not None
        while True:
            message = read_frame(proc.stdout)
            if message is None:
                break
            if isinstance(message, Ack):
                with self._lock:
                    if proc is self.proc:
                        self._acknowledged(message)
        with self._lock:
            self._writer_died(proc)

    def _acknowledged(self, ack: Ack) -> None:
        if ack.seq > self._acked_seq:
            self._acked_seq = ack.seq
            for seq in [s for s in self._unacked if s <= ack.seq]:
                del self._unacked[seq]
        self._stats = ack.stats
        self._acked.notify_all()

    def _writer_died(self, proc: WriterProc) -> None:
        """Start a new writer and resend what the dead one had not confirmed (lock held)."""
        if proc is not self.proc or self.state not in _SENDING:
            return
        if self.state == ConnectionState.CLOSING:  # it was exiting anyway; keep what it left
            proc.wait()
            self._keep_unconfirmed()
            return
        try:
            code = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # it closed its pipes but lingers: it is ours
            proc.kill()
            code = proc.wait()
        now = time.monotonic()
        self._deaths = [t for t in self._deaths if now - t < RESTART_WINDOW_S] + [now]
        pending = list(self._unacked.values())
        if len(self._deaths) <= MAX_WRITER_DEATHS and self._start_process():
            _log(
                f"the metric writer (pid {proc.pid}) died{_exit_words(code)}; a new one "
                f"(pid {self.writer_pid}) takes over and gets the {len(pending)} unconfirmed "
                "message(s) again"
            )
            for message in [*self._owned.values(), *pending]:
                if not self._write(message):
                    return  # the new one died too: its own ack loop handles that
            return
        _log(
            f"the metric writer (pid {proc.pid}) died{_exit_words(code)} and cannot be "
            f"replaced; this process journals the metrics itself in {self.journal_dir}"
        )
        self.proc = None
        self.state = ConnectionState.JOURNALING
        self._journal_locally(pending)
        self._unacked.clear()
        self._acked.notify_all()

    def _write(self, message: ToWriter) -> bool:
        proc = self.proc
        if proc is None or proc.stdin is None:
            return False
        try:
            write_frame(proc.stdin, message)
            return True
        except (BrokenPipeError, OSError, ValueError):
            self._writer_died(proc)
            return False

    # -- sending ------------------------------------------------------------------------
    def submit(self, make: Callable[[int], ToWriter]) -> int:
        """Number, keep and send one message; returns its sequence number."""
        with self._lock:
            self._seq += 1
            message = make(self._seq)
            if isinstance(message, Own):
                self._owned[message.run_id] = message
            elif isinstance(message, Disown | EndRun):
                self._owned.pop(message.run_id, None)
            if self.state in _SENDING:
                self._unacked[message.seq] = message
                self._write(message)
            else:
                self._journal_locally([message])
                self._acked_seq = message.seq
            return message.seq

    def _journal_locally(self, messages: Sequence[ToWriter]) -> None:
        by_run: dict[str, list[jr.Record]] = {}
        for message in messages:
            if isinstance(message, Points):
                grouped: dict[str, list[jr.Point]] = {}
                for run_id, key, value, step, ts in message.rows:
                    grouped.setdefault(run_id, []).append(jr.Point(key, value, step, ts))
                for run_id, points in grouped.items():
                    record = jr.PointsRecord(f"{self.session}:{message.seq}:0", points)
                    by_run.setdefault(run_id, []).append(record)
            elif isinstance(message, EndRun):
                record_id = f"{self.session}:{message.seq}:end"
                end = jr.EndRecord(record_id, message.status, message.reason)
                by_run.setdefault(message.run_id, []).append(end)
            elif isinstance(message, RunData):
                record_id = f"{self.session}:{message.seq}:data"
                data = jr.RunDataRecord(record_id, message.params, message.tags)
                by_run.setdefault(message.run_id, []).append(data)
            elif isinstance(message, Inputs):
                record_id = f"{self.session}:{message.seq}:in"
                inputs = jr.InputsRecord(record_id, list(message.datasets))
                by_run.setdefault(message.run_id, []).append(inputs)
            elif isinstance(message, Artifacts):
                source = Path(message.local_path)
                if source.exists():
                    kept = jr.keep_copy(
                        self.journal_dir,
                        message.run_id,
                        message.seq,
                        source,
                        owned=message.remove_after,
                    )
                    record_id = f"{self.session}:{message.seq}:art"
                    art = jr.ArtifactsRecord(record_id, str(kept), message.artifact_path)
                    by_run.setdefault(message.run_id, []).append(art)
        journals = set(self._local.journals)
        journaled = self._local.journaled
        for run_id, records in by_run.items():
            path = jr.journal_path(self.journal_dir, run_id)
            journaled += jr.append(path, run_id, self.tracking_uri, records, owner_pid=os.getpid())
            journals.add(str(path))
        self._local = WriterStats(0, journaled, tuple(sorted(journals)), True)

    # -- shipping -----------------------------------------------------------------------
    def _ship_loop(self) -> None:
        while self.state != ConnectionState.CLOSED:
            self._wake.wait(SHIP_INTERVAL_S)
            self._wake.clear()
            try:
                self.ship()
            except Exception as exc:  # keep shipping whatever one bad batch did
                _log(f"shipping failed: {exc!r}")

    def ship(self) -> None:
        """Drain the queue, read tensors back in bulk, and hand the batch to the writer."""
        with self._ship_lock:
            n = len(self.queue)
            if not n:
                return
            batch = [self.queue.popleft() for _ in range(n)]
            rows = _materialize(batch)
            if rows:
                self.submit(lambda seq: Points(seq, rows))

    def flush(self, timeout: float | None = DEFAULT_FLUSH_TIMEOUT_S) -> FlushResult:
        """Block until every point queued so far is durable; say whether it is in the store."""
        self.ship()
        seq = self.submit(Flush)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._acked:
            while self._acked_seq < seq and self.state in _SENDING:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._acked.wait(remaining)
            return self._result(confirmed=self._acked_seq >= seq)

    def _result(self, *, confirmed: bool) -> FlushResult:
        journals = sorted({*self._stats.journals, *self._local.journals})
        stored = confirmed and not journals and self.state == ConnectionState.CONNECTED
        if not confirmed and not journals:
            journals = sorted(str(p) for p in self.journal_dir.glob(f"*{jr.SUFFIX}"))
        return FlushResult(
            stored,
            written=self._stats.written,
            journaled=self._stats.journaled + self._local.journaled,
            journals=journals,
            refused=list(self._stats.refused),
        )

    def close(self, timeout: float | None = 120.0) -> None:
        """Ship everything, let the writer write or journal it, and wait for it to exit."""
        self.ship()
        with self._lock:
            if self.state != ConnectionState.CONNECTED:
                self.state = ConnectionState.CLOSED
                return
            self.state = ConnectionState.CLOSING
            self.submit(Close)
            proc = self.proc
        self._wake.set()
        assert proc is not None
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _log("the metric writer is still busy at exit; it finishes in the background")
            return
        # Its last acknowledgements may still sit in the pipe: read them all (the reader
        # ends at EOF and keeps what stayed unconfirmed) before judging what is left.
        if self._ack_reader is not None:
            self._ack_reader.join(ACK_DRAIN_TIMEOUT_S)
        with self._lock:
            if self.state != ConnectionState.CLOSED:
                self._keep_unconfirmed()

    def _keep_unconfirmed(self) -> None:
        """The writer is gone for good: what it did not confirm goes to the journal from here."""
        kept = Points | EndRun | RunData | Inputs | Artifacts
        leftover = [m for m in self._unacked.values() if isinstance(m, kept)]
        if leftover:
            self._journal_locally(leftover)
            _log(f"the metric writer exited early; the rest is journaled in {self.journal_dir}")
        self._unacked.clear()
        self.state = ConnectionState.CLOSED
        self._acked.notify_all()


_SENDING = (ConnectionState.CONNECTED, ConnectionState.CLOSING)


def _materialize(batch: list[QueuedPoint]) -> list[Row]:
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
            _log(
                f"metric {batch[i][1]!r} skipped: {type(value).__name__} value {value!r:.60} "
                f"is not a number ({exc}); log a float or a one-element tensor"
            )
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


class MetricSink:
    """Non-blocking metric logging for one MLflow run. Get one with :func:`get_sink`."""

    def __init__(self, run_id: str, connection: WriterConnection) -> None:
        self.run_id = run_id
        self.connection = connection
        self._queue = connection.queue

    def log(self, key: str, value: Value, step: int, timestamp_ms: int | None = None) -> None:
        """Queue one point; returns at once. ``value`` may be a 0-dim (device) tensor."""
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

    def flush(self, timeout: float | None = DEFAULT_FLUSH_TIMEOUT_S) -> FlushResult:
        """Block until every point queued so far is in the store (or safely journaled)."""
        return self.connection.flush(timeout)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Queue run params (values as strings); they wait in the journal if the store is down."""
        run_id, values = self.run_id, {str(k): str(v) for k, v in params.items()}
        self.connection.submit(lambda seq: RunData(seq, run_id, params=values))

    def set_tags(self, run_tags: Mapping[str, Any]) -> None:
        """Queue run tags, like :meth:`log_params`."""
        run_id, values = self.run_id, {str(k): str(v) for k, v in run_tags.items()}
        self.connection.submit(lambda seq: RunData(seq, run_id, tags=values))

    def log_inputs(self, datasets: Mapping[str, Any]) -> None:
        """Queue dataset inputs, ``{context: mlflow.data.dataset.Dataset}``, like
        :meth:`log_params` (``mlflow.log_input`` would fail while the store is down)."""
        run_id = self.run_id
        pairs = tuple((dict(d.to_dict()), str(c)) for c, d in datasets.items())
        self.connection.submit(lambda seq: Inputs(seq, run_id, pairs))

    def log_artifact(
        self, local_path: str | Path, artifact_path: str | None = None, *, mode: str = "copy"
    ) -> None:
        """Queue a file or folder for the run's artifacts; the writer uploads it.

        Args:
            local_path: The file or folder.
            artifact_path: Folder in the run's artifacts (None: the root).
            mode: ``"copy"`` (copied now: the caller may change or delete it at once),
                ``"move"`` (handed over: moved now, deleted once uploaded) or ``"keep"``
                (uploaded from where it is: it must stay until the next flush; for a big
                checkpoint).

        Raises:
            FileNotFoundError: ``local_path`` does not exist.
            ValueError: An unknown ``mode``.
        """
        if mode not in ("copy", "move", "keep"):
            raise ValueError(f"mode must be 'copy', 'move' or 'keep', got {mode!r}")
        source = Path(local_path)
        if not source.exists():
            raise FileNotFoundError(f"artifact not found: {source}")
        path = source
        if mode != "keep":
            path = jr.artifacts_dir(self.connection.journal_dir, self.run_id)
            path = path / f"staged-{secrets.token_hex(6)}" / source.name
            path.parent.mkdir(parents=True, exist_ok=True)
            if mode == "move":
                shutil.move(str(source), path)
            elif source.is_dir():
                shutil.copytree(source, path)
            else:
                shutil.copy2(source, path)
        run_id, where, owned = self.run_id, str(path.resolve()), mode != "keep"
        self.connection.submit(lambda seq: Artifacts(seq, run_id, where, artifact_path, owned))

    def own_run(self, *, exclusive: bool = True) -> None:
        """This process runs the run: keep its heartbeat; ``exclusive``: end it KILLED if we die.

        Several processes share an HPO parent run, so they own it non-exclusively: the
        heartbeat shows it is alive, but one worker's death does not end it.
        """
        run_id = self.run_id
        self.connection.submit(lambda seq: Own(seq, run_id, exclusive))

    def disown_run(self) -> None:
        """Stop this run's heartbeat and orphan handling (it was ended elsewhere)."""
        run_id = self.run_id
        self.connection.submit(lambda seq: Disown(seq, run_id))

    def end_run(
        self, status: str = "FINISHED", reason: str | None = None, *, end_time_ms: int | None = None
    ) -> None:
        """Set the run's terminal status after all its points (journaled if the store is down)."""
        self.connection.ship()
        run_id = self.run_id
        self.connection.submit(lambda seq: EndRun(seq, run_id, status, reason, end_time_ms))


_CONNECTIONS: dict[tuple[str, str], WriterConnection] = {}
_LOCK = threading.Lock()


def default_journal_dir() -> Path:
    return Path(os.environ.get(JOURNAL_DIR_ENV, DEFAULT_JOURNAL_DIR))


def connection_for(tracking_uri: str, journal_dir: str | Path | None = None) -> WriterConnection:
    """This process's writer for a store (started on first use)."""
    with _LOCK:
        if journal_dir is None:  # reuse this store's writer (and its journal folder) if any
            for (uri, _), existing in _CONNECTIONS.items():
                if uri == tracking_uri and existing.state != ConnectionState.CLOSED:
                    return existing
        jdir = Path(journal_dir or default_journal_dir()).resolve()
        key = (tracking_uri, str(jdir))
        connection = _CONNECTIONS.get(key)
        if connection is None or connection.state == ConnectionState.CLOSED:
            connection = _CONNECTIONS[key] = WriterConnection(tracking_uri, jdir)
        return connection


def get_sink(
    run_id: str | None = None,
    *,
    tracking_uri: str | None = None,
    journal_dir: str | Path | None = None,
) -> MetricSink:
    """The sink for a run (default: the calling thread's active MLflow run).

    Args:
        run_id: Run to log into; None means ``mlflow.active_run()`` of this thread.
        tracking_uri: Store to write to; None means ``mlflow.get_tracking_uri()``.
        journal_dir: Where points wait if the store is down (default
            ``.psy_agents/journal`` or ``$PSY_AGENTS_JOURNAL_DIR``).

    Raises:
        RuntimeError: No run_id given and no active run.
    """
    import mlflow

    from psy_agents_noaug.tracking.lifecycle import install_end_hook

    if run_id is None:
        run = mlflow.active_run()
        if run is None:
            raise RuntimeError(
                "no active MLflow run: start one with mlflow.start_run() or pass run_id"
            )
        run_id = run.info.run_id
    install_end_hook()
    connection = connection_for(tracking_uri or mlflow.get_tracking_uri(), journal_dir)
    connection.runs.add(run_id)
    return MetricSink(run_id, connection)


def connections_of(run_id: str) -> list[WriterConnection]:
    """The open connections that carried points of ``run_id``."""
    with _LOCK:
        return [
            c
            for c in _CONNECTIONS.values()
            if run_id in c.runs and c.state != ConnectionState.CLOSED
        ]


def prestart(tracking_uri: str, journal_dir: str | Path | None = None) -> None:
    """Start the writer process early so its imports overlap with model loading."""
    connection_for(tracking_uri, journal_dir)


def flush_all(timeout: float | None = DEFAULT_FLUSH_TIMEOUT_S) -> bool:
    """Flush every writer of this process; True when everything is in the store."""
    return not unsynced_journals(timeout)


def open_connections() -> list[WriterConnection]:
    """This process's writer connections (one per store and journal folder)."""
    with _LOCK:
        return list(_CONNECTIONS.values())


def unsynced_journals(timeout: float | None = DEFAULT_FLUSH_TIMEOUT_S) -> list[str]:
    """Flush every writer of this process; the journals that still hold points (none when
    everything is in the store; the journal folder when the writer could not confirm)."""
    left: set[str] = set()
    for connection in open_connections():
        result = connection.flush(timeout)
        if not result:
            left.update(result.journals or [str(connection.journal_dir)])
    return sorted(left)


def shutdown(timeout: float | None = 120.0) -> None:
    """Flush and stop every writer (runs at interpreter exit too)."""
    with _LOCK:
        connections = list(_CONNECTIONS.values())
        _CONNECTIONS.clear()
    for connection in connections:
        connection.close(timeout)


def _shutdown_at_exit() -> None:
    try:
        shutdown()
    except KeyboardInterrupt:  # a second Ctrl-C while the writer finishes: say so, briefly
        print(
            "\ninterrupted while the metric writer finished; it goes on in the background",
            file=sys.stderr,
        )


atexit.register(_shutdown_at_exit)
