-- ledger_resolve_holds(): post or void many holds in one statement, each account's row updated once
-- (shared.ledger.settlement: the group commits of request settlements and of task completions).
--
-- The same rules as ledger_resolve_hold, applied to the whole batch with a statement per step instead of a
-- statement per step per hold: a compare-and-set of every hold's status (a hold resolved before, or named
-- twice, is resolved once), then, under the accounts' locks, each hold's charge drawn from its lots
-- earliest-expiry first, the rest released, and what is released back to a lot that expired meanwhile expired
-- at once. Each lot and each account is updated once for all its holds of the batch. Resolving the holds one
-- by one with ledger_resolve_hold would update an account's row once per hold in the same transaction (each
-- update walking the chain of the row's versions) and hold its lock across as many statements.
--
-- Items are named by hold id, or (with a NULL hold id) by task id; the arrays run in parallel, one element per
-- item. Every lock is FOR NO KEY UPDATE (only non-key columns change, so inserts that reference these rows do
-- not wait), taken holds (by id) -> accounts (by id) -> lots (by id), each in a fixed order, so concurrent
-- batches cannot deadlock; a lot is only locked with its account's lock held, as ledger_place_hold and
-- ledger_resolve_hold do, so their lot order (earliest expiry first) cannot deadlock with this one either.
--
-- Returns a row per hold resolved now: the item's position in the arrays (1-based) and ledger_resolve_hold's
-- columns. An item whose hold was not pending has no row.

CREATE OR REPLACE FUNCTION ledger_resolve_holds(
    p_hold_ids uuid[], p_task_ids uuid[], p_charges bigint[], p_statuses text[], p_descriptions text[],
    p_charge_entry_ids uuid[], p_release_entry_ids uuid[]
) RETURNS TABLE (
    item integer, hold_id uuid, account_id uuid, task_id uuid, amount bigint, charged bigint, expired bigint
) LANGUAGE plpgsql AS $$
DECLARE
    v_items integer[];
    v_holds uuid[];
    v_accounts uuid[];
    v_tasks uuid[];
    v_amounts bigint[];
    v_charged bigint[];
    v_expired bigint[];
    v_short uuid;
BEGIN
    IF EXISTS (SELECT 1 FROM unnest(p_charges, p_statuses) AS x(charge, status)
               WHERE x.charge < 0 OR x.status NOT IN ('posted', 'voided')) THEN
        RAISE EXCEPTION 'invalid hold resolution' USING ERRCODE = 'check_violation';
    END IF;
    -- The compare-and-set: the holds locked in id order, then those still pending resolved.
    WITH items AS (
        SELECT * FROM unnest(p_hold_ids, p_task_ids, p_statuses, p_charges) WITH ORDINALITY
            AS i(hold_id, task_id, status, charge, item)
    ), wanted AS (
        -- Two joins, each through its index (one on an expression of both would scan every hold).
        SELECT DISTINCT ON (f.id) f.id, f.item, f.status, f.charge
        FROM (
            SELECT h.id, i.item, i.status, i.charge FROM items i JOIN holds h ON h.id = i.hold_id
            UNION ALL
            SELECT h.id, i.item, i.status, i.charge FROM items i JOIN holds h ON h.task_id = i.task_id
            WHERE i.hold_id IS NULL
        ) AS f
        ORDER BY f.id, f.item
    ), picked AS MATERIALIZED (
        SELECT h.id FROM holds h WHERE h.id = ANY (ARRAY(SELECT w.id FROM wanted w)) ORDER BY h.id
        FOR NO KEY UPDATE
    ), done AS (
        UPDATE holds h SET status = w.status, charged = LEAST(w.charge, h.amount), resolved_at = now()
        FROM wanted w
        WHERE h.id = ANY (ARRAY(SELECT p.id FROM picked p)) AND w.id = h.id AND h.status = 'pending'
        RETURNING w.item, h.id, h.account_id, h.task_id, h.amount, h.charged
    )
    SELECT array_agg(d.item ORDER BY d.item), array_agg(d.id ORDER BY d.item),
           array_agg(d.account_id ORDER BY d.item), array_agg(d.task_id ORDER BY d.item),
           array_agg(d.amount ORDER BY d.item), array_agg(d.charged ORDER BY d.item)
    INTO v_items, v_holds, v_accounts, v_tasks, v_amounts, v_charged
    FROM done d;
    IF v_items IS NULL THEN
        RETURN;  -- nothing was pending: a replay changes nothing
    END IF;
    PERFORM 1 FROM accounts a WHERE a.id = ANY (v_accounts) ORDER BY a.id FOR NO KEY UPDATE;
    PERFORM 1 FROM credit_lots l
    WHERE l.id IN (SELECT x.lot_id FROM hold_allocations x WHERE x.hold_id = ANY (v_holds))
    ORDER BY l.id FOR NO KEY UPDATE;
    -- Each allocation's share of its hold's charge (earliest expiry first), and what of it expires now.
    WITH resolved AS (
        SELECT * FROM unnest(v_holds, v_accounts, v_tasks, v_charged) AS r(hold_id, account_id, task_id, charged)
    ), shares AS MATERIALIZED (
        SELECT s.*, CASE WHEN s.lapsed THEN s.amount - s.take ELSE 0 END AS part
        FROM (
            SELECT x.id, x.hold_id, x.lot_id, x.amount, r.account_id, r.task_id,
                   (l.expires_at IS NOT NULL AND l.expires_at <= now()) AS lapsed,
                   LEAST(x.amount, GREATEST(0, r.charged - COALESCE(sum(x.amount) OVER (
                       PARTITION BY x.hold_id ORDER BY l.expires_at ASC NULLS LAST, l.created_at, l.id
                       ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0))) AS take
            FROM resolved r
            JOIN hold_allocations x ON x.hold_id = r.hold_id
            JOIN credit_lots l ON l.id = x.lot_id
        ) AS s
    ), lots AS (
        UPDATE credit_lots l
        SET remaining = l.remaining - per_lot.used, reserved = l.reserved - per_lot.released,
            closed_at = CASE WHEN l.remaining - per_lot.used = 0 THEN now() ELSE l.closed_at END
        FROM (SELECT s.lot_id, sum(s.take + s.part) AS used, sum(s.amount) AS released FROM shares s GROUP BY s.lot_id)
            AS per_lot
        WHERE l.id = per_lot.lot_id
    ), allocations AS (
        UPDATE hold_allocations x SET charged = s.take FROM shares s WHERE x.id = s.id AND s.take > 0
    ), expiries AS (
        -- Released back to a lot that expired while on hold: it expires now.
        INSERT INTO ledger_entries
            (id, account_id, kind, amount, delta_total, delta_held, lot_id, hold_id, task_id, idempotency_key, description)
        SELECT conduit_uuid7(), s.account_id, 'expire', s.part, -s.part, 0, s.lot_id, s.hold_id, s.task_id,
               'expire:' || s.lot_id || ':' || s.hold_id, 'expired while on hold'
        FROM shares s WHERE s.part > 0
    ), per_hold AS (
        SELECT r.hold_id, r.charged, COALESCE(sum(s.take), 0) AS taken, COALESCE(sum(s.part), 0) AS expired
        FROM resolved r LEFT JOIN shares s ON s.hold_id = r.hold_id
        GROUP BY r.hold_id, r.charged
    )
    SELECT array_agg(COALESCE(p.expired, 0) ORDER BY r.n),
           (array_agg(p.hold_id) FILTER (WHERE p.taken <> p.charged))[1]
    INTO v_expired, v_short
    FROM unnest(v_holds) WITH ORDINALITY AS r(hold_id, n) JOIN per_hold p ON p.hold_id = r.hold_id;
    IF v_short IS NOT NULL THEN
        RAISE EXCEPTION 'hold % allocations do not cover its charge', v_short;
    END IF;
    UPDATE accounts a
    SET credits_total = a.credits_total - per_account.charged - per_account.expired,
        credits_held = a.credits_held - per_account.amount, updated_at = now()
    FROM (
        SELECT r.account_id, sum(r.charged) AS charged, sum(r.expired) AS expired, sum(r.amount) AS amount
        FROM unnest(v_accounts, v_charged, v_expired, v_amounts) AS r(account_id, charged, expired, amount)
        GROUP BY r.account_id
    ) AS per_account
    WHERE a.id = per_account.account_id;
    INSERT INTO ledger_entries
        (id, account_id, kind, amount, delta_total, delta_held, hold_id, task_id, idempotency_key, description)
    SELECT e.id, e.account_id, e.kind, e.amount, e.delta_total, e.delta_held, e.hold_id, e.task_id,
           e.kind || ':' || e.hold_id, e.description
    FROM (
        SELECT r.n, 1 AS step, p_charge_entry_ids[r.item] AS id, r.account_id, 'charge' AS kind, r.charged AS amount,
               -r.charged AS delta_total, -r.charged AS delta_held, r.hold_id, r.task_id,
               p_descriptions[r.item] AS description
        FROM unnest(v_items, v_holds, v_accounts, v_tasks, v_charged) WITH ORDINALITY
            AS r(item, hold_id, account_id, task_id, charged, n)
        WHERE r.charged > 0
        UNION ALL
        SELECT r.n, 2, p_release_entry_ids[r.item], r.account_id,
               CASE WHEN p_statuses[r.item] = 'voided' THEN 'void' ELSE 'release' END, r.amount - r.charged, 0,
               -(r.amount - r.charged), r.hold_id, r.task_id, p_descriptions[r.item]
        FROM unnest(v_items, v_holds, v_accounts, v_tasks, v_amounts, v_charged) WITH ORDINALITY
            AS r(item, hold_id, account_id, task_id, amount, charged, n)
        WHERE r.amount > r.charged
    ) AS e
    ORDER BY e.n, e.step;
    RETURN QUERY
    SELECT r.item, r.hold_id, r.account_id, r.task_id, r.amount, r.charged, r.expired
    FROM unnest(v_items, v_holds, v_accounts, v_tasks, v_amounts, v_charged, v_expired)
        AS r(item, hold_id, account_id, task_id, amount, charged, expired);
END
$$
