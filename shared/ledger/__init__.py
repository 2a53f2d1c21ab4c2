"""The credit ledger: every movement of credits, in this package.

Credits live in lots (one per grant, each with its own expiry); a hold sets some aside before the work it pays
for and is then settled (charged, the rest released) or voided; every movement writes a ledger entry with a
unique idempotency key, so a replay changes nothing. Each function takes a connection (or a pool, for a
statement that is a transaction on its own), so callers compose a movement with the state change it belongs
to (a task's status, an order's payment) atomically.

* ``lots``: grants, the balance, the expiry of lots;
* ``holds``: placing holds (``ledger_place_hold``), alone, inside a caller's statement or many at once (a
  batch of requests, a batch submit's tasks);
* ``settlement``: resolving holds (``ledger_resolve_hold``) with the key's spend and the usage record, for
  requests, tasks and ``post_hold`` / ``void_hold``;
* ``spend_caps``: an API key's spend cap, reserved when a hold is placed and settled with it;
* ``take_back``: refunds and revocations of a lot's unused credits, and their restoration;
* ``request_holds``: the holds and settlements of synchronous requests, group-committed under load;
* ``invariants``: the checks that must always hold (``conduit ledger check``; every test runs them);
* ``money``: micro-credits, parsing and display;
* ``functions``: the PL/pgSQL functions, whose code is ``sql/*.sql`` (the migrations load these files).

Rules that keep this correct under concurrency:
* Locks are always taken in the order hold -> account -> lots -> API key, so no two transactions deadlock.
* "available >= 0" is enforced by PostgreSQL: a hold is placed by a conditional UPDATE on the account row
  (re-checked after any lock wait) and backed by CHECK constraints on accounts and lots.
* The hot paths (a task's submit and settlement, a request's hold and settlement) are one statement each.
"""

from shared.ledger.holds import NewHold, fetchrow_with_hold, hold_call_sql, place_hold, place_holds, place_task_holds
from shared.ledger.lots import LOT_SOURCES, Balance, expire_lots, get_balance, grant, granted_lot, upcoming_expiries
from shared.ledger.request_holds import (
    place_request_hold,
    record_refused_request,
    request_settlement,
    settle_request,
    void_abandoned_request_holds,
)
from shared.ledger.settlement import (
    HoldResolution,
    Settlement,
    post_hold,
    settle_hold,
    settle_holds,
    succeeded_task_settlement_ids,
    succeeded_tasks_settlement_sql,
    task_settlement_params,
    task_settlement_sql,
    void_hold,
)
from shared.ledger.spend_caps import drop_member_reservations, needs_spend_reservation, reserve_key_spend
from shared.ledger.take_back import (
    TAKE_BACK_KINDS,
    deduct_unused,
    lot_unused,
    restore_to_lot,
    take_back,
    unused_credits_sql,
)

__all__ = [
    "LOT_SOURCES",
    "TAKE_BACK_KINDS",
    "Balance",
    "HoldResolution",
    "NewHold",
    "Settlement",
    "deduct_unused",
    "drop_member_reservations",
    "expire_lots",
    "fetchrow_with_hold",
    "get_balance",
    "grant",
    "granted_lot",
    "hold_call_sql",
    "lot_unused",
    "needs_spend_reservation",
    "place_hold",
    "place_holds",
    "place_request_hold",
    "place_task_holds",
    "post_hold",
    "record_refused_request",
    "request_settlement",
    "reserve_key_spend",
    "restore_to_lot",
    "settle_hold",
    "settle_holds",
    "settle_request",
    "succeeded_task_settlement_ids",
    "succeeded_tasks_settlement_sql",
    "take_back",
    "task_settlement_params",
    "task_settlement_sql",
    "unused_credits_sql",
    "upcoming_expiries",
    "void_abandoned_request_holds",
    "void_hold",
]
