"""The multi-host settings: PgBouncer's pool mode, the direct connection, Sentinels, dead-worker detection."""

from __future__ import annotations

import pytest

from shared.infra.deployment import SentinelSettings
from shared.infra.env import SettingsError
from shared.settings import Settings

BASE = {"DATABASE_URL": "postgresql://app@bouncer:6432/conduit", "REDIS_URL": "redis://:secret@redis:6379/2"}


def test_defaults_keep_a_single_host_deployment_as_it_was() -> None:
    settings = Settings.from_env(BASE)
    deployment = settings.deployment
    assert deployment.pool_mode == "session" and not deployment.transaction_pooling
    assert settings.direct_database_url == BASE["DATABASE_URL"]
    assert deployment.sentinel is None
    assert deployment.worker_death_detect_s == 15
    assert deployment.lease_s == 10 and deployment.lease_renew_s == 5


def test_transaction_pooling_with_a_direct_connection() -> None:
    settings = Settings.from_env({
        **BASE, "DATABASE_POOL_MODE": "Transaction", "DATABASE_DIRECT_URL": "postgresql://app@db:5432/conduit",
        "WORKER_DEATH_DETECT_S": "6",
    })  # fmt: skip
    assert settings.deployment.transaction_pooling
    assert settings.direct_database_url == "postgresql://app@db:5432/conduit"
    assert settings.deployment.lease_s == 4 and settings.deployment.lease_renew_s == 2


def test_sentinels_make_redis_url_optional() -> None:
    settings = Settings.from_env({
        "DATABASE_URL": BASE["DATABASE_URL"], "REDIS_SENTINELS": "s1:26379, s2:26380,s3",
        "REDIS_SENTINEL_PASSWORD": "pw",
    })  # fmt: skip
    assert settings.deployment.sentinel == SentinelSettings(
        sentinels=(("s1", 26379), ("s2", 26380), ("s3", 26379)), service="conduit", password="pw"
    )
    assert settings.require_connections() == (BASE["DATABASE_URL"], "redis:///0")
    named = Settings.from_env({**BASE, "REDIS_SENTINELS": "s1:1", "REDIS_SENTINEL_SERVICE": "prod"})
    assert named.redis_url == BASE["REDIS_URL"]  # still gives the database number and the password
    assert named.deployment.sentinel is not None and named.deployment.sentinel.service == "prod"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_POOL_MODE", "statement"),
        ("REDIS_SENTINELS", "s1:notaport"),
        ("REDIS_SENTINELS", "s1:0"),
        ("REDIS_SENTINELS", ":26379"),
        ("WORKER_DEATH_DETECT_S", "0.5"),
        ("WORKER_DEATH_DETECT_S", "soon"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({**BASE, name: value})
