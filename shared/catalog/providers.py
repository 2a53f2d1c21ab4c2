"""Upstream provider declarations: which wire protocol a provider name speaks, where it lives, and which
environment variables hold its credentials and (optionally) override its base URL.

In the catalog TOML::

    [providers.together]
    protocol = "openai"                       # openai | replicate | fal | local
    base_url = "https://api.together.xyz/v1"
    api_key_env = "TOGETHER_API_KEY"          # no key in the environment: the provider's routes are skipped
    # base_url_env = "TOGETHER_BASE_URL"      # the default: <NAME>_BASE_URL
    # key_optional = true                     # self-hosted servers (vLLM, Ollama): usable once the base URL is set
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PROTOCOLS = ("openai", "replicate", "fal", "local")
_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")
_KEY_ENV = re.compile(r"[A-Z][A-Z0-9_]*_(API_KEY|API_TOKEN|KEY|TOKEN)")
_URL_ENV = re.compile(r"[A-Z][A-Z0-9_]*_BASE_URL")
_FIELDS = {"protocol", "base_url", "api_key_env", "base_url_env", "key_optional"}


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    name: str
    protocol: str
    base_url: str | None = None
    api_key_env: str | None = None
    base_url_env: str | None = None
    key_optional: bool = False

    def resolve(self, env: Mapping[str, str]) -> ResolvedProvider:
        """Base URL and key from the environment (``Settings.provider_env``)."""
        override = env.get(self.base_url_env) if self.base_url_env else None
        base_url = (override or self.base_url or "").rstrip("/") or None
        api_key = env.get(self.api_key_env) if self.api_key_env else None
        if self.protocol == "local":
            configured = True
        elif self.key_optional:
            configured = bool(base_url) and (bool(api_key) or bool(override))
        else:
            configured = bool(base_url) and bool(api_key)
        return ResolvedProvider(spec=self, base_url=base_url or "", api_key=api_key, configured=configured)


@dataclass(frozen=True, slots=True)
class ResolvedProvider:
    spec: ProviderSpec
    base_url: str
    api_key: str | None
    configured: bool


def parse_provider(name: str, raw: Any, *, where: str) -> ProviderSpec:
    from shared.catalog import CatalogError

    if not _NAME.fullmatch(name):
        raise CatalogError(f"{where}: provider name {name!r} must be lower-case letters, digits, '-' or '_'")
    if not isinstance(raw, dict):
        raise CatalogError(f"{where}: provider {name!r} must be a table")
    unknown = set(raw) - _FIELDS
    if unknown:
        raise CatalogError(f"{where}: provider {name!r} has unknown keys {sorted(unknown)}")
    protocol = raw.get("protocol")
    if protocol not in PROTOCOLS:
        raise CatalogError(f"{where}: provider {name!r}: protocol must be one of {PROTOCOLS}, got {protocol!r}")
    base_url = raw.get("base_url")
    if base_url is not None and not (isinstance(base_url, str) and re.match(r"https?://", base_url)):
        raise CatalogError(f"{where}: provider {name!r}: base_url must be an http(s) URL")
    api_key_env = raw.get("api_key_env")
    if api_key_env is not None and not (isinstance(api_key_env, str) and _KEY_ENV.fullmatch(api_key_env)):
        raise CatalogError(
            f"{where}: provider {name!r}: api_key_env must be an upper-case variable name ending in "
            "_API_KEY, _API_TOKEN, _KEY or _TOKEN"
        )
    default_url_env = re.sub(r"[^A-Z0-9]", "_", name.upper()) + "_BASE_URL"
    base_url_env = raw.get("base_url_env", default_url_env)
    if not (isinstance(base_url_env, str) and _URL_ENV.fullmatch(base_url_env)):
        raise CatalogError(f"{where}: provider {name!r}: base_url_env must be a variable name ending in _BASE_URL")
    key_optional = raw.get("key_optional", False)
    if not isinstance(key_optional, bool):
        raise CatalogError(f"{where}: provider {name!r}: key_optional must be true or false")
    if protocol != "local" and api_key_env is None and not key_optional:
        raise CatalogError(f"{where}: provider {name!r} needs api_key_env (or key_optional = true)")
    return ProviderSpec(
        name=name,
        protocol=protocol,
        base_url=base_url,
        api_key_env=api_key_env,
        base_url_env=base_url_env if protocol != "local" else None,
        key_optional=key_optional,
    )


RETIRED_ROUTE_OPTIONS = {
    "size": 'map width and height in params (e.g. width = "image_size.width")',
    "rename": 'name the upstream field in params (e.g. num_images = "num_outputs")',
    "drop": "a route honours every parameter its model offers: map it in params, fix it, or stop offering it",
}


INPUT_FORMS = ("url", "data_uri", "multipart")  # input files upstream: a signed URL, inline, or a multipart file


def check_route_options(options: dict[str, Any], *, where: str) -> None:
    """The route options the upstream adapters read must be well-formed; ``params`` is checked on its own
    (``shared.catalog.routes``)."""
    from shared.catalog import CatalogError

    for option, instead in RETIRED_ROUTE_OPTIONS.items():
        if option in options:
            raise CatalogError(f"{where}: route option {option!r} is no longer read: {instead}")
    if not isinstance(options.get("extra", {}), dict):
        raise CatalogError(f"{where}: route option extra must be a table")
    if options.get("inputs", "url") not in INPUT_FORMS:
        raise CatalogError(f"{where}: route option inputs must be one of {INPUT_FORMS} (how input files are sent)")
