"""How live task events are kept and streamed (environment variables ``EVENTS_*``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from shared.infra.env import env_int, env_positive_float


@dataclasses.dataclass(frozen=True, slots=True)
class EventSettings:
    tail_max_len: int = 20_000  # entries kept in the stream every API process reads (about 40 s at 500/s)
    stream_max_len: int = 1_000  # entries kept per task and per account, for Last-Event-ID resumes
    stream_ttl_s: int = 24 * 3600  # how long a task's or account's events stay after its last one
    heartbeat_s: float = 15.0  # a comment this often keeps proxies from closing an idle stream
    reconcile_s: float = 10.0  # a stream idle this long checks the database for what Redis may have lost
    max_stream_s: float = 900.0  # a stream ends after this; EventSource reconnects with Last-Event-ID
    publish_timeout_s: float = 2.0  # a publish that takes longer is dropped (the database has the state)
    queue_max: int = 1_000  # events waiting for a slow client; past this its stream ends (it resumes)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> EventSettings:
        return cls(
            tail_max_len=env_int(env, "EVENTS_TAIL_MAX_LEN", 20_000, minimum=100),
            stream_max_len=env_int(env, "EVENTS_STREAM_MAX_LEN", 1_000, minimum=10),
            stream_ttl_s=env_int(env, "EVENTS_STREAM_TTL_S", 24 * 3600, minimum=60),
            heartbeat_s=env_positive_float(env, "EVENTS_HEARTBEAT_S", 15.0),
            reconcile_s=env_positive_float(env, "EVENTS_RECONCILE_S", 10.0),
            max_stream_s=env_positive_float(env, "EVENTS_MAX_STREAM_S", 900.0),
            publish_timeout_s=env_positive_float(env, "EVENTS_PUBLISH_TIMEOUT_S", 2.0),
            queue_max=env_int(env, "EVENTS_QUEUE_MAX", 1_000, minimum=10),
        )
