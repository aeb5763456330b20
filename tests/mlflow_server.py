"""A real `mlflow server` process on 127.0.0.1 for tests: start, stop, restart by PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MlflowServer:
    """`mlflow server` over a backend store; the test owns the process and its group."""

    def __init__(self, backend_uri: str, workdir: Path, port: int | None = None) -> None:
        self.backend_uri = backend_uri
        self.workdir = workdir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 120.0) -> MlflowServer:
        mlflow_bin = str(Path(sys.executable).with_name("mlflow"))
        log = open(self.workdir / f"server-{self.port}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [mlflow_bin, "server", "--backend-store-uri", self.backend_uri,
             "--artifacts-destination", str(self.workdir / "artifacts"),
             "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir, start_new_session=True,
            env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited early; see {log.name}")
            try:
                if requests.get(self.url + "/health", timeout=1).ok:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)  # polling a readiness probe with a deadline
        raise TimeoutError(f"mlflow server not ready in {timeout_s}s")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
