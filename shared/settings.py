"""Settings: one object built from the environment at start-up and passed down.

Nothing here connects to anything or reads files at import time. ``Settings.from_env()`` is called by the
composition roots (the CLI, the app factory, the worker settings) and the result is handed to services.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

from shared.accounts.settings import AuthSettings
from shared.batches.settings import BatchSettings
from shared.events.settings import EventSettings
from shared.infra.deployment import DeploymentSettings
from shared.infra.env import (
    SettingsError,
    development_secret,
    env_bool,
    env_credits,
    env_float,
    env_int,
    env_networks,
    env_positive_float,
    env_str,
    provider_env,
)
from shared.infra.mail import MailSettings
from shared.media.settings import MediaSettings
from shared.moderation.settings import ModerationSettings
from shared.support.settings import SupportSettings

PACKAGE_ROOT = Path(__file__).resolve().parent
DEFAULT_CATALOG = PACKAGE_ROOT / "catalog" / "models.toml"
DEFAULT_PRODUCTS = PACKAGE_ROOT / "billing" / "products.toml"


@dataclasses.dataclass(frozen=True, slots=True)
class RateLimitSettings:
    """Default limits of API requests (per minute) and in-flight tasks, per API key and per account; 0 means no
    limit. Accounts and keys can carry their own values (``conduit accounts limits``, ``PATCH /v1/keys/{id}``)."""

    rpm_per_key: int = 600
    rpm_per_account: int = 1200
    inflight_per_key: int = 50
    inflight_per_account: int = 100
    fail_open: bool = True  # Redis unreachable: let requests through (True) or answer 503 (False)
    redis_timeout_s: float = 1.0
    invalid_keys_per_ip_per_min: int = 60  # requests with an unknown, revoked or expired API key per client IP

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RateLimitSettings:
        mode = (env.get("RATE_LIMIT_ON_REDIS_ERROR") or "open").strip().lower()
        if mode not in ("open", "closed"):
            raise SettingsError(f"RATE_LIMIT_ON_REDIS_ERROR must be open or closed, got {mode!r}")
        return cls(
            rpm_per_key=env_int(env, "RATE_LIMIT_RPM_PER_KEY", 600, minimum=0),
            rpm_per_account=env_int(env, "RATE_LIMIT_RPM_PER_ACCOUNT", 1200, minimum=0),
            inflight_per_key=env_int(env, "MAX_INFLIGHT_TASKS_PER_KEY", 50, minimum=0),
            inflight_per_account=env_int(env, "MAX_INFLIGHT_TASKS_PER_ACCOUNT", 100, minimum=0),
            fail_open=mode == "open",
            redis_timeout_s=env_positive_float(env, "RATE_LIMIT_REDIS_TIMEOUT_MS", 1000.0) / 1000.0,
            invalid_keys_per_ip_per_min=env_int(env, "INVALID_KEY_RATE_PER_MIN", 60, minimum=1),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class InputLimits:
    """What one request may carry besides its size (``MAX_BODY_BYTES``), checked where the API decodes it:
    JSON nesting depth, array and object sizes, and the largest credit amount a field accepts."""

    json_max_depth: int = 32
    json_max_array_items: int = 10_000
    json_max_object_keys: int = 1_000
    max_credit_amount: int = 1_000_000_000 * 1_000_000  # micro-credits (a billion credits)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> InputLimits:
        max_credits = env_credits(env, "MAX_CREDIT_AMOUNT", "1000000000")
        if not 0 < max_credits <= 2**62:  # sums of such amounts must still fit a BIGINT column
            raise SettingsError("MAX_CREDIT_AMOUNT must be above 0 and at most 4611686018427 credits")
        return cls(
            json_max_depth=env_int(env, "MAX_JSON_DEPTH", 32, minimum=2),
            json_max_array_items=env_int(env, "MAX_JSON_ARRAY_ITEMS", 10_000, minimum=1),
            json_max_object_keys=env_int(env, "MAX_JSON_OBJECT_KEYS", 1_000, minimum=1),
            max_credit_amount=max_credits,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class OperatingSettings:
    """Operating Conduit: metrics access, retention, sweeps, shutdown, logs and traces."""

    metrics_token: str | None = None  # set: /metrics wants "Authorization: Bearer <token>"; unset: loopback only
    metrics_flush_s: float = 5.0  # how often a process adds its counters to the shared totals in Redis
    retention_days: int = 30  # task inputs and output files of tasks finished longer ago are purged (0: never)
    idempotency_ttl_h: int = 24  # Idempotency-Key records older than this are pruned
    worker_shutdown_grace_s: float = 25.0  # on SIGTERM, how long in-flight jobs may finish before handed back
    worker_heartbeat_s: int = 15  # the worker's liveness record is refreshed this often (arq health check too)
    log_format: str = "json"  # "json" (one object per line) or "text"
    access_log: bool = True  # a line per HTTP request (api.access_log)
    otlp_endpoint: str | None = None  # OTEL_EXPORTER_OTLP_ENDPOINT: traces exported there (shared.infra.tracing)
    otel_service_name: str | None = None  # OTEL_SERVICE_NAME; default conduit-web / conduit-worker

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> OperatingSettings:
        log_format = (env.get("LOG_FORMAT") or "json").lower()
        if log_format not in ("json", "text"):
            raise SettingsError(f"LOG_FORMAT must be 'json' or 'text', got {log_format!r}")
        return cls(
            metrics_token=env_str(env, "METRICS_TOKEN"),
            metrics_flush_s=env_positive_float(env, "METRICS_FLUSH_S", 5.0),
            retention_days=env_int(env, "RETENTION_DAYS", 30, minimum=0),
            idempotency_ttl_h=env_int(env, "IDEMPOTENCY_TTL_H", 24, minimum=1),
            worker_shutdown_grace_s=env_float(env, "WORKER_SHUTDOWN_GRACE_S", 25.0),
            worker_heartbeat_s=min(env_int(env, "WORKER_HEARTBEAT_S", 15, minimum=1), 60),
            log_format=log_format,
            access_log=env_bool(env, "ACCESS_LOG", True),
            otlp_endpoint=env_str(env, "OTEL_EXPORTER_OTLP_ENDPOINT"),
            otel_service_name=env_str(env, "OTEL_SERVICE_NAME"),
        )


def _catalog_paths(value: str) -> tuple[Path, ...]:
    """The shipped catalog, then the ``CATALOG_PATH`` files over it (naming the shipped one there adds nothing)."""
    layered = [Path(p) for p in value.split(os.pathsep) if p]
    return (DEFAULT_CATALOG, *(p for p in layered if p.resolve() != DEFAULT_CATALOG))


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """Every knob Conduit reads from the environment (documented in the README's Operating section)."""

    # Connections. None means "start the embedded server" (development and tests only).
    database_url: str | None = None
    redis_url: str | None = None
    # Multi-host deployments: PgBouncer, a direct connection, Redis Sentinel, dead-worker detection
    deployment: DeploymentSettings = dataclasses.field(default_factory=DeploymentSettings)
    # Project-local folder for embedded servers, default storage and the development secret.
    data_dir: Path = Path(".conduit/dev")
    storage_dir: Path | None = None
    # HTTP
    host: str = "127.0.0.1"
    port: int = 8000
    public_base_url: str = "http://127.0.0.1:8000"
    max_body_bytes: int = 1_048_576
    input_limits: InputLimits = InputLimits()  # JSON nesting and sizes, credit amounts
    forwarded_allow_ips: tuple[str, ...] = ()  # proxies whose X-Forwarded-For is believed ("*": any peer)
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
    # Webhooks and the URL guard
    url_guard_allow_loopback: bool = False  # development and tests only: let user URLs reach 127.0.0.1 / ::1
    webhook_timeout_s: float = 15.0
    # Accounts
    mail: MailSettings = dataclasses.field(default_factory=MailSettings)
    auth: AuthSettings = dataclasses.field(default_factory=AuthSettings)
    # Rate limits and support tickets
    rate_limits: RateLimitSettings = RateLimitSettings()
    support: SupportSettings = dataclasses.field(default_factory=SupportSettings)
    media: MediaSettings = dataclasses.field(default_factory=MediaSettings)  # input media: uploads, URL inputs
    # Billing (Stripe). Without a secret key, checkout and refunds answer 503; the rest of the API works.
    stripe_secret_key: str | None = None
    stripe_webhook_secret: str | None = None
    stripe_api_base: str = "https://api.stripe.com"
    checkout_success_url: str | None = None  # default: the dashboard's return page
    checkout_cancel_url: str | None = None
    billing_products_path: Path = DEFAULT_PRODUCTS
    # OpenAI-compatible API: how long POST /v1/images/generations waits for its task
    image_generation_wait_s: float = 60.0
    operating: OperatingSettings = OperatingSettings()  # metrics, retention, shutdown, logs
    events: EventSettings = dataclasses.field(default_factory=EventSettings)  # live task events (Server-Sent Events)
    batches: BatchSettings = dataclasses.field(default_factory=BatchSettings)  # batch work, OpenAI Batch API
    # moderation: policy files, evidence retention, strikes
    moderation: ModerationSettings = dataclasses.field(default_factory=ModerationSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        data_dir = Path(env.get("CONDUIT_DATA_DIR") or ".conduit/dev").expanduser().resolve()
        port = env_int(env, "PORT", 8000, minimum=0)
        public_base_url = (env.get("PUBLIC_BASE_URL") or f"http://127.0.0.1:{port}").rstrip("/")
        storage = env_str(env, "STORAGE_DIR")
        return cls(
            database_url=env_str(env, "DATABASE_URL"),
            # with Sentinels, REDIS_URL only gives the database number and the password
            redis_url=env_str(env, "REDIS_URL") or ("redis:///0" if env_str(env, "REDIS_SENTINELS") else None),
            deployment=DeploymentSettings.from_env(env),
            data_dir=data_dir,
            storage_dir=Path(storage).expanduser().resolve() if storage else None,
            host=env.get("HOST") or "127.0.0.1",
            port=port,
            public_base_url=public_base_url,
            max_body_bytes=env_int(env, "MAX_BODY_BYTES", 1_048_576, minimum=1024),
            input_limits=InputLimits.from_env(env),
            forwarded_allow_ips=env_networks(env, "FORWARDED_ALLOW_IPS"),
            secret_key=env_str(env, "SECRET_KEY"),
            file_url_ttl_s=env_int(env, "FILE_URL_TTL_S", 24 * 3600, minimum=60),
            db_pool_min=env_int(env, "DB_POOL_MIN", 2, minimum=1),
            db_pool_max=env_int(env, "DB_POOL_MAX", 20, minimum=1),
            catalog_paths=_catalog_paths(env.get("CATALOG_PATH") or ""),
            worker_max_jobs=env_int(env, "WORKER_MAX_JOBS", 1000, minimum=1),
            worker_poll_delay_s=env_float(env, "WORKER_POLL_DELAY_MS", 5.0) / 1000.0,
            task_job_timeout_s=env_int(env, "TASK_JOB_TIMEOUT_S", 120, minimum=1),
            task_max_tries=env_int(env, "TASK_MAX_TRIES", 20, minimum=1),
            log_level=(env.get("LOG_LEVEL") or "INFO").upper(),
            provider_env=provider_env(env),
            provider_connect_timeout_s=env_float(env, "PROVIDER_CONNECT_TIMEOUT_S", 5.0),
            provider_read_timeout_s=env_float(env, "PROVIDER_READ_TIMEOUT_S", 60.0),
            provider_max_connections=env_int(env, "PROVIDER_MAX_CONNECTIONS", 1000, minimum=1),
            provider_max_attempts=env_int(env, "PROVIDER_MAX_ATTEMPTS", 4, minimum=1),
            provider_retry_budget_s=env_float(env, "PROVIDER_RETRY_BUDGET_S", 0) or None,
            provider_retry_after_cap_s=env_float(env, "PROVIDER_RETRY_AFTER_CAP_S", 20.0),
            circuit_failure_threshold=env_int(env, "CIRCUIT_FAILURE_THRESHOLD", 5, minimum=1),
            circuit_cooldown_s=env_float(env, "CIRCUIT_COOLDOWN_S", 30.0),
            upstream_poll_min_s=env_float(env, "UPSTREAM_POLL_MIN_S", 1.0),
            upstream_poll_max_s=env_float(env, "UPSTREAM_POLL_MAX_S", 10.0),
            output_max_bytes=env_int(env, "OUTPUT_MAX_BYTES", 200 * 1024 * 1024, minimum=1024),
            output_download_timeout_s=env_float(env, "OUTPUT_DOWNLOAD_TIMEOUT_S", 0) or None,
            url_guard_allow_loopback=env_bool(env, "URL_GUARD_ALLOW_LOOPBACK", False),
            webhook_timeout_s=env_positive_float(env, "WEBHOOK_TIMEOUT_S", 15.0),
            mail=MailSettings.from_env(env, data_dir),
            auth=AuthSettings.from_env(env, public_base_url),
            rate_limits=RateLimitSettings.from_env(env),
            support=SupportSettings.from_env(env),
            media=MediaSettings.from_env(env),
            stripe_secret_key=env_str(env, "STRIPE_SECRET_KEY"),
            stripe_webhook_secret=env_str(env, "STRIPE_WEBHOOK_SECRET"),
            stripe_api_base=(env.get("STRIPE_API_BASE") or "https://api.stripe.com").rstrip("/"),
            checkout_success_url=env_str(env, "CHECKOUT_SUCCESS_URL"),
            checkout_cancel_url=env_str(env, "CHECKOUT_CANCEL_URL"),
            billing_products_path=Path(env.get("BILLING_PRODUCTS_PATH") or str(DEFAULT_PRODUCTS)),
            image_generation_wait_s=env_positive_float(env, "IMAGE_GENERATION_WAIT_S", 60.0),
            operating=OperatingSettings.from_env(env),
            events=EventSettings.from_env(env),
            batches=BatchSettings.from_env(env),
            moderation=ModerationSettings.from_env(env),
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

    @property
    def direct_database_url(self) -> str:
        """A direct PostgreSQL connection for what a transaction pooler cannot carry (LISTEN, session locks)."""
        database_url, _ = self.require_connections()
        return self.deployment.direct_database_url or database_url

    @property
    def resolved_checkout_success_url(self) -> str:
        return self.checkout_success_url or f"{self.public_base_url}/dashboard/billing/return?result=success"

    @property
    def resolved_checkout_cancel_url(self) -> str:
        return self.checkout_cancel_url or f"{self.public_base_url}/dashboard/billing/return?result=cancel"

    def with_connections(self, database_url: str, redis_url: str) -> Settings:
        return dataclasses.replace(self, database_url=database_url, redis_url=redis_url)

    def signing_key(self) -> bytes:
        """Key for signed file URLs and sign-in device cookies. SECRET_KEY in production; a per-data-dir random
        key in development."""
        return self.secret_key.encode() if self.secret_key else development_secret(self.data_dir / "secret_key")
