"""Settings: one object built from the environment at start-up and passed down.

Nothing here connects to anything or reads files at import time. ``Settings.from_env()`` is called by the
composition roots (the CLI, the app factory, the worker settings) and the result is handed to services.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent
DEFAULT_CATALOG = PACKAGE_ROOT / "catalog" / "models.toml"


class SettingsError(ValueError):
    """An environment variable has a value we cannot use."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int | None = None) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from exc
    if minimum is not None and value < minimum:
        raise SettingsError(f"{name} must be >= {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from exc


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be a boolean (true/false), got {raw!r}")


def _str(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name)
    return raw if raw else None


# Upstream provider credentials and base URLs are named by the catalog's [providers.*] tables; only
# variables with these suffixes are captured (see shared/catalog/providers.py).
PROVIDER_ENV = re.compile(r"[A-Z][A-Z0-9_]*_(API_KEY|API_TOKEN|KEY|TOKEN|BASE_URL)")
NOT_PROVIDER_ENV = re.compile(r"SECRET_KEY|STRIPE_.*")  # our own secrets are never handed to a provider


def _provider_env(env: Mapping[str, str]) -> dict[str, str]:
    return {
        name: value
        for name, value in env.items()
        if value and PROVIDER_ENV.fullmatch(name) and not NOT_PROVIDER_ENV.fullmatch(name)
    }


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """Every knob Conduit reads from the environment (documented in the README's Operating section)."""

    # Connections. None means "start the embedded server" (development and tests only).
    database_url: str | None = None
    redis_url: str | None = None
    # Project-local folder for embedded servers, default storage and the development secret.
    data_dir: Path = Path(".conduit/dev")
    storage_dir: Path | None = None
    # HTTP
    host: str = "127.0.0.1"
    port: int = 8000
    public_base_url: str = "http://127.0.0.1:8000"
    max_body_bytes: int = 1_048_576
    secret_key: str | None = None
    file_url_ttl_s: int = 24 * 3600
    # Database pool per process
    db_pool_min: int = 2
    db_pool_max: int = 20
    # Catalog
    catalog_paths: tuple[Path, ...] = (DEFAULT_CATALOG,)
    # Worker
    worker_max_jobs: int = 1000
    worker_poll_delay_s: float = 0.005
    task_job_timeout_s: int = 120
    task_max_tries: int = 20
    # Logging
    log_level: str = "INFO"
    # Upstream providers (credentials, retries, circuit breaker, polling, output downloads)
    provider_env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    provider_connect_timeout_s: float = 5.0
    provider_read_timeout_s: float = 60.0
    provider_max_connections: int = 1000
    provider_max_attempts: int = 4
    provider_retry_budget_s: float | None = None  # None: 90% of TASK_JOB_TIMEOUT_S
    provider_retry_after_cap_s: float = 20.0
    circuit_failure_threshold: int = 5
    circuit_cooldown_s: float = 30.0
    upstream_poll_min_s: float = 1.0
    upstream_poll_max_s: float = 10.0
    output_max_bytes: int = 200 * 1024 * 1024
    output_download_timeout_s: float | None = None  # None: a quarter of TASK_JOB_TIMEOUT_S

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        data_dir = Path(env.get("CONDUIT_DATA_DIR") or ".conduit/dev").expanduser().resolve()
        port = _int(env, "PORT", 8000, minimum=0)
        storage = _str(env, "STORAGE_DIR")
        return cls(
            database_url=_str(env, "DATABASE_URL"),
            redis_url=_str(env, "REDIS_URL"),
            data_dir=data_dir,
            storage_dir=Path(storage).expanduser().resolve() if storage else None,
            host=env.get("HOST") or "127.0.0.1",
            port=port,
            public_base_url=(env.get("PUBLIC_BASE_URL") or f"http://127.0.0.1:{port}").rstrip("/"),
            max_body_bytes=_int(env, "MAX_BODY_BYTES", 1_048_576, minimum=1024),
            secret_key=_str(env, "SECRET_KEY"),
            file_url_ttl_s=_int(env, "FILE_URL_TTL_S", 24 * 3600, minimum=60),
            db_pool_min=_int(env, "DB_POOL_MIN", 2, minimum=1),
            db_pool_max=_int(env, "DB_POOL_MAX", 20, minimum=1),
            catalog_paths=tuple(
                Path(p) for p in (env.get("CATALOG_PATH") or str(DEFAULT_CATALOG)).split(os.pathsep) if p
            ),
            worker_max_jobs=_int(env, "WORKER_MAX_JOBS", 1000, minimum=1),
            worker_poll_delay_s=_float(env, "WORKER_POLL_DELAY_MS", 5.0) / 1000.0,
            task_job_timeout_s=_int(env, "TASK_JOB_TIMEOUT_S", 120, minimum=1),
            task_max_tries=_int(env, "TASK_MAX_TRIES", 20, minimum=1),
            log_level=(env.get("LOG_LEVEL") or "INFO").upper(),
            provider_env=_provider_env(env),
            provider_connect_timeout_s=_float(env, "PROVIDER_CONNECT_TIMEOUT_S", 5.0),
            provider_read_timeout_s=_float(env, "PROVIDER_READ_TIMEOUT_S", 60.0),
            provider_max_connections=_int(env, "PROVIDER_MAX_CONNECTIONS", 1000, minimum=1),
            provider_max_attempts=_int(env, "PROVIDER_MAX_ATTEMPTS", 4, minimum=1),
            provider_retry_budget_s=_float(env, "PROVIDER_RETRY_BUDGET_S", 0) or None,
            provider_retry_after_cap_s=_float(env, "PROVIDER_RETRY_AFTER_CAP_S", 20.0),
            circuit_failure_threshold=_int(env, "CIRCUIT_FAILURE_THRESHOLD", 5, minimum=1),
            circuit_cooldown_s=_float(env, "CIRCUIT_COOLDOWN_S", 30.0),
            upstream_poll_min_s=_float(env, "UPSTREAM_POLL_MIN_S", 1.0),
            upstream_poll_max_s=_float(env, "UPSTREAM_POLL_MAX_S", 10.0),
            output_max_bytes=_int(env, "OUTPUT_MAX_BYTES", 200 * 1024 * 1024, minimum=1024),
            output_download_timeout_s=_float(env, "OUTPUT_DOWNLOAD_TIMEOUT_S", 0) or None,
        )

    @property
    def retry_budget_s(self) -> float:
        """Time one job run may spend on upstream work (all routes, retries and output downloads): below
        the job timeout, so that the run ends by itself and settles."""
        return self.provider_retry_budget_s or self.task_job_timeout_s * 0.9

    @property
    def download_timeout_s(self) -> float:
        return self.output_download_timeout_s or self.task_job_timeout_s / 4

    @property
    def resolved_storage_dir(self) -> Path:
        return self.storage_dir or (self.data_dir / "storage")

    def require_connections(self) -> tuple[str, str]:
        """The database and Redis URLs; raises when the composition root did not resolve them."""
        if not self.database_url or not self.redis_url:
            raise SettingsError("DATABASE_URL and REDIS_URL must be set (the CLI starts embedded servers)")
        return self.database_url, self.redis_url

    def with_connections(self, database_url: str, redis_url: str) -> Settings:
        return dataclasses.replace(self, database_url=database_url, redis_url=redis_url)

    def signing_key(self) -> bytes:
        """Key for signed file URLs. SECRET_KEY in production; a per-data-dir random key in development."""
        if self.secret_key:
            return self.secret_key.encode()
        path = self.data_dir / "secret_key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".secret_key.{os.getpid()}")
            tmp.write_text(os.urandom(32).hex())
            tmp.chmod(0o600)
            try:
                os.link(tmp, path)  # atomic: the first process to create it wins
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        return path.read_text().strip().encode()
