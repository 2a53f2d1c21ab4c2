"""Settings: one object built from the environment at start-up and passed down.

Nothing here connects to anything or reads files at import time. ``Settings.from_env()`` is called by the
composition roots (the CLI, the app factory, the worker settings) and the result is handed to services.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent
DEFAULT_CATALOG = PACKAGE_ROOT / "catalog" / "models.toml"
DEFAULT_PRODUCTS = PACKAGE_ROOT / "billing" / "products.toml"


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
    # Billing (Stripe). Without a secret key, checkout and refunds answer 503; the rest of the API works.
    stripe_secret_key: str | None = None
    stripe_webhook_secret: str | None = None
    stripe_api_base: str = "https://api.stripe.com"
    checkout_success_url: str | None = None  # default: PUBLIC_BASE_URL + "/v1/billing/return?result=success"
    checkout_cancel_url: str | None = None  # default: PUBLIC_BASE_URL + "/v1/billing/return?result=cancel"
    billing_products_path: Path = DEFAULT_PRODUCTS

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
            stripe_secret_key=_str(env, "STRIPE_SECRET_KEY"),
            stripe_webhook_secret=_str(env, "STRIPE_WEBHOOK_SECRET"),
            stripe_api_base=(env.get("STRIPE_API_BASE") or "https://api.stripe.com").rstrip("/"),
            checkout_success_url=_str(env, "CHECKOUT_SUCCESS_URL"),
            checkout_cancel_url=_str(env, "CHECKOUT_CANCEL_URL"),
            billing_products_path=Path(env.get("BILLING_PRODUCTS_PATH") or str(DEFAULT_PRODUCTS)),
        )

    @property
    def resolved_storage_dir(self) -> Path:
        return self.storage_dir or (self.data_dir / "storage")

    def require_connections(self) -> tuple[str, str]:
        """The database and Redis URLs; raises when the composition root did not resolve them."""
        if not self.database_url or not self.redis_url:
            raise SettingsError("DATABASE_URL and REDIS_URL must be set (the CLI starts embedded servers)")
        return self.database_url, self.redis_url

    @property
    def resolved_checkout_success_url(self) -> str:
        return self.checkout_success_url or f"{self.public_base_url}/v1/billing/return?result=success"

    @property
    def resolved_checkout_cancel_url(self) -> str:
        return self.checkout_cancel_url or f"{self.public_base_url}/v1/billing/return?result=cancel"

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
