-- ledger_resolve_hold(): post or void a hold in one round trip (shared.ledger.settlement).
--
-- The counterpart of ledger_place_hold, for every settlement (a task's end, a request's, post_hold and
-- void_hold): a compare-and-set of the hold's status (so a replay resolves nothing), then, under the account
-- lock, the charge drawn from the hold's lots earliest-expiry first, the rest released, and what is released
-- back to a lot that expired meanwhile expired at once. The charge and release entries take ids the caller
-- generated (time-ordered, so the ledger lists them in order); the rare expiry entries get one here
-- (conduit_uuid7).
--
-- The account row and the lots are locked FOR NO KEY UPDATE: only their non-key columns change, so the
-- FOR KEY SHARE locks that inserts referencing them take (holds, allocations, ledger entries, usage records,
-- tasks of other requests of the account) do not wait for this settlement's commit.
--
-- Returns one row (hold_id, account_id, task_id, amount, charged, expired) or none when the hold was not
-- pending.

CREATE OR REPLACE FUNCTION ledger_resolve_hold(
    p_hold_id uuid, p_task_id uuid, p_charge bigint, p_status text, p_description text,
    p_charge_entry_id uuid, p_release_entry_id uuid
) RETURNS TABLE (hold_id uuid, account_id uuid, task_id uuid, amount bigint, charged bigint, expired bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_hold record;
    v_alloc record;
    v_left bigint;
    v_take bigint;
    v_part bigint;
    v_expired bigint := 0;
    v_kind text := CASE WHEN p_status = 'voided' THEN 'void' ELSE 'release' END;
BEGIN
    IF p_charge < 0 OR p_status NOT IN ('posted', 'voided') THEN
        RAISE EXCEPTION 'invalid hold resolution' USING ERRCODE = 'check_violation';
    END IF;
    IF p_hold_id IS NOT NULL THEN
        UPDATE holds h SET status = p_status, charged = LEAST(p_charge, h.amount), resolved_at = now()
        WHERE h.id = p_hold_id AND h.status = 'pending'
        RETURNING h.id, h.account_id, h.task_id, h.amount, h.charged INTO v_hold;
    ELSE
        UPDATE holds h SET status = p_status, charged = LEAST(p_charge, h.amount), resolved_at = now()
        WHERE h.task_id = p_task_id AND h.status = 'pending'
        RETURNING h.id, h.account_id, h.task_id, h.amount, h.charged INTO v_hold;
    END IF;
    IF NOT FOUND THEN
        RETURN;  -- resolved before: a replay changes nothing
    END IF;
    PERFORM 1 FROM accounts a WHERE a.id = v_hold.account_id FOR NO KEY UPDATE;
    v_left := v_hold.charged;
    FOR v_alloc IN
        SELECT a.id, a.lot_id, a.amount, (l.expires_at IS NOT NULL AND l.expires_at <= now()) AS lapsed
        FROM hold_allocations a JOIN credit_lots l ON l.id = a.lot_id
        WHERE a.hold_id = v_hold.id
        ORDER BY l.expires_at ASC NULLS LAST, l.created_at, l.id
        FOR NO KEY UPDATE OF l
    LOOP
        v_take := LEAST(v_alloc.amount, v_left);
        v_left := v_left - v_take;
        v_part := CASE WHEN v_alloc.lapsed THEN v_alloc.amount - v_take ELSE 0 END;
        UPDATE credit_lots l
        SET remaining = l.remaining - v_take - v_part, reserved = l.reserved - v_alloc.amount,
            closed_at = CASE WHEN l.remaining - v_take - v_part = 0 THEN now() ELSE l.closed_at END
        WHERE l.id = v_alloc.lot_id;
        IF v_take > 0 THEN
            UPDATE hold_allocations SET charged = v_take WHERE id = v_alloc.id;
        END IF;
        IF v_part > 0 THEN
            -- Released back to a lot that expired while on hold: it expires now.
            INSERT INTO ledger_entries
                (id, account_id, kind, amount, delta_total, delta_held, lot_id, hold_id, task_id, idempotency_key, description)
            VALUES (conduit_uuid7(), v_hold.account_id, 'expire', v_part, -v_part, 0, v_alloc.lot_id, v_hold.id,
                    v_hold.task_id, 'expire:' || v_alloc.lot_id || ':' || v_hold.id, 'expired while on hold');
            v_expired := v_expired + v_part;
        END IF;
    END LOOP;
    IF v_left <> 0 THEN
        RAISE EXCEPTION 'hold % allocations do not cover its charge', v_hold.id;
    END IF;
    UPDATE accounts a
    SET credits_total = a.credits_total - v_hold.charged - v_expired, credits_held = a.credits_held - v_hold.amount,
        updated_at = now()
    WHERE a.id = v_hold.account_id;
    IF v_hold.charged > 0 THEN
        INSERT INTO ledger_entries
            (id, account_id, kind, amount, delta_total, delta_held, hold_id, task_id, idempotency_key, description)
        VALUES (p_charge_entry_id, v_hold.account_id, 'charge', v_hold.charged, -v_hold.charged, -v_hold.charged,
                v_hold.id, v_hold.task_id, 'charge:' || v_hold.id, p_description);
    END IF;
    IF v_hold.amount > v_hold.charged THEN
        INSERT INTO ledger_entries
            (id, account_id, kind, amount, delta_total, delta_held, hold_id, task_id, idempotency_key, description)
        VALUES (p_release_entry_id, v_hold.account_id, v_kind, v_hold.amount - v_hold.charged, 0,
                -(v_hold.amount - v_hold.charged), v_hold.id, v_hold.task_id, v_kind || ':' || v_hold.id, p_description);
    END IF;
    RETURN QUERY SELECT v_hold.id, v_hold.account_id, v_hold.task_id, v_hold.amount, v_hold.charged, v_expired;
END
$$
