"""Reading typed values from the environment for ``shared.settings``; each error names the variable."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from shared.ledger.money import CreditsFormatError, parse_credits


class SettingsError(ValueError):
    """An environment variable has a value we cannot use."""


def env_int(env: Mapping[str, str], name: str, default: int, minimum: int | None = None) -> int:
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


def env_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from exc


def env_positive_float(env: Mapping[str, str], name: str, default: float) -> float:
    value = env_float(env, name, default)
    if value <= 0:
        raise SettingsError(f"{name} must be > 0, got {value}")
    return value


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be a boolean (true/false), got {raw!r}")


def env_str(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name)
    return raw if raw else None


def env_credits(env: Mapping[str, str], name: str, default: str) -> int:
    try:
        value = parse_credits(env.get(name) or default)
    except CreditsFormatError as exc:
        raise SettingsError(f"{name}: {exc}") from exc
    if value < 0:
        raise SettingsError(f"{name} cannot be negative")
    return value


def env_networks(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Comma-separated IP addresses and networks (``10.0.0.0/8``), or ``*`` for any; empty: none."""
    items = [item.strip() for item in (env.get(name) or "").split(",") if item.strip()]
    if items == ["*"]:
        return ("*",)
    networks = []
    for item in items:
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError as exc:
            raise SettingsError(f"{name} must list IP addresses or networks (or be *), got {item!r}") from exc
    return tuple(networks)


# Upstream provider credentials and base URLs are named by the catalog's [providers.*] tables; only
# variables with these suffixes are captured (see shared/catalog/providers.py).
PROVIDER_ENV = re.compile(r"[A-Z][A-Z0-9_]*_(API_KEY|API_TOKEN|KEY|TOKEN|BASE_URL)")
NOT_PROVIDER_ENV = re.compile(r"SECRET_KEY|STRIPE_.*")  # our own secrets are never handed to a provider


def provider_env(env: Mapping[str, str]) -> dict[str, str]:
    return {
        name: value
        for name, value in env.items()
        if value and PROVIDER_ENV.fullmatch(name) and not NOT_PROVIDER_ENV.fullmatch(name)
    }


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def development_secret(path: Path) -> bytes:
    """A random secret kept in ``path``, created on first use (development: no SECRET_KEY). Safe when several
    processes start at once: the first one to create the file wins and every process reads the same key."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(os.urandom(32).hex())
        tmp.chmod(0o600)
        try:
            os.link(tmp, path)  # atomic: the first process to create it wins
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip().encode()
