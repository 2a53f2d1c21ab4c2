"""The input media settings (``Settings.media``), read from the environment with the rest in ``shared.settings``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from shared.infra.env import env_int, env_positive_float


@dataclasses.dataclass(frozen=True, slots=True)
class MediaSettings:
    """Input media (uploads, URLs, data: URIs): per-file caps (an image is decoded only up to ``max_pixels``),
    the per-account storage quota of uploads, how long uploads are kept, and the time a URL may take."""

    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000
    quota_bytes: int = 1024 * 1024 * 1024
    upload_retention_s: int = 7 * 24 * 3600
    fetch_timeout_s: float = 15.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> MediaSettings:
        return cls(
            max_bytes=env_int(env, "UPLOAD_MAX_BYTES", 20 * 1024 * 1024, minimum=1024),
            max_pixels=env_int(env, "UPLOAD_MAX_PIXELS", 40_000_000, minimum=1),
            quota_bytes=env_int(env, "UPLOAD_QUOTA_BYTES", 1024 * 1024 * 1024, minimum=1024),
            upload_retention_s=env_int(env, "UPLOAD_RETENTION_S", 7 * 24 * 3600, minimum=60),
            fetch_timeout_s=env_positive_float(env, "INPUT_URL_TIMEOUT_S", 15.0),
        )
