"""Real servers for tests: `mlflow server` on 127.0.0.1 and throwaway PostgreSQL databases.

`MlflowServer` starts, stops, kills (SIGKILL, like a crash) and restarts a tracking server by
its process group; with ``via_script=True`` it is started by ``scripts/tracking_server.sh``
(PostgreSQL backend, proxied artifacts, optional basic auth), the way the README says.
`postgres_database()` makes a uniquely named database and drops it afterwards.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "tracking_server.sh"
PG_HOST, PG_PORT, PG_ADMIN = "127.0.0.1", 5432, "postgres"
# SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; psy-agents ships psycopg2.
PG_DRIVER = "postgresql+psycopg2"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def postgres_available() -> str | None:
    """None when PostgreSQL on 127.0.0.1:5432 takes connections, else why not."""
    try:
        import psycopg2
    except ImportError:
        return "psycopg2 is not installed"
    try:
        psycopg2.connect(
            host=PG_HOST, port=PG_PORT, user=PG_ADMIN, dbname="postgres", connect_timeout=3
        ).close()
    except psycopg2.OperationalError as exc:
        return f"PostgreSQL on {PG_HOST}:{PG_PORT} is not reachable: {str(exc).strip()}"
    return None


def basic_auth_available() -> str | None:
    """None when MLflow's basic-auth app can run here (it needs the `mlflow[auth]` extra)."""
    if importlib.util.find_spec("flask_wtf") is None:
        return "MLflow's basic-auth app needs Flask-WTF (pip install 'mlflow[auth]')"
    return None


def _admin_connection():  # type: ignore[no-untyped-def]
    import psycopg2

    conn = psycopg2.connect(
        host=PG_HOST, port=PG_PORT, user=PG_ADMIN, dbname="postgres", connect_timeout=5
    )
    conn.autocommit = True
    return conn


def drop_database(name: str) -> None:
    """Drop a test database, ending any connection still open to it."""
    conn = _admin_connection()
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        conn.close()


@contextlib.contextmanager
def postgres_database(prefix: str, *, create: bool = True) -> Iterator[str]:
    """A uniquely named database (created unless ``create=False``), dropped at exit.

    Yields its SQLAlchemy URL, ``postgresql+psycopg2://postgres@127.0.0.1:5432/<name>``.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    if create:
        conn = _admin_connection()
        try:
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
    try:
        yield f"{PG_DRIVER}://{PG_ADMIN}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        drop_database(name)


class MlflowServer:
    """`mlflow server` over a backend store; the test owns the process and its group.

    Args:
        backend_uri: The backend store (sqlite or PostgreSQL URL).
        workdir: Folder for logs, artifacts and (script mode) the server's state.
        port: Port on 127.0.0.1 (default: a free one; kept across restarts).
        via_script: Start with ``scripts/tracking_server.sh`` (PostgreSQL only).
        auth: Basic-auth mode of the script; the admin is ``admin``/``admin_password``.
    """

    admin_user = "admin"

    def __init__(
        self,
        backend_uri: str,
        workdir: Path,
        port: int | None = None,
        *,
        via_script: bool = False,
        auth: bool = False,
    ) -> None:
        if auth and not via_script:
            raise ValueError("auth=True needs via_script=True (the script writes the config)")
        self.backend_uri = backend_uri
        self.workdir = workdir
        self.port = port or free_port()
        self.via_script = via_script
        self.auth = auth
        self.admin_password = f"admin-{uuid.uuid4().hex[:16]}"
        self.state = workdir / f"server-state-{self.port}"
        self.artifacts = workdir / "artifacts"
        self.log_path = workdir / f"server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _command(self) -> tuple[list[str], dict[str, str]]:
        # No background job runner (8 worker processes in MLflow 3.17): these tests need none.
        env = {
            **os.environ,
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
        for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            env.pop(key, None)
        if self.via_script:
            cmd = ["bash", str(SCRIPT), "--db-url", self.backend_uri, "--port", str(self.port),
                   "--state", str(self.state), "--artifacts", str(self.artifacts),
                   "--workers", "1"]  # fmt: skip
            if self.auth:
                cmd.append("--auth")
                env["MLFLOW_AUTH_ADMIN_USERNAME"] = self.admin_user
                env["MLFLOW_AUTH_ADMIN_PASSWORD"] = self.admin_password
            return cmd, env
        mlflow_bin = str(Path(sys.executable).with_name("mlflow"))
        cmd = [mlflow_bin, "server", "--backend-store-uri", self.backend_uri,
               "--artifacts-destination", str(self.artifacts),
               "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]  # fmt: skip
        return cmd, env

    def start(self, timeout_s: float = 180.0) -> MlflowServer:
        """Start and wait until ``/health`` answers (the script execs into the server)."""
        cmd, env = self._command()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir, env=env,
                process_group=0,  # killed as a group; our session, so SCHED_IDLE holds
            )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited early; see {self.log_path}")
            try:
                if requests.get(self.url + "/health", timeout=1).ok:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)  # polling a readiness probe with a deadline
        self.kill()
        raise TimeoutError(f"mlflow server not ready in {timeout_s}s; see {self.log_path}")

    def _signal_group(self, sig: int) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def stop(self) -> None:
        """SIGTERM the server's process group (SIGKILL after 30 s)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self._signal_group(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the whole process group, as a crash or a lost host would."""
        if self.proc is None:
            return
        self._signal_group(signal.SIGKILL)
        self.proc.wait(30)
        # uvicorn's workers are in the same group; wait until the port is free again.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) != 0:
                    return
            time.sleep(0.1)  # polling for the port to close, with a deadline

    def restart(self, timeout_s: float = 180.0) -> MlflowServer:
        self.stop()
        return self.start(timeout_s)

    # -- basic auth --------------------------------------------------------------------
    def create_user(self, username: str, password: str) -> None:
        """Create a user through MLflow's auth REST API, as the admin."""
        response = requests.post(
            self.url + "/api/2.0/mlflow/users/create",
            json={"username": username, "password": password},
            auth=(self.admin_user, self.admin_password),
            timeout=30,
        )
        response.raise_for_status()

    def __enter__(self) -> MlflowServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
