"""Rate limits of the API: requests per minute and in-flight tasks, per API key and per account.

Which limits apply to a caller comes from its ``Principal`` (cached per API process, invalidated over Redis
pub/sub when a key or account changes): the key's and the account's own values when set, the defaults from
``RateLimitSettings`` otherwise (0 in the settings: no such limit). A session has no key: only the account's
limits apply.

* Requests per minute: a GCRA rate per key and per account (``RPM`` per 60 s, bursts up to ``RPM``).
* In-flight tasks: a slot per submitted task, per key and per account, from the submit until the task ends.

Every request checks all of its limits in one Redis script call (``RateLimiter.admit``), all or nothing, so
the limits hold exactly across any number of API processes. A submit's slots are taken for the new task id
before the task exists; the caller gives them back if the submit does not create the task.

Releasing a slot when a task ends is ``TaskSlots.release`` (called after the terminal transaction commits).
A release can be lost (a process dies between the commit and the call, Redis is unreachable, Redis restarts
empty), so the database — which knows the active tasks — repairs the slots:

* when a submit is refused for want of a slot, the refusing sets are checked against the database at once
  (``TaskSlots.purge_finished``) and the submit is retried once: a lost release never refuses a submit;
* the periodic sweep (``TaskSlots.repair``) adds the slots of active tasks that are missing (after a Redis
  restart) and removes those of tasks that have ended;
* every slot also expires on its own after the longest task lifetime, as a last resort.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
from redis.asyncio import Redis

from shared.accounts.key_cache import publish_invalidation
from shared.accounts.key_management import UNSET, Unset, check_limit_override
from shared.accounts.keys import Principal
from shared.infra.db import Database
from shared.infra.errors import NotFound, RateLimited
from shared.ratelimits.limiter import Admission, Decision, Policy, Rate, RateLimiter, Slot
from shared.ratelimits.task_slots import TaskSlots, slot_key
from shared.settings import RateLimitSettings

log = logging.getLogger(__name__)

PERIOD_S = 60.0
PURGE_INTERVAL_S = 2.0


@dataclass(frozen=True, slots=True)
class Limit:
    """One limit in force for a request, as the headers describe it."""

    name: str  # "key" / "account" requests per minute, "key_tasks" / "account_tasks" in flight
    decision: Decision


@dataclass(frozen=True, slots=True)
class LimitCheck:
    """What a request's limit check found: the limit that refused it, or the one closest to running out."""

    allowed: bool
    binding: Limit | None  # None when no limit applies or Redis could not be asked (failing open)
    concurrency: Limit | None = None  # on submits: the in-flight limit closest to running out
    slot_taken: bool = False


def _rate_key(scope: str, ident: uuid.UUID) -> str:
    return f"rpm:{scope}:{ident}"


def _effective(override: int | None, default: int) -> int | None:
    """A limit in force: the override, else the default; None when there is none (a default of 0)."""
    value = override if override is not None else default
    return value if value > 0 else None


class RequestRate(msgspec.Struct):
    """Requests per minute: the limit, what is left now (null when Redis cannot tell), seconds until fully reset."""

    limit: int
    remaining: int | None
    reset_s: int | None


class InflightTasks(msgspec.Struct):
    limit: int
    in_flight: int


class LimitScope(msgspec.Struct):
    """The limits of the account or of the key (null: no such limit)."""

    requests_per_minute: RequestRate | None
    max_inflight_tasks: InflightTasks | None


class KeyLimitScope(LimitScope):
    id: str


class RateLimits(msgspec.Struct):
    """The limits in force for the caller: its API key's (null with a session) and its account's."""

    object: Literal["rate_limits"]
    key: KeyLimitScope | None
    account: LimitScope
    on_redis_error: str


class RequestLimits:
    def __init__(self, limiter: RateLimiter, settings: RateLimitSettings, *, slot_ttl_s: float) -> None:
        self.limiter = limiter
        self.settings = settings
        self.slot_ttl_s = slot_ttl_s
        self.slots = TaskSlots(limiter)
        self._policies: dict[tuple[Any, ...], Policy] = {}  # prepared script arguments per set of limits
        self._purged: dict[str, float] = {}  # slot set -> when this process last checked it against the database

    def rates_for(self, principal: Principal) -> list[tuple[str, str, int]]:
        """(name, redis key, requests per minute) of every rate in force for the caller."""
        out = []
        if principal.api_key_id is not None:
            rpm = _effective(principal.key_rpm, self.settings.rpm_per_key)
            if rpm:
                out.append(("key", _rate_key("key", principal.api_key_id), rpm))
        rpm = _effective(principal.account_rpm, self.settings.rpm_per_account)
        if rpm:
            out.append(("account", _rate_key("account", principal.account_id), rpm))
        return out

    def slots_for(self, principal: Principal) -> list[tuple[str, Slot]]:
        out = []
        if principal.api_key_id is not None:
            cap = _effective(principal.key_max_inflight, self.settings.inflight_per_key)
            if cap:
                out.append(("key_tasks", Slot(slot_key("key", principal.api_key_id), cap)))
        cap = _effective(principal.account_max_inflight, self.settings.inflight_per_account)
        if cap:
            out.append(("account_tasks", Slot(slot_key("account", principal.account_id), cap)))
        return out

    async def check(
        self, principal: Principal, *, db: Database | None = None, task_id: uuid.UUID | None = None
    ) -> LimitCheck:
        """Count one request; with ``task_id`` (a submit) also take its in-flight slots. Raises ``LimitExceeded``
        (a ``RateLimited``) when a limit refuses, ``ServiceUnavailable`` when Redis is unreachable and the
        limiter fails closed. ``db`` lets a refusal for want of a slot check for lost releases first."""
        rates = self.rates_for(principal)
        slots = self.slots_for(principal) if task_id is not None else []
        if not rates and not slots:
            return LimitCheck(allowed=True, binding=None)
        member = str(task_id) if task_id is not None else ""
        admission = await self._admit(rates, slots, member)
        refused_by_slots = not admission.allowed and self._refused_by_slots(admission)
        if db is not None and refused_by_slots and await self._purge_refusing(db, slots, admission):
            admission = await self._admit(rates, slots, member)  # a lost release was repaired: once more
        result = self._outcome(rates, slots, admission)
        if not result.allowed:
            raise LimitExceeded(result)
        return result

    async def take_task_slots(self, principal: Principal, task_ids: list[uuid.UUID], db: Database) -> bool:
        """A batch submit's in-flight slots: one per task it will create, in the key's and the account's sets, all
        or none (its request was counted against the rates already). Raises ``LimitExceeded``
        (``too_many_concurrent_tasks``) when the sets do not have room for every task. Returns whether slots were
        taken (the caller gives back those of tasks it did not create)."""
        slots = self.slots_for(principal)
        if not slots or not task_ids:
            return False
        members = [str(task_id) for task_id in task_ids]
        sets = [slot for _, slot in slots]
        admission = await self.limiter.admit_many(sets, members, ttl_s=self.slot_ttl_s)
        if not admission.allowed and await self._purge_refusing(db, slots, admission):
            admission = await self.limiter.admit_many(sets, members, ttl_s=self.slot_ttl_s)
        if admission.allowed:
            return not admission.degraded
        refused = LimitExceeded(self._outcome([], slots, admission))
        assert refused.check.binding is not None
        scope = "API key" if refused.check.binding.name == "key_tasks" else "account"
        decision = refused.check.binding.decision
        refused.message = (
            f"these {len(members)} tasks do not fit in this {scope}'s in-flight limit ({decision.limit} tasks queued "
            f"or running; {decision.remaining} free now): wait for some to finish, or submit fewer at once"
        )
        raise refused

    async def _purge_refusing(self, db: Database, slots: list[tuple[str, Slot]], admission: Admission) -> bool:
        """Maybe a release was lost: check the refusing sets against the database (whether that freed a slot). At
        most once per set every PURGE_INTERVAL_S in this process, so hammering at the cap stays cheap."""
        now = time.monotonic()
        refusing = [
            slot.key
            for (_, slot), d in zip(slots, admission.slots, strict=True)
            if not d.allowed and now - self._purged.get(slot.key, -PURGE_INTERVAL_S) >= PURGE_INTERVAL_S
        ]
        if not refusing:
            return False
        if len(self._purged) > 50_000:
            self._purged.clear()
        self._purged.update(dict.fromkeys(refusing, now))
        return bool(await self.slots.purge_finished(db, refusing, swallow_errors=True))

    async def _admit(self, rates: list[tuple[str, str, int]], slots: list[tuple[str, Slot]], member: str) -> Admission:
        cache_key = (tuple(rates), tuple(slots))
        policy = self._policies.get(cache_key)
        if policy is None:
            if len(self._policies) > 50_000:
                self._policies.clear()
            policy = self._policies[cache_key] = self.limiter.policy(
                [(key, Rate(rpm, PERIOD_S)) for _, key, rpm in rates],
                [slot for _, slot in slots],
                ttl_s=self.slot_ttl_s,
            )
        return await self.limiter.admit_policy(policy, member)

    async def describe(self, principal: Principal) -> RateLimits:
        """The limits in force for the caller, with what is left of them now (consumes nothing)."""
        rates = {name: (key, rpm) for name, key, rpm in self.rates_for(principal)}
        slots = dict(self.slots_for(principal))
        now_ms = time.time() * 1000
        redis, prefix = self.limiter.redis, self.limiter.prefix

        async def scope(rate_name: str, slot_name: str) -> dict[str, Any]:
            """The fields of a ``LimitScope``."""
            out: dict[str, Any] = {"requests_per_minute": None, "max_inflight_tasks": None}
            if rate_name in rates:
                key, rpm = rates[rate_name]
                peek = await self.limiter.peek(key, Rate(rpm, PERIOD_S))
                out["requests_per_minute"] = RequestRate(
                    limit=rpm,
                    remaining=None if peek.degraded else peek.remaining,
                    reset_s=None if peek.degraded else math.ceil(peek.reset_after_s),
                )
            if slot_name in slots:
                slot = slots[slot_name]
                in_flight = int(await redis.zcount(prefix + slot.key, now_ms, "+inf"))
                out["max_inflight_tasks"] = InflightTasks(limit=slot.limit, in_flight=in_flight)
            return out

        key_scope = None
        if principal.api_key_id is not None:
            key_scope = KeyLimitScope(**await scope("key", "key_tasks"), id=str(principal.api_key_id))
        return RateLimits(
            object="rate_limits",
            key=key_scope,
            account=LimitScope(**await scope("account", "account_tasks")),
            on_redis_error="open" if self.settings.fail_open else "closed",
        )

    @staticmethod
    def _refused_by_slots(admission: Admission) -> bool:
        return all(d.allowed for d in admission.rates) and not all(d.allowed for d in admission.slots)

    @staticmethod
    def _outcome(rates: list[tuple[str, str, int]], slots: list[tuple[str, Slot]], admission: Admission) -> LimitCheck:
        if admission.degraded:
            return LimitCheck(allowed=True, binding=None)
        rate_limits = [Limit(name, d) for (name, _, _), d in zip(rates, admission.rates, strict=True)]
        slot_limits = [Limit(name, d) for (name, _), d in zip(slots, admission.slots, strict=True)]
        concurrency = min(slot_limits, key=lambda lim: lim.decision.remaining, default=None)
        if not admission.allowed:
            refused = [lim for lim in rate_limits + slot_limits if not lim.decision.allowed]
            # The refusal that lasts longest is the one to report (an unknown wait counts as a second).
            refusing = max(refused, key=lambda lim: _wait(lim.decision))
            return LimitCheck(allowed=False, binding=refusing, concurrency=concurrency)
        binding = min(rate_limits, key=lambda lim: lim.decision.remaining, default=None)
        return LimitCheck(allowed=True, binding=binding, concurrency=concurrency, slot_taken=bool(slots))


def _wait(decision: Decision) -> float:
    return decision.retry_after_s if math.isfinite(decision.retry_after_s) else 1.0


_MESSAGES = {
    "key": "this API key's rate limit ({limit} requests per minute) is reached; slow down",
    "account": "this account's rate limit ({limit} requests per minute) is reached; slow down",
    "key_tasks": "this API key already has {limit} tasks in flight (queued or running); wait for one to finish",
    "account_tasks": "this account already has {limit} tasks in flight (queued or running); wait for one to finish",
}


class LimitExceeded(RateLimited):
    """A request refused by an API rate limit; ``check`` tells which (for the rate-limit headers of the 429)."""

    def __init__(self, check: LimitCheck) -> None:
        assert check.binding is not None
        name, decision = check.binding.name, check.binding.decision
        super().__init__(
            _MESSAGES[name].format(limit=decision.limit),
            retry_after_s=max(1.0, _wait(decision)),
            code="too_many_concurrent_tasks" if name.endswith("_tasks") else "rate_limited",
        )
        self.check = check


async def set_account_limits(
    db: Database,
    redis: Redis,
    account_id: uuid.UUID,
    *,
    rpm: int | Unset | None = UNSET,
    max_inflight: int | Unset | None = UNSET,
) -> dict[str, int | None]:
    """An operator sets (or, with None, removes) an account's own limits; every API process applies them to
    the account's next request."""
    sets: list[str] = []
    args: list[Any] = [account_id]
    for column, value, param in (
        ("rate_limit_rpm", rpm, "rpm"),
        ("max_inflight_tasks", max_inflight, "max_inflight"),
    ):
        if not isinstance(value, Unset):
            args.append(check_limit_override(value, param))
            sets.append(f"{column} = ${len(args)}")
    query = (
        f"UPDATE accounts SET {', '.join(sets) or 'id = id'} WHERE id = $1 RETURNING rate_limit_rpm, max_inflight_tasks"
    )
    row = await db.fetchrow(query, *args)
    if row is None:
        raise NotFound(f"no account {account_id}", code="account_not_found")
    await publish_invalidation(redis, f"account:{account_id}")
    return {"rate_limit_rpm": row["rate_limit_rpm"], "max_inflight_tasks": row["max_inflight_tasks"]}
