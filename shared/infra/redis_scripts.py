"""Lua scripts run by their SHA1 (``EVALSHA``), many calls in one pipelined round trip.

Sending a script's hash instead of its source saves Redis hashing the source and the client sending it on every
call. A Redis that restarted (or whose script cache was flushed) answers ``NOSCRIPT``: the scripts those calls
named are loaded and only those calls run again, so a call that did run is never repeated."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

Arg = str | bytes | int | float


@dataclass(frozen=True, slots=True)
class LuaScript:
    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


@dataclass(frozen=True, slots=True)
class ScriptCall:
    script: LuaScript
    keys: Sequence[str | bytes]
    args: Sequence[Arg]


async def run_scripts(redis: Redis, calls: Sequence[ScriptCall]) -> list[Any]:
    """Run ``calls`` in one pipeline (not a transaction). Answers each call in order: its result, or the exception
    Redis answered it with. Errors of the connection itself propagate."""
    results: list[Any] = [None] * len(calls)
    todo = list(range(len(calls)))
    for attempt in range(2):
        async with redis.pipeline(transaction=False) as pipe:
            for n in todo:
                call = calls[n]
                pipe.execute_command("EVALSHA", call.script.sha, len(call.keys), *call.keys, *call.args)
            answers: list[Any] = await pipe.execute(raise_on_error=False) if todo else []
        missing = []
        for n, answer in zip(todo, answers, strict=True):
            results[n] = answer
            if isinstance(answer, NoScriptError):
                missing.append(n)
        if not missing or attempt:
            break
        for script in {calls[n].script for n in missing}:
            await redis.script_load(script.source)  # the script cache is empty (Redis restarted)
        todo = missing
    return results
