"""Batch work: the workers' share of it and the OpenAI Batch API's limits (environment variables ``BATCH_*``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from shared.infra.env import env_int


@dataclasses.dataclass(frozen=True, slots=True)
class BatchSettings:
    # batch jobs a worker runs at once, besides its WORKER_MAX_JOBS interactive ones: few, so that the interactive
    # ones keep their latency (bench/RESULTS.md)
    worker_max_jobs: int = 5
    line_concurrency: int = 4  # lines of one OpenAI batch run at once
    max_lines: int = 10_000  # lines of one batch input file
    file_max_bytes: int = 50 * 1024 * 1024  # largest uploaded file (POST /v1/files)
    file_retention_s: int = 30 * 86_400  # batch input, output and error files are deleted this long after made

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> BatchSettings:
        return cls(
            worker_max_jobs=env_int(env, "BATCH_WORKER_MAX_JOBS", 5, minimum=1),
            line_concurrency=env_int(env, "BATCH_LINE_CONCURRENCY", 4, minimum=1),
            max_lines=env_int(env, "BATCH_MAX_LINES", 10_000, minimum=1),
            file_max_bytes=env_int(env, "BATCH_FILE_MAX_BYTES", 50 * 1024 * 1024, minimum=1024),
            file_retention_s=env_int(env, "BATCH_FILE_RETENTION_S", 30 * 86_400, minimum=60),
        )
