"""Test support: a PostgreSQL and a Redis of a test's own, on spare ports, that it may stop.

The shared services on 5432 and 6379 must never be stopped; an outage test starts these
instead (initdb/pg_ctl from Debian's packages, redis-server) in a temporary directory.
"""

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .simulator_process import free_port

REPO = Path(__file__).resolve().parents[2]


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"{name} not found under /usr/lib/postgresql/*/bin")
    return found[-1]


def _as_postgres(args: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root: run them as the postgres user then.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


@dataclass
class OwnPostgres:
    data: Path
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data.parent} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            _as_postgres(
                [
                    _pg_bin("pg_ctl"),
                    "-D",
                    str(self.data),
                    "-o",
                    options,
                    "-l",
                    str(self.log),
                    "-w",
                    "-t",
                    "30",
                    "start",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: it closes every connection at once, as a restart does)."""
        subprocess.run(
            _as_postgres([_pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"]),
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def running(self) -> bool:
        status = subprocess.run(
            _as_postgres([_pg_bin("pg_ctl"), "-D", str(self.data), "status"]),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return status.returncode == 0


@contextmanager
def own_postgres():
    """A fresh PostgreSQL cluster (database ``postgres``, user ``postgres``, trust) until the
    block ends, in a directory of its own (pytest's are closed to the postgres user)."""
    root = Path(tempfile.mkdtemp(prefix="aiproject-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, user="postgres")
    server = OwnPostgres(root / "data", free_port(), root / "server.log")
    try:
        subprocess.run(
            [
                *_as_postgres([_pg_bin("initdb"), "-D", str(server.data), "-U", "postgres"]),
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        server.start()
        yield server
    finally:
        if server.data.exists() and server.running():
            server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


def migrate(database_url: str) -> None:
    """Create the app's tables in a database (``manage.py migrate``)."""
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": database_url},
        check=True,
    )


@dataclass
class OwnRedis:
    directory: Path
    port: int
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        # Persistence on (appendfsync always): a restarted Redis keeps its counters, as a
        # production Redis with AOF does, so what it missed while down is really missing.
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--dir", str(self.directory), "--appendonly", "yes", "--appendfsync", "always"]
        args += ["--save", "", "--protected-mode", "no"]
        with open(self.directory / "redis.log", "ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((self.directory / "redis.log").read_text(errors="replace"))
            time.sleep(0.05)

    def answers(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=0.5).ping())
        except redis.ConnectionError:
            return False

    def kill(self) -> None:
        """Kill -9: what it had acknowledged is on disk, nothing else happens."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@contextmanager
def own_redis(tmp_path: Path):
    directory = tmp_path / "redis"
    directory.mkdir()
    server = OwnRedis(directory, free_port())
    server.start()
    try:
        yield server
    finally:
        server.kill()


def manage(database_url: str, *args: str, env: dict[str, str] | None = None) -> str:
    """Run ``manage.py`` against a database; return its standard output."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": database_url, **(env or {})},
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout
