"""Test support: private PostgreSQL and Redis servers that a test may stop, kill and restart.

Never the shared services: each server gets its own scratch directory (on tmpfs when there is one)
and a free port, and is always stopped and its directory deleted, by the context managers here or,
if the test process exits without unwinding them, by an ``atexit`` hook.

PostgreSQL comes from Debian's packages (``/usr/lib/postgresql/<version>/bin``); it refuses to run
as root, so under root its commands run as the ``postgres`` system user (its own group, none of
root's). ``manage``/``migrate`` run the project's ``manage.py`` against such a server.
"""

import atexit
import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import redis

from devtools.processes import REPO, free_port

START_TIMEOUT_SECONDS = 30.0
# Test-only speed-ups: the data is thrown away after the run. fsync=off and no full-page writes
# only risk data when the operating system crashes; a crash of PostgreSQL itself (the tests'
# ``stop -m immediate`` or ``kill``) loses no committed transaction. synchronous_commit stays on:
# off, a crash loses the last commits, and a test would blame the app for it.
POSTGRES_OPTIONS = (
    "-c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off "
    "-c full_page_writes=off -c max_connections=200 "
    # Dynamic shared memory in the data directory, so an immediate stop or a kill leaves no
    # segment behind in /dev/shm.
    "-c dynamic_shared_memory_type=mmap"
)
_alive: set["PostgresServer | RedisServer"] = set()


def postgres_bin_dir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` that has initdb and pg_ctl."""
    found = []
    for bin_dir in Path("/usr/lib/postgresql").glob("*/bin"):
        if (bin_dir / "initdb").exists() and (bin_dir / "pg_ctl").exists():
            version = bin_dir.parent.name
            found.append((int(version) if version.isdigit() else 0, bin_dir))
    return max(found)[1] if found else None


def _postgres_user() -> str | None:
    """The user PostgreSQL runs as: ``postgres`` under root (initdb refuses root), else us."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return None
    return "postgres"


def missing_tools(*, postgres: bool = True, redis: bool = True) -> list[str]:
    """What this machine lacks to run private PostgreSQL and/or Redis servers (empty: nothing)."""
    missing = []
    if postgres and postgres_bin_dir() is None:
        missing.append("initdb/pg_ctl (/usr/lib/postgresql/<version>/bin, package postgresql)")
    if postgres and os.geteuid() == 0 and _postgres_user() is None:
        missing.append("a 'postgres' system user (PostgreSQL refuses to run as root)")
    if redis and shutil.which("redis-server") is None:
        missing.append("redis-server (package redis-server)")
    return missing


def scratch_dir(prefix: str) -> Path:
    """A new private directory, on tmpfs when there is one (fast fsync, no disk wear)."""
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
        if not _pid_alive(pid):
            return True
        time.sleep(0.02)
    return False


class PostgresServer:
    """One PostgreSQL cluster in ``root``: ``start()``, ``stop()``, ``kill()``, ``start()`` again;
    ``pause()`` and ``resume()`` (SIGSTOP, SIGCONT) for a server that hangs."""

    def __init__(self, root: Path, *, database: str = "aiproject"):
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.database = database
        self.bin = postgres_bin_dir()
        self.user = _postgres_user()
        # Under root: the postgres user with its own group and no supplementary groups (as
        # ``setpriv --reuid=postgres --regid=postgres --clear-groups``), none of root's.
        self._as_user = (
            {"user": self.user, "group": pwd.getpwnam(self.user).pw_gid, "extra_groups": []}
            if self.user is not None
            else {}
        )
        self.log_path = root / "postgres.log"
        self.paused = False

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *args: str, timeout: float = START_TIMEOUT_SECONDS) -> None:
        # Output to a file, never a pipe: the postmaster that pg_ctl starts inherits it, and a
        # pipe would stay open (and a reader of it blocked) as long as the server runs.
        with open(self.root / "pg_ctl.log", "ab") as log:
            result = subprocess.run(
                [str(self.bin / args[0]), *args[1:]],
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                **self._as_user,
                check=False,
            )
        if result.returncode != 0:
            output = (self.root / "pg_ctl.log").read_text(errors="replace")[-4000:]
            raise RuntimeError(f"{args[0]} {' '.join(args[1:3])} failed:\n{output}")

    def init(self) -> None:
        if self.user is not None:
            shutil.chown(self.root, user=self.user)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--no-sync", "--no-instructions")  # fmt: skip
        self.start()
        with psycopg.connect(self.admin_url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')

    def admin_url(self, database: str | None = None) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database or self.database}"

    def start(self) -> None:
        options = f"-p {self.port} {POSTGRES_OPTIONS}"
        self._run("pg_ctl", "start", "-w", "-t", str(int(START_TIMEOUT_SECONDS)), "-D",
                  str(self.data), "-l", str(self.log_path), "-o", options)  # fmt: skip

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server (``immediate``: like a crash, clients are cut off at once; ``fast``:
        a clean shutdown that closes every connection at once, as a restart does)."""
        self._run("pg_ctl", "stop", "-w", "-t", "30", "-D", str(self.data), "-m", mode)

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return None

    def running(self) -> bool:
        pid = self.postmaster_pid()
        return pid is not None and _pid_alive(pid)

    def kill(self) -> None:
        """SIGKILL the postmaster (its backends notice and exit)."""
        pid = self.postmaster_pid()
        if pid is not None and _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 10)

    def processes(self) -> list[int]:
        """The postmaster and every process it started (backends, checkpointer, walwriter ...)."""
        postmaster = self.postmaster_pid()
        if postmaster is None:
            return []
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, IndexError, ValueError):
                # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")".
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                    children.append(int(stat.parent.name))
        return [postmaster, *children]

    def pause(self) -> None:
        """SIGSTOP the whole cluster: a hung server. Connections stay open and the kernel still
        accepts new ones, but nothing answers until ``resume()``."""
        self.paused = True
        # The postmaster first, so that it starts no process while its children are stopped.
        for pid in self.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT the cluster (its children first, then the postmaster)."""
        for pid in reversed(self.processes()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.paused = False

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.admin_url(), autocommit=True, connect_timeout=3)

    def query(self, sql: str, params=()) -> list[tuple]:
        with self.connect() as conn:
            return conn.execute(sql, params).fetchall()

    def close(self) -> None:
        """Stop the server whatever its state and delete its directory."""
        if self.paused:
            self.resume()  # a stopped process would hold back the signal that ends it
        try:
            if self.running():
                try:
                    self.stop("immediate")
                except (RuntimeError, subprocess.TimeoutExpired):
                    self.kill()
        finally:
            self.kill()
            shutil.rmtree(self.root, ignore_errors=True)
            _alive.discard(self)


class RedisServer:
    """One redis-server in ``root``; ``kill()`` is SIGKILL, ``start()`` brings it back.

    With ``aof`` every write is in an append-only file before Redis answers, so a restart after
    SIGKILL keeps all the data (as a production Redis with ``--appendonly yes`` does, minus the
    last second of ``everysec``); ``wipe()`` before ``start()`` makes it come back empty.
    """

    def __init__(self, root: Path, *, aof: bool = True, args: tuple[str, ...] = ()):
        self.root = root
        self.args = args  # more redis-server options: --replicaof, --cluster-enabled ...
        self.data = root / "redis"
        self.data.mkdir(exist_ok=True)
        self.port = free_port()
        self.aof = aof
        self.process: subprocess.Popen | None = None
        self.log_path = root / "redis.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=3)

    def start(self) -> None:
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.aof else []
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                *(persistence or ["--appendonly", "no"]), "--dir", str(self.data),
                *self.args]  # fmt: skip
        with open(self.log_path, "ab") as log:
            # Its own session: a Ctrl-C of the test run reaches it only through our teardown.
            self.process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            try:
                with self.client() as client:
                    if client.ping():
                        return
            except redis.RedisError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start:\n{self.log_path.read_text()}")
            time.sleep(0.05)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no goodbye to its clients; only what AOF has on disk is kept."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        """SIGTERM: a clean shutdown (as ``docker stop`` does); ``start()`` brings it back."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def wipe(self) -> None:
        """Delete the data files (call while it is down): it comes back empty."""
        shutil.rmtree(self.data, ignore_errors=True)
        self.data.mkdir()

    def close(self) -> None:
        try:
            self.kill()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            _alive.discard(self)


@contextlib.contextmanager
def postgres_server(*, database: str = "aiproject") -> Iterator[PostgresServer]:
    """A started private PostgreSQL (fsync off), stopped and deleted when the block ends."""
    server = PostgresServer(scratch_dir("pg-"), database=database)
    _alive.add(server)
    try:
        server.init()
        yield server
    finally:
        server.close()


@contextlib.contextmanager
def redis_server(*, aof: bool = True, args: tuple[str, ...] = ()) -> Iterator[RedisServer]:
    """A started private redis-server, killed and deleted when the block ends."""
    server = RedisServer(scratch_dir("redis-"), aof=aof, args=args)
    _alive.add(server)
    try:
        server.start()
        yield server
    finally:
        server.close()


# The project's manage.py, run against a private server (its URL as DATABASE_URL).
def migrate(database_url: str) -> None:
    """Create the app's tables in a database (``manage.py migrate``)."""
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": database_url},
        check=True,
    )


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


@atexit.register
def _close_leftovers() -> None:
    # A test run that ends without unwinding its fixtures (an exception in a finalizer, os._exit
    # of a plugin) still leaves no server running and no data directory behind.
    for server in list(_alive):
        with contextlib.suppress(Exception):
            server.close()
