-- ledger_place_task_holds(): the holds of many tasks (or requests) of one account, all or nothing: a batch
-- submit's, and the items of one account in a group commit of holds (ledger_place_holds).
--
-- The same rules as ledger_place_hold, applied to the whole lot at once: one conditional UPDATE of the account
-- row for the sum of the holds (so the available balance never goes below zero, and the lot is refused whole
-- when it does not cover them all), one pass over the lots that expire first allocating each hold in turn, and
-- the holds, their allocations and their ledger entries inserted together. Placing them one by one with
-- ledger_place_hold would update the account row once per task in the same transaction (each update walking
-- the chain of the row's versions: quadratic in the number of tasks). Failures raise SQLSTATE CD402 (DETAIL =
-- spendable micro-credits) or CD403 (DETAIL = the account's status), as ledger_place_hold does. The tasks must
-- exist (the caller inserts them first, in the same transaction); a request's hold has no task (NULL).

CREATE OR REPLACE FUNCTION ledger_place_task_holds(
    p_account_id uuid, p_hold_ids uuid[], p_amounts bigint[], p_task_ids uuid[], p_entry_ids uuid[],
    p_descriptions text[]
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_total bigint;
    v_status text;
    v_available bigint;
    v_lot_ids uuid[];
    v_lot_free bigint[];
    v_spendable bigint;
    v_lot integer := 1;
    v_item integer;
    v_needed bigint;
    v_take bigint;
    v_alloc_holds uuid[] := ARRAY[]::uuid[];
    v_alloc_lots uuid[] := ARRAY[]::uuid[];
    v_alloc_amounts bigint[] := ARRAY[]::bigint[];
BEGIN
    IF EXISTS (SELECT 1 FROM unnest(p_amounts) AS a WHERE a < 0) THEN
        RAISE EXCEPTION 'a hold cannot be negative' USING ERRCODE = 'check_violation';
    END IF;
    SELECT COALESCE(sum(a), 0) INTO v_total FROM unnest(p_amounts) AS a;
    UPDATE accounts SET credits_held = credits_held + v_total, updated_at = now()
    WHERE id = p_account_id AND status = 'active' AND credits_total - credits_held >= v_total;
    IF NOT FOUND THEN
        SELECT status, credits_total - credits_held INTO v_status, v_available FROM accounts WHERE id = p_account_id;
        IF v_status IS NULL OR v_status <> 'active' THEN
            RAISE EXCEPTION 'account is not active' USING ERRCODE = 'CD403', DETAIL = COALESCE(v_status, 'deleted');
        END IF;
        RAISE EXCEPTION 'insufficient credits' USING ERRCODE = 'CD402', DETAIL = v_available::text;
    END IF;
    INSERT INTO holds (id, account_id, task_id, amount, status)
    SELECT h.id, p_account_id, h.task_id, h.amount, 'pending'
    FROM unnest(p_hold_ids, p_task_ids, p_amounts) AS h(id, task_id, amount);
    -- The account row is locked now, so these rows cannot change under us; this statement sees them fresh.
    SELECT array_agg(id ORDER BY expires_at ASC NULLS LAST, created_at, id),
           array_agg(remaining - reserved ORDER BY expires_at ASC NULLS LAST, created_at, id)
    INTO v_lot_ids, v_lot_free
    FROM (
        SELECT id, remaining, reserved, expires_at, created_at FROM credit_lots
        WHERE account_id = p_account_id AND closed_at IS NULL AND remaining > reserved
          AND (expires_at IS NULL OR expires_at > now())
        ORDER BY expires_at ASC NULLS LAST, created_at, id
        FOR NO KEY UPDATE
    ) AS free_lots;
    SELECT COALESCE(sum(f), 0) INTO v_spendable FROM unnest(v_lot_free) AS f;
    FOR v_item IN 1 .. COALESCE(cardinality(p_hold_ids), 0) LOOP
        v_needed := p_amounts[v_item];
        WHILE v_needed > 0 LOOP
            IF v_lot > COALESCE(cardinality(v_lot_ids), 0) THEN
                -- Lots that expired but were not swept yet still count in credits_total; they are not spendable.
                RAISE EXCEPTION 'insufficient credits' USING ERRCODE = 'CD402', DETAIL = v_spendable::text;
            END IF;
            v_take := LEAST(v_lot_free[v_lot], v_needed);
            IF v_take > 0 THEN
                v_alloc_holds := v_alloc_holds || p_hold_ids[v_item];
                v_alloc_lots := v_alloc_lots || v_lot_ids[v_lot];
                v_alloc_amounts := v_alloc_amounts || v_take;
                v_lot_free[v_lot] := v_lot_free[v_lot] - v_take;
                v_needed := v_needed - v_take;
            END IF;
            IF v_lot_free[v_lot] = 0 THEN
                v_lot := v_lot + 1;
            END IF;
        END LOOP;
    END LOOP;
    UPDATE credit_lots l SET reserved = l.reserved + a.taken
    FROM (SELECT lot_id, sum(amount) AS taken FROM unnest(v_alloc_lots, v_alloc_amounts) AS x(lot_id, amount)
          GROUP BY lot_id) AS a
    WHERE l.id = a.lot_id;
    INSERT INTO hold_allocations (id, hold_id, lot_id, amount)
    SELECT gen_random_uuid(), x.hold_id, x.lot_id, x.amount
    FROM unnest(v_alloc_holds, v_alloc_lots, v_alloc_amounts) AS x(hold_id, lot_id, amount);
    INSERT INTO ledger_entries
        (id, account_id, kind, amount, delta_total, delta_held, hold_id, task_id, idempotency_key, description)
    SELECT h.entry_id, p_account_id, 'hold', h.amount, 0, h.amount, h.id, h.task_id, 'hold:' || h.id, h.description
    FROM unnest(p_hold_ids, p_task_ids, p_amounts, p_entry_ids, p_descriptions)
        AS h(id, task_id, amount, entry_id, description);
END
$$
