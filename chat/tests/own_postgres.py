"""Test support: a PostgreSQL server of the test's own (initdb + pg_ctl on a spare port), which
the test may stop and start under a running app. The shared server is never touched."""

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .simulator_process import free_port


def _binary(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def available() -> bool:
    return bool(_binary("initdb") and _binary("pg_ctl"))


def _as_postgres() -> list[str]:
    # initdb and postgres refuse to run as root: run them as the postgres user then.
    if os.geteuid() == 0:
        return ["setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups"]
    return []


@dataclass
class OwnPostgres:
    data: Path
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/app"

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            [*_as_postgres(), _binary("pg_ctl"), "-D", str(self.data), *args],
            check=True,
            capture_output=True,
            timeout=60,
            cwd=self.data.parent,
        )

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k '' -c fsync=off"
        self._ctl("start", "-w", "-l", str(self.log), "-o", options)

    def stop(self) -> None:
        """Stop it at once (``-m fast``: every connection is cut)."""
        self._ctl("stop", "-w", "-m", "fast")

    def query(self, sql: str, params=()) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.url, connect_timeout=5) as conn:
            return conn.execute(sql, params).fetchall()


@contextmanager
def own_postgres():
    """Yield a running server with an empty database ``app``; always stop and remove it."""
    import psycopg

    # Not under pytest's tmp_path: the postgres user must be able to reach the directory.
    root = Path(tempfile.mkdtemp(prefix="own-postgres-"))
    data, log = root / "data", root / "server.log"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    server = OwnPostgres(data, free_port(), log)
    try:
        subprocess.run(
            [*_as_postgres(), _binary("initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"],
            check=True,
            capture_output=True,
            timeout=120,
            cwd=root,
        )
        server.start()
        with psycopg.connect(
            f"postgres://postgres@127.0.0.1:{server.port}/postgres", autocommit=True
        ) as conn:
            conn.execute("CREATE DATABASE app")
        yield server
    finally:
        # Already stopped, or never started: nothing to stop.
        with contextlib.suppress(subprocess.CalledProcessError, FileNotFoundError):
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


def wait_until(predicate, timeout: float, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception:  # the server is starting or stopped
            value = None
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not met in time")
