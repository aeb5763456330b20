"""Metric writers start in milliseconds: forked from a warm launcher process.

A writer process must import MLflow before it can write: 2-3 s of CPU. The first writer a
process needs starts one launcher (``python -m psy_agents_noaug.tracking.launcher``),
which pays those imports once and then forks a writer per request. A notebook or a test
suite that opens many stores, or a process that loses its writer, gets a new one in
milliseconds. Processes forked from one that holds the launcher (a warm test process's
children) share it.

A request is one datagram on a ``SOCK_SEQPACKET`` socket pair: the writer's settings
(store, journal folder, sink session, owner pid, working folder, environment) and four file
descriptors: the writer's stdin and stdout (the sink's pipes), the caller's stderr, and a
pipe on which the launcher answers the writer's pid. Datagrams are whole, so any number of
processes may share the socket. The launcher is single-threaded, so forking it is safe; it
ignores SIGCHLD, so its writers never linger as zombies. It exits once every process
holding the socket has closed it; its writers live on.

The launcher and each writer lead a process group of their own, so a Ctrl-C in the terminal
reaches the training process only, but they stay in the training process's session: where
the kernel groups CPU time by session (``sched_autogroup``, on by default in most
distributions), a process in a session of its own competes with training as an equal
whatever its policy, and the writer's SCHED_IDLE would be void.

If the launcher cannot be used (it died, or the platform lacks ``SOCK_SEQPACKET``), or
``PSY_AGENTS_WRITER_LAUNCHER=0`` is set, the sink starts each writer as a fresh interpreter.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

__all__ = ["WriterProcess", "ensure_running", "start_writer"]

#: Set to 0 to start every writer as a fresh interpreter instead.
LAUNCHER_ENV = "PSY_AGENTS_WRITER_LAUNCHER"
#: How long a request may wait for the launcher's answer (its first one waits for its imports).
ANSWER_TIMEOUT_S = 60.0
_MAX_REQUEST_BYTES = 1 << 20
_PID = struct.Struct("!i")
_SRC = str(Path(__file__).resolve().parents[2])


@dataclass(frozen=True)
class WriterRequest:
    """What a writer needs to know about the process it writes for."""

    tracking_uri: str
    journal_dir: str
    session: str
    owner_pid: int
    cwd: str
    env: dict[str, str] = field(default_factory=dict)


class WriterProcess:
    """A writer the launcher forked: not this process's child, so it is watched by pid.

    The few ``subprocess.Popen`` members the sink uses: ``pid``, ``stdin``, ``stdout``,
    ``wait``, ``poll``, ``kill``. Its exit code is not known here (``None``).
    """

    def __init__(self, pid: int, stdin: IO[bytes], stdout: IO[bytes]) -> None:
        self.pid = pid
        self.stdin: IO[bytes] | None = stdin
        self.stdout: IO[bytes] | None = stdout
        self.returncode: int | None = None
        self._exited = False
        self._pidfd: int | None = None
        with contextlib.suppress(AttributeError, OSError):
            self._pidfd = os.pidfd_open(pid)  # readable once the process has exited

    def poll(self) -> int | None:
        self._wait_for_exit(0.0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        """Block until the writer has exited; ``subprocess.TimeoutExpired`` after ``timeout``."""
        if not self._wait_for_exit(timeout):
            raise subprocess.TimeoutExpired(f"metric writer {self.pid}", timeout or 0.0)
        return self.returncode

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)

    def _wait_for_exit(self, timeout: float | None) -> bool:
        if self._exited:
            return True
        if self._pidfd is not None:
            poller = select.poll()
            poller.register(self._pidfd, select.POLLIN)
            self._exited = bool(poller.poll(None if timeout is None else int(timeout * 1000)))
        else:  # no pidfd here: look for the pid every 50 ms
            deadline = None if timeout is None else time.monotonic() + timeout
            while _alive(self.pid) and (deadline is None or time.monotonic() < deadline):
                time.sleep(0.05)  # polling a process we cannot wait on (not our child)
            self._exited = not _alive(self.pid)
        return self._exited  # the pidfd stays open until this object goes (threads share it)

    def __del__(self) -> None:
        if self._pidfd is not None:
            with contextlib.suppress(OSError):
                os.close(self._pidfd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ------------------------------------------------------------------ the caller's side
_lock = threading.Lock()
_socket: socket.socket | None = None
_process: subprocess.Popen[bytes] | None = None  # kept: it is reaped when it exits


def _launcher_socket() -> socket.socket:
    """This process's socket to the launcher, starting the launcher on first use."""
    global _socket, _process
    if _socket is None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_SRC, env.get("PYTHONPATH")) if p)
        try:
            _process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                env=env,
                process_group=0,  # Ctrl-C goes to training; same session (see above)
            )
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        _socket = ours
    return _socket


def ensure_running() -> None:
    """Start the launcher now (before forking workers that will share it)."""
    with _lock:
        _launcher_socket()


def _forget_launcher() -> None:
    global _socket
    if _socket is not None:
        with contextlib.suppress(OSError):
            _socket.close()
    _socket = None


def start_writer(tracking_uri: str, journal_dir: Path, session: str) -> WriterProcess:
    """Fork a writer for this process from the launcher (started on first use).

    Raises:
        OSError: The launcher could not be reached or did not answer in time, or it is
            switched off (``PSY_AGENTS_WRITER_LAUNCHER=0``); the caller starts the writer
            some other way.
    """
    if os.environ.get(LAUNCHER_ENV) == "0":
        raise OSError(f"{LAUNCHER_ENV}=0: no launcher")
    to_writer_r, to_writer_w = os.pipe()
    from_writer_r, from_writer_w = os.pipe()
    answer_r, answer_w = os.pipe()
    request = WriterRequest(
        tracking_uri, str(journal_dir), session, os.getpid(), os.getcwd(), dict(os.environ)
    )
    data = pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)
    fds = [to_writer_r, from_writer_w, 2, answer_w]  # 2: this process's stderr, as it is now
    try:
        with _lock:
            for attempt in (1, 2):  # a launcher that died is started again, once
                try:
                    socket.send_fds(_launcher_socket(), [data], fds)
                    break
                except OSError:
                    _forget_launcher()
                    if attempt == 2:
                        raise
        os.close(answer_w)
        answer_w = -1
        pid = _read_pid(answer_r)
    except BaseException:
        for fd in (to_writer_w, from_writer_r):
            os.close(fd)
        raise
    finally:
        for fd in (to_writer_r, from_writer_w, answer_r, answer_w):
            if fd >= 0:
                os.close(fd)
    return WriterProcess(pid, os.fdopen(to_writer_w, "wb"), os.fdopen(from_writer_r, "rb"))


def _read_pid(fd: int) -> int:
    ready, _, _ = select.select([fd], [], [], ANSWER_TIMEOUT_S)
    data = os.read(fd, _PID.size) if ready else b""
    if len(data) != _PID.size:
        raise OSError("the metric writer launcher did not answer")
    return int(_PID.unpack(data)[0])


def _reset_lock_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # another thread may have held it at the fork


os.register_at_fork(after_in_child=_reset_lock_in_child)


# ------------------------------------------------------------------ the launcher
def serve(sock: socket.socket) -> int:
    """Fork a writer per request until every holder of the socket has closed it."""
    for terminal_signal in (signal.SIGINT, signal.SIGHUP, signal.SIGTTOU):  # see writer.serve
        signal.signal(terminal_signal, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # writers are reaped by the kernel
    from psy_agents_noaug.tracking import writer

    writer.warm_up()
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(sock, _MAX_REQUEST_BYTES, 4)
        except InterruptedError:
            continue
        if not data:
            return 0
        if len(fds) != 4:
            for fd in fds:
                os.close(fd)
            continue
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                sock.close()
                code = _become_writer(pickle.loads(data), fds)
            finally:
                with contextlib.suppress(Exception):
                    sys.stderr.flush()
                os._exit(code)
        with contextlib.suppress(OSError):
            os.write(fds[3], _PID.pack(pid))
        for fd in fds:
            os.close(fd)


def _become_writer(request: WriterRequest, fds: list[int]) -> int:
    """In the forked child: take the caller's stderr, folder and environment, then write."""
    from psy_agents_noaug.tracking import writer

    stdin_fd, stdout_fd, stderr_fd, answer_fd = fds
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.setpgid(0, 0)  # a group of its own, in the caller's session (see the module's doc)
    os.close(answer_fd)
    os.dup2(stderr_fd, 2)
    os.close(stderr_fd)
    os.chdir(request.cwd)
    os.environ.clear()
    os.environ.update(request.env)
    return writer.serve(
        request.tracking_uri,
        Path(request.journal_dir),
        request.session,
        owner_pid=request.owner_pid,
        stdin=os.fdopen(stdin_fd, "rb"),
        stdout=os.fdopen(stdout_fd, "wb"),
    )


def main(argv: list[str]) -> int:
    return serve(socket.socket(fileno=int(argv[0])))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
