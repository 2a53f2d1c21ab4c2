"""How the processes reach PostgreSQL and Redis in a multi-host deployment, and how fast a dead worker's tasks
are taken over (environment variables ``DATABASE_POOL_MODE``, ``DATABASE_DIRECT_URL``, ``REDIS_SENTINEL*``,
``WORKER_DEATH_DETECT_S``).

* ``DATABASE_POOL_MODE=transaction``: ``DATABASE_URL`` points at PgBouncer in transaction mode, so a server
  connection is ours only for one transaction: asyncpg's prepared-statement cache is off (its statements would
  be looked up on another server connection) and nothing session-scoped goes through that pool. What needs a
  session (LISTEN, session advisory locks) uses ``DATABASE_DIRECT_URL``, a direct connection to PostgreSQL.
* ``REDIS_SENTINELS``: the Redis clients ask these Sentinels for the current primary of
  ``REDIS_SENTINEL_SERVICE`` and follow it after a failover.
* ``WORKER_DEATH_DETECT_S``: a running task's lease lasts two thirds of it and its worker renews it every third,
  so a task whose worker died is taken over within it (``shared.tasks.leases``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from shared.infra.env import SettingsError, env_positive_float, env_str

POOL_MODES = ("session", "transaction")


@dataclasses.dataclass(frozen=True, slots=True)
class SentinelSettings:
    sentinels: tuple[tuple[str, int], ...]
    service: str = "conduit"
    password: str | None = None  # the Sentinels' own password (the primary's comes from REDIS_URL)


@dataclasses.dataclass(frozen=True, slots=True)
class DeploymentSettings:
    pool_mode: str = "session"
    direct_database_url: str | None = None  # None: DATABASE_URL
    sentinel: SentinelSettings | None = None
    worker_death_detect_s: float = 15.0

    @property
    def transaction_pooling(self) -> bool:
        return self.pool_mode == "transaction"

    @property
    def lease_s(self) -> float:
        """How long a running task's lease lasts: renewed every third of the detection time, it survives one
        missed renewal and lapses within the detection time of its worker's death."""
        return self.worker_death_detect_s * 2 / 3

    @property
    def lease_renew_s(self) -> float:
        return self.worker_death_detect_s / 3

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DeploymentSettings:
        mode = (env.get("DATABASE_POOL_MODE") or "session").strip().lower()
        if mode not in POOL_MODES:
            raise SettingsError(f"DATABASE_POOL_MODE must be session or transaction, got {mode!r}")
        sentinels = parse_sentinels(env.get("REDIS_SENTINELS") or "")
        sentinel = None
        if sentinels:
            sentinel = SentinelSettings(
                sentinels=sentinels,
                service=env_str(env, "REDIS_SENTINEL_SERVICE") or "conduit",
                password=env_str(env, "REDIS_SENTINEL_PASSWORD"),
            )
        detect_s = env_positive_float(env, "WORKER_DEATH_DETECT_S", 15.0)
        if detect_s < 1:
            raise SettingsError(f"WORKER_DEATH_DETECT_S must be >= 1, got {detect_s}")
        return cls(
            pool_mode=mode,
            direct_database_url=env_str(env, "DATABASE_DIRECT_URL"),
            sentinel=sentinel,
            worker_death_detect_s=detect_s,
        )


def parse_sentinels(raw: str) -> tuple[tuple[str, int], ...]:
    """``host:port,host:port`` (a bare host means port 26379)."""
    found = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep:
            host, port = item, "26379"
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise SettingsError(f"REDIS_SENTINELS must be host:port[,host:port...], got {item!r}")
        found.append((host, int(port)))
    return tuple(found)
