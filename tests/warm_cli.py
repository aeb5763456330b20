"""`psy-agents` command lines as real processes, without paying the imports each time.

A fresh CLI process spends ~9 s of CPU importing torch, transformers, MLflow, scikit-learn
and matplotlib before it does anything; the drills start dozens of them on two cores. So
one *warm* process per test session imports them once and then forks a child per command
line. Each child is a real process (its own pid, cwd, environment, log file, signals and
exit code) that runs ``psy_agents_noaug.cli.main`` from the top and leaves through a normal
interpreter exit (atexit handlers, finalizers), exactly as ``python -m psy_agents_noaug.cli``
would; only the imports were done before the fork. Nothing else runs in the warm process
before it forks (no threads, no torch ops, no MLflow state), so a child starts clean. It
starts the metric-writer launcher first (``psy_agents_noaug.tracking.launcher``), so the
children share it and their writers start in milliseconds too.

Run as ``python -m tests.warm_cli`` it is the warm process: it reads one JSON request per
line on stdin (``{"args", "cwd", "env", "log"}``), forks, answers ``{"pid": N}`` and later
``{"exited": N, "code": C}`` (``C`` as ``Popen.returncode``: negative for a signal). In the
tests, :class:`WarmCli` starts it and :meth:`WarmCli.start` returns a Popen-like handle.

Tests of the process start itself (the console script, ``python -m`` from any folder,
``torchrun``) still start fresh interpreters.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

#: What a `train`, `hpo` or `evaluate` command imports on its way (the heavy part of start).
PRELOAD = (
    "torch",
    "transformers.modeling_utils",
    "mlflow",
    "mlflow.pyfunc",
    "mlflow.store.tracking.sqlalchemy_store",
    "optuna",
    "sklearn.metrics",
    "matplotlib.pyplot",
    "psy_agents_noaug.cli",
    "psy_agents_noaug.jobs.train",
    "psy_agents_noaug.jobs.hpo",
    "psy_agents_noaug.training.figures",
)


# ------------------------------------------------------------------ the warm process
def _serve() -> dict[str, Any] | None:
    """Fork a child per request; report pids and exit codes. Returns the request in a child."""
    selector = selectors.DefaultSelector()
    selector.register(sys.stdin, selectors.EVENT_READ)
    children: set[int] = set()
    buffered = b""
    while True:
        ready = selector.select(timeout=0.05)
        if ready:
            chunk = os.read(sys.stdin.fileno(), 65536)
            if not chunk:  # the test process went away: stop forking, leave children be
                return None
            buffered += chunk
            while b"\n" in buffered:
                line, buffered = buffered.split(b"\n", 1)
                request = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    selector.close()
                    return request
                children.add(pid)
                _answer({"pid": pid})
        for pid in list(children):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                children.discard(pid)
                _answer({"exited": pid, "code": os.waitstatus_to_exitcode(status)})


def _answer(message: dict[str, int]) -> None:
    os.write(sys.stdout.fileno(), (json.dumps(message) + "\n").encode())


def _become(request: dict[str, Any]) -> list[str]:
    """In the child: the request's folder, environment, log file and default signals."""
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)
    sys.stdout.reconfigure(write_through=True)  # type: ignore[union-attr]
    sys.stderr.reconfigure(write_through=True)  # type: ignore[union-attr]
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    sys.argv = ["psy-agents", *request["args"]]
    return list(request["args"])


# ------------------------------------------------------------------ the test side
class WarmProcess:
    """A forked CLI child, with the parts of ``subprocess.Popen`` the tests use."""

    def __init__(self, owner: WarmCli, pid: int) -> None:
        self.owner = owner
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        with self.owner.changed:
            self.returncode = self.owner.codes.get(self.pid)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        with self.owner.changed:
            if not self.owner.changed.wait_for(lambda: self.pid in self.owner.codes, timeout):
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0)
            self.returncode = self.owner.codes[self.pid]
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class WarmCli:
    """The warm process of this test session; :meth:`start` forks a CLI child from it."""

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *sys.path])}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.warm_cli"],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.changed = threading.Condition()
        self.codes: dict[int, int] = {}
        self.started: list[int] = []
        self._one_start_at_a_time = threading.Lock()
        self._reader = threading.Thread(target=self._read, name="warm-cli-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            message = json.loads(line)
            with self.changed:
                if "pid" in message:
                    self.started.append(message["pid"])
                else:
                    self.codes[message["exited"]] = message["code"]
                self.changed.notify_all()
        with self.changed:  # the warm process is gone: nobody will report again
            self.changed.notify_all()

    def start(self, args: list[str], cwd: Path, log: Path, env: dict[str, str]) -> WarmProcess:
        """Fork ``psy-agents ARGS`` in ``cwd`` with exactly ``env``, output to ``log``."""
        assert self.proc.stdin is not None and self.proc.poll() is None, "warm process died"
        request = {"args": args, "cwd": str(cwd), "env": env, "log": str(log)}
        with self._one_start_at_a_time, self.changed:
            before = len(self.started)
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
            if not self.changed.wait_for(lambda: len(self.started) > before, 60):
                raise RuntimeError("the warm CLI process did not fork in 60 s")
            pid = self.started[before]
        return WarmProcess(self, pid)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)


_SHARED: WarmCli | None = None


def shared() -> WarmCli:
    """This test process's warm CLI (started on first use; closed by conftest at the end)."""
    global _SHARED
    if _SHARED is None or _SHARED.proc.poll() is not None:
        _SHARED = WarmCli()
    return _SHARED


def close_shared() -> None:
    global _SHARED
    if _SHARED is not None:
        _SHARED.close()
        _SHARED = None


if __name__ == "__main__":
    import importlib

    import matplotlib

    matplotlib.use("Agg")
    for module in PRELOAD:
        importlib.import_module(module)
    from psy_agents_noaug.tracking import launcher

    launcher.ensure_running()  # every child's metric writer is forked from this one launcher
    request = _serve()
    if request is None:
        os._exit(0)  # the warm process itself leaves without running anyone's atexit
    from psy_agents_noaug.cli import main

    sys.exit(main(_become(request)))
