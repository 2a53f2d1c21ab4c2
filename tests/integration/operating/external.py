"""Servers a deployment test runs itself, from the system's binaries: Redis primaries, replicas and Sentinels, and
PgBouncer. Each is a process on a free port, with its files under the test's own folder, stopped at the end."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from cli.embedded import PG_SYSTEM_USER, _ensure_traversable
from tests.harness import free_port


def binary(name: str, *, why: str) -> str:
    """The binary's path, or skip the test saying how to install it."""
    candidates = (f"/usr/sbin/{name}", f"/usr/bin/{name}")
    found = shutil.which(name) or next((path for path in candidates if os.path.exists(path)), None)
    if found is None:
        pytest.skip(f"{name} is not installed ({why}; `make test` installs it with apt when run as root)")
    return found


class ServerProcess:
    """One server process; ``stop`` ends it (SIGKILL when ``hard``: a host that dies)."""

    def __init__(self, command: list[str], log_path: Path, *, port: int) -> None:
        self.port = port
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, cwd=log_path.parent)

    def wait_listening(self, timeout: float = 20) -> None:
        import socket

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.output()}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"server did not listen on {self.port}: {self.output()}")

    def stop(self, *, hard: bool = False) -> None:
        if self.proc.poll() is None:
            if hard:
                self.proc.kill()
            else:
                self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def redis_server(folder: Path, name: str, *extra: str) -> ServerProcess:
    """A redis-server (``extra``: more configuration lines, e.g. ``replicaof 127.0.0.1 6379``)."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = folder / f"{name}.conf"
    lines = [f"port {port}", "bind 127.0.0.1", "protected-mode no", f"dir {folder}", f"dbfilename {name}.rdb",
             "save ''", "appendonly no", *extra]  # fmt: skip
    config.write_text("\n".join(lines) + "\n")
    server = ServerProcess([binary("redis-server", why="Redis"), str(config)], folder / f"{name}.log", port=port)
    server.wait_listening()
    return server


def redis_sentinel(folder: Path, name: str, service: str, primary_port: int) -> ServerProcess:
    """A Sentinel watching the primary of ``service`` (alone, so a quorum of 1); it declares it down after 1 s."""
    port = free_port()
    config = folder / f"{name}.conf"
    config.write_text(
        "\n".join([
            f"port {port}", "bind 127.0.0.1", "protected-mode no", f"dir {folder}",
            f"sentinel monitor {service} 127.0.0.1 {primary_port} 1",
            f"sentinel down-after-milliseconds {service} 1000",
            f"sentinel failover-timeout {service} 5000",
        ]) + "\n"
    )  # fmt: skip
    server = ServerProcess(
        [binary("redis-server", why="Redis Sentinel"), str(config), "--sentinel"], folder / f"{name}.log", port=port
    )
    server.wait_listening()
    return server


def pgbouncer(folder: Path, *, socket_dir: str, database: str, pool_size: int = 4) -> ServerProcess:
    """PgBouncer in transaction mode in front of the embedded PostgreSQL (its Unix socket), on a free TCP port.
    Run as the embedded PostgreSQL's system user when we are root (PgBouncer refuses to run as root)."""
    command = [binary("pgbouncer", why="PgBouncer")]
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    (folder / "users.txt").write_text('"postgres" ""\n')
    config = folder / "pgbouncer.ini"
    config.write_text(
        "\n".join([
            "[databases]",
            f"{database} = host={socket_dir} dbname={database} user=postgres",
            "[pgbouncer]",
            "listen_addr = 127.0.0.1", f"listen_port = {port}", "unix_socket_dir =",
            "auth_type = trust", f"auth_file = {folder / 'users.txt'}", "admin_users = postgres",
            "pool_mode = transaction", f"default_pool_size = {pool_size}", "max_client_conn = 500",
            "server_reset_query =", "ignore_startup_parameters = extra_float_digits",
            f"logfile = {folder / 'pgbouncer.log'}", f"pidfile = {folder / 'pgbouncer.pid'}",
        ]) + "\n"
    )  # fmt: skip
    if os.geteuid() == 0:
        entry = pwd.getpwnam(PG_SYSTEM_USER)
        _ensure_traversable(folder)
        for path in (folder, *folder.iterdir()):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        command = ["runuser", "-u", PG_SYSTEM_USER, "--", *command]
    server = ServerProcess([*command, str(config)], folder / "stdout.log", port=port)
    server.wait_listening()
    return server
