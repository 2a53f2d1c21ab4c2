"""The cluster: its hosts and the services on them, started as in production (PostgreSQL, PgBouncer in
transaction mode, a Redis primary with a replica and three Sentinels, HAProxy in front of two ``conduit web``
hosts, ``conduit worker`` hosts, the upstream simulator), each bound to its host's address only.

``Cluster`` keeps every process it started (by pid) and ``stop`` ends them and removes the namespaces, also
after a failed start.
"""

from __future__ import annotations

import fcntl
import functools
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from bench.cluster.net import CONTROL_IP, Network
from bench.cluster.upstream import TOKEN
from shared.settings import DEFAULT_CATALOG

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / ".conduit" / "cluster"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
HOSTS = ["pg", "pgbouncer", "redis", "redis2", "lb", "web1", "web2", "worker1", "worker2", "worker3", "upstream",
         "client"]  # fmt: skip
WORKERS = ["worker1", "worker2", "worker3"]
SENTINEL_HOSTS = ["redis", "redis2", "lb"]
DEATH_DETECT_S = 9
LOCK = "/run/conduit-cluster-harness.lock"


class Cluster:
    def __init__(self, *, job_s: float = 2.0) -> None:
        self.net = Network(HOSTS)
        assert self.net["upstream"].ip.endswith(".20"), "bench/cluster/catalog.toml names the upstream's address"
        self.job_s = job_s
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.host_of: dict[str, str] = {}  # process name -> host
        self._lock: int | None = None
        self.applied = ""  # how a fault was applied, when it depends on the kernel (netem or not)

    def ip(self, host: str) -> str:
        return self.net[host].ip

    @property
    def base_url(self) -> str:
        return f"http://{self.ip('lb')}"

    @property
    def direct_db_url(self) -> str:
        return f"postgresql://postgres@{self.ip('pg')}:5432/conduit"

    # -- processes --------------------------------------------------------------------------------------

    def spawn(
        self, name: str, host: str, *cmd: str, user: str | None = None, env: dict[str, str] | None = None
    ) -> None:
        """Start ``cmd`` on ``host`` (as ``user``), logging to WORK/logs/<name>.log."""
        (WORK / "logs").mkdir(parents=True, exist_ok=True)
        full = [*self.net[host].prefix(), *(["runuser", "-u", user, "--"] if user else []), *cmd]
        with open(WORK / "logs" / f"{name}.log", "ab") as log:  # the child keeps its own descriptor
            self.procs[name] = subprocess.Popen(full, stdout=log, stderr=log, env=env, cwd=ROOT, start_new_session=True)
        self.host_of[name] = host

    def cpu_by_host(self) -> dict[str, float]:
        """CPU seconds used so far by the processes on each host (with their children)."""
        import psutil

        used: dict[str, float] = {}
        for name, proc in self.procs.items():
            try:
                top = psutil.Process(proc.pid)
                for each in [top, *top.children(recursive=True)]:
                    times = each.cpu_times()
                    used[self.host_of[name]] = used.get(self.host_of[name], 0.0) + times.user + times.system
            except psutil.NoSuchProcess:
                continue
        return used

    def signal(self, name: str, sig: signal.Signals = signal.SIGTERM, *, wait_s: float = 30) -> None:
        proc = self.procs.pop(name)
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def conduit_env(self) -> dict[str, str]:
        sentinels = ",".join(f"{self.ip(h)}:26379" for h in SENTINEL_HOSTS)
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "DATABASE_URL": f"postgresql://postgres@{self.ip('pgbouncer')}:6432/conduit",
            "DATABASE_POOL_MODE": "transaction",
            "DATABASE_DIRECT_URL": self.direct_db_url,
            "REDIS_SENTINELS": sentinels,
            "REDIS_SENTINEL_SERVICE": "conduit",
            "WORKER_DEATH_DETECT_S": str(DEATH_DETECT_S),
            "CONDUIT_DATA_DIR": str(WORK / "data"),
            "STORAGE_DIR": str(WORK / "storage"),  # a volume every host mounts
            "CATALOG_PATH": os.pathsep.join([str(DEFAULT_CATALOG), str(ROOT / "bench" / "cluster" / "catalog.toml")]),
            "CLUSTER_UPSTREAM_TOKEN": TOKEN,
            "CLUSTER_UPSTREAM_BASE_URL": f"http://{self.ip('upstream')}",
            "PUBLIC_BASE_URL": self.base_url,
            "FORWARDED_ALLOW_IPS": self.ip("lb"),
            "SECRET_KEY": "cluster-harness",
            "LOG_LEVEL": "WARNING",
            "RATE_LIMIT_RPM_PER_KEY": "10000000",
            "RATE_LIMIT_RPM_PER_ACCOUNT": "10000000",
            "MAX_INFLIGHT_TASKS_PER_KEY": "1000000",
            "MAX_INFLIGHT_TASKS_PER_ACCOUNT": "1000000",
            "DB_POOL_MAX": "10",
        }

    def conduit(self, name: str, host: str, *args: str) -> None:
        self.spawn(name, host, sys.executable, "-m", "cli.main", *args, env=self.conduit_env())

    # -- building ---------------------------------------------------------------------------------------

    def start(self, workers: int = 3) -> None:
        # One cluster per machine at a time (the namespaces have fixed names): a second run waits its turn.
        self._lock = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        try:
            shutil.rmtree(WORK, ignore_errors=True)
            WORK.mkdir(parents=True)
            os.chmod(WORK, 0o777)
            self.net.build()
            self._postgres()
            self._pgbouncer()
            self._redis()
            self._haproxy()
            self.spawn("upstream", "upstream", sys.executable, "-m", "bench.cluster.upstream",
                       "--host", self.ip("upstream"), "--job-s", str(self.job_s))  # fmt: skip
            migrate = subprocess.run([sys.executable, "-m", "cli.main", "migrate"], cwd=ROOT, capture_output=True,
                                     env={**self.conduit_env(), "DATABASE_URL": self.direct_db_url,
                                          "DATABASE_POOL_MODE": "session"})  # fmt: skip
            if migrate.returncode:
                raise RuntimeError(f"migrate failed: {migrate.stderr.decode()[-2000:]}")
            for web in ("web1", "web2"):
                self.conduit(web, web, "web", "--host", self.ip(web), "--port", "8000")
            for worker in WORKERS[:workers]:
                self.conduit(worker, worker, "worker")
            wait_until(lambda: http_ok(f"{self.base_url}/readyz"), 60, "the load balancer's /readyz")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for name in list(self.procs):
            self.signal(name, signal.SIGKILL, wait_s=10)
        self.net.teardown()
        if self._lock is not None:
            os.close(self._lock)  # releases the lock
            self._lock = None

    def _postgres(self) -> None:
        data = WORK / "pg"
        data.mkdir()
        shutil.chown(data, "postgres", "postgres")
        init = subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "initdb"), "-D", str(data),
                               "-U", "postgres", "--auth=trust", "-E", "UTF8"], capture_output=True)  # fmt: skip
        if init.returncode:
            raise RuntimeError(f"initdb failed: {init.stderr.decode()}")
        with open(data / "pg_hba.conf", "a") as hba:
            hba.write("host all all 44.77.0.0/24 trust\n")
        listen = f"listen_addresses={self.ip('pg')}"
        self.spawn("postgres", "pg", str(PG_BIN / "postgres"), "-D", str(data), "-c", listen,
                   "-c", f"unix_socket_directories={data}", "-c", "max_connections=300", user="postgres")  # fmt: skip
        wait_until(lambda: port_open(self.ip("pg"), 5432), 30, "PostgreSQL")
        created = subprocess.run([str(PG_BIN / "createdb"), "-h", self.ip("pg"), "-U", "postgres", "conduit"],
                                 capture_output=True)  # fmt: skip
        if created.returncode:
            raise RuntimeError(f"createdb failed: {created.stderr.decode()}")

    def _pgbouncer(self) -> None:
        conf = WORK / "pgbouncer"
        conf.mkdir()
        (conf / "users.txt").write_text('"postgres" ""\n')
        (conf / "pgbouncer.ini").write_text(
            f"[databases]\nconduit = host={self.ip('pg')} port=5432 dbname=conduit\n\n[pgbouncer]\n"
            f"listen_addr = {self.ip('pgbouncer')}\nlisten_port = 6432\nauth_type = trust\n"
            f"auth_file = {conf / 'users.txt'}\npool_mode = transaction\nmax_client_conn = 2000\n"
            "default_pool_size = 60\nignore_startup_parameters = extra_float_digits,options\nunix_socket_dir =\n"
        )
        shutil.chown(conf, "postgres")
        self.spawn("pgbouncer", "pgbouncer", "pgbouncer", str(conf / "pgbouncer.ini"), user="postgres")
        wait_until(lambda: port_open(self.ip("pgbouncer"), 6432), 30, "PgBouncer")

    def restart_pgbouncer(self) -> None:
        self.signal("pgbouncer", signal.SIGTERM)
        self.spawn("pgbouncer", "pgbouncer", "pgbouncer", str(WORK / "pgbouncer" / "pgbouncer.ini"), user="postgres")
        wait_until(lambda: port_open(self.ip("pgbouncer"), 6432), 30, "PgBouncer")

    def _redis(self) -> None:
        for host in ("redis", "redis2"):
            data = WORK / host
            data.mkdir()
            args = ["--bind", self.ip(host), "--port", "6379", "--dir", str(data), "--appendonly", "yes",
                    "--save", "", "--protected-mode", "no"]  # fmt: skip
            if host == "redis2":
                args += ["--replicaof", self.ip("redis"), "6379"]
            self.spawn(host, host, "redis-server", *args)
            wait_until(functools.partial(port_open, self.ip(host), 6379), 30, f"Redis on {host}")
        for host in SENTINEL_HOSTS:
            conf = WORK / f"sentinel-{host}.conf"
            conf.write_text(
                f"port 26379\nbind {self.ip(host)}\nprotected-mode no\ndir {WORK}\n"
                f"sentinel monitor conduit {self.ip('redis')} 6379 2\n"
                "sentinel down-after-milliseconds conduit 3000\nsentinel failover-timeout conduit 10000\n"
            )
            self.spawn(f"sentinel-{host}", host, "redis-server", str(conf), "--sentinel")
            wait_until(functools.partial(port_open, self.ip(host), 26379), 30, f"Sentinel on {host}")

    def _haproxy(self) -> None:
        servers = "".join(
            f"  server {web} {self.ip(web)}:8000 check inter 1s fall 2 rise 2\n" for web in ("web1", "web2")
        )
        conf = WORK / "haproxy.cfg"
        conf.write_text(
            "global\n  maxconn 4000\n\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 60s\n"
            "  timeout server 60s\n  retries 2\n  option redispatch\n\n"
            f"frontend api\n  bind {self.ip('lb')}:80\n  default_backend web\n\n"
            "backend web\n  balance roundrobin\n  option httpchk GET /readyz\n  http-check expect status 200\n"
            + servers
        )
        self.spawn("haproxy", "lb", "haproxy", "-db", "-f", str(conf))
        wait_until(lambda: port_open(self.ip("lb"), 80), 30, "HAProxy")


def port_open(ip: str, port: int) -> bool:
    import socket

    try:
        with socket.create_connection((ip, port), timeout=0.5):
            return True
    except OSError:
        return False


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not come up within {timeout_s:.0f} s")


def machine_allows() -> str | None:
    """Why the cluster cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for tool in ("ip", "tc", "iptables", "haproxy", "pgbouncer", "redis-server", "runuser"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (make cluster-deps)"
    if not (PG_BIN / "postgres").exists():
        return f"PostgreSQL server binaries not found in {PG_BIN}"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "no postgres system user"
    probe = subprocess.run(["ip", "netns", "add", "cx-probe"], capture_output=True)
    if probe.returncode:
        return f"cannot create network namespaces: {probe.stderr.decode().strip()}"
    subprocess.run(["ip", "netns", "del", "cx-probe"], capture_output=True)
    return None


__all__ = ["CONTROL_IP", "Cluster", "machine_allows"]
