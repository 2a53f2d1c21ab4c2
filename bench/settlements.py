"""Settling a batch of one account's holds: one statement for the batch (``settle_holds``, through
``ledger_resolve_holds``) against one statement per hold in the same transaction (``settle_hold``, through
``ledger_resolve_hold``). Run: ``.venv/bin/python -m bench.settlements``.

For each batch size the two take turns, round after round, on the same account (the request billing's shape: a
hold per request, charged less than held): the wall time per hold of the transaction that settles the batch
(statements and commit), and the updates of the account row and of the lots it made. Then the checks: no pending
hold, the ledger invariants hold. Results: bench/out/settlements.json.

(The tables start empty here, so PostgreSQL may read small ones whole rather than through their indexes, as it
should; ``tests/integration/ledger/test_batch_settlements.py`` checks that a batch reads only its own rows once
the planner knows the tables' sizes.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from typing import Any

from bench.common import BenchEnv, write_result
from shared.accounts.keys import Principal
from shared.accounts.service import create_account
from shared.infra.db import Connection, Database
from shared.ledger import NewHold, place_holds
from shared.ledger.invariants import check_ledger
from shared.ledger.request_holds import request_settlement
from shared.ledger.settlement import Settlement, settle_hold, settle_holds

STATS = """SELECT sum(n_tup_upd) FILTER (WHERE relname = 'accounts') AS account_updates,
                  sum(n_tup_upd) FILTER (WHERE relname = 'credit_lots') AS lot_updates
           FROM pg_stat_xact_user_tables WHERE relname IN ('accounts', 'credit_lots')"""


async def one_by_one(conn: Connection, items: list[Settlement]) -> None:
    for item in items:
        await settle_hold(conn, item)


async def together(conn: Connection, items: list[Settlement]) -> None:
    await settle_holds(conn, items)


MODES = {"one_by_one": one_by_one, "batch": together}


def settlement(principal: Principal, hold_id: uuid.UUID) -> Settlement:
    """A chat request's settlement: charged less than held, with its usage record."""
    return request_settlement(
        hold_id=hold_id, request_id=uuid.uuid4(), principal=principal, charge=1200, status="succeeded",
        source="chat.completion", model="bench", kind="text", provider="bench", units={"tokens": 12}, latency_ms=1,
    )  # fmt: skip


async def settle_round(db: Database, principal: Principal, size: int, mode: str) -> dict[str, float]:
    holds = [NewHold(account_id=principal.account_id, amount=2000, description="bench") for _ in range(size)]
    async with db.transaction() as conn:
        await place_holds(conn, holds)
    items = [settlement(principal, hold.id) for hold in holds]
    started = time.perf_counter()
    async with db.transaction() as conn:
        before = await conn.fetchrow(STATS)
        await MODES[mode](conn, items)
        after = await conn.fetchrow(STATS)
    elapsed = time.perf_counter() - started
    assert before is not None and after is not None
    return {
        "us_per_hold": elapsed / size * 1e6,
        "account_updates": float(after["account_updates"] - before["account_updates"]),
        "lot_updates": float(after["lot_updates"] - before["lot_updates"]),
    }


async def run(env: BenchEnv, sizes: list[int], rounds: int) -> dict[str, Any]:
    db = await Database.connect(env.settings(), min_size=1, max_size=2)
    try:
        created = await create_account(db, email=f"settle-{time.time_ns()}@example.com", credits=10**15)
        key_id = await db.fetchval("SELECT id FROM api_keys WHERE account_id = $1", created.account_id)
        principal = Principal(account_id=created.account_id, api_key_id=key_id, role="user")
        for mode in MODES:  # warm-up: connections, prepared statements, function plans
            await settle_round(db, principal, 4, mode)
        results: dict[str, Any] = {}
        for size in sizes:
            runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
            for _ in range(rounds):
                for mode in MODES:  # taking turns, so that the machine's load changes hit both alike
                    runs[mode].append(await settle_round(db, principal, size, mode))
            median = {mode: {key: round(statistics.median(r[key] for r in rs), 1) for key in rs[0]}
                      for mode, rs in runs.items()}  # fmt: skip
            us = [r["us_per_hold"] for r in runs["batch"]]
            results[str(size)] = {
                **median,
                "batch_us_per_hold_min_max": [round(min(us), 1), round(max(us), 1)],
                "batch_over_one_by_one": round(median["batch"]["us_per_hold"] / median["one_by_one"]["us_per_hold"], 2),
            }
            print(size, json.dumps(results[str(size)]), flush=True)
        pending = await db.fetchval("SELECT count(*) FROM holds WHERE status = 'pending'")
        problems = await check_ledger(db)
        assert pending == 0 and problems == [], (pending, problems)
        return {"sizes": results, "rounds": rounds, "pending_holds": pending, "invariant_problems": len(problems)}
    finally:
        await db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,2,4,8,16,32")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    env = BenchEnv()
    env.start()
    try:
        results = asyncio.run(run(env, [int(size) for size in args.sizes.split(",")], args.rounds))
    finally:
        env.stop()
    path = write_result("settlements", results)
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
