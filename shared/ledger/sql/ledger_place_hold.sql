-- ledger_place_hold(): set credits aside for a hold in one round trip (shared.ledger.holds).
--
-- Every submit and every request places its hold with it, so it runs inside PostgreSQL: the conditional
-- UPDATE of the account row (which waits for and re-checks any concurrent hold), the allocation from the lots
-- that expire first, the hold, its allocations and its ledger entry, as one statement. Failures raise
-- SQLSTATE CD402 (insufficient credits; DETAIL = spendable micro-credits) or CD403 (account not active;
-- DETAIL = its status), which shared.ledger.holds turns into domain errors.
--
-- The account's open lots (closed_at IS NULL: a lot is closed exactly when nothing remains in it, a ledger
-- invariant) are found through their partial index, credit_lots_spendable, whatever the number of lots. Its
-- predicate names closed_at, not remaining, so the updates of remaining and reserved stay HOT.

CREATE OR REPLACE FUNCTION ledger_place_hold(
    p_hold_id uuid, p_account_id uuid, p_amount bigint, p_task_id uuid, p_entry_id uuid, p_description text
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_needed bigint := p_amount;
    v_take bigint;
    v_lot record;
    v_status text;
    v_available bigint;
BEGIN
    IF p_amount < 0 THEN
        RAISE EXCEPTION 'a hold cannot be negative' USING ERRCODE = 'check_violation';
    END IF;
    UPDATE accounts SET credits_held = credits_held + p_amount, updated_at = now()
    WHERE id = p_account_id AND status = 'active' AND credits_total - credits_held >= p_amount;
    IF NOT FOUND THEN
        SELECT status, credits_total - credits_held INTO v_status, v_available FROM accounts WHERE id = p_account_id;
        IF v_status IS NULL OR v_status <> 'active' THEN
            RAISE EXCEPTION 'account is not active' USING ERRCODE = 'CD403', DETAIL = COALESCE(v_status, 'deleted');
        END IF;
        RAISE EXCEPTION 'insufficient credits' USING ERRCODE = 'CD402', DETAIL = v_available::text;
    END IF;
    INSERT INTO holds (id, account_id, task_id, amount, status) VALUES (p_hold_id, p_account_id, p_task_id, p_amount, 'pending');
    IF p_amount > 0 THEN
        -- The account row is locked now, so these rows cannot change under us; this statement sees them fresh.
        FOR v_lot IN
            SELECT id, remaining - reserved AS free FROM credit_lots
            WHERE account_id = p_account_id AND closed_at IS NULL AND remaining > reserved
              AND (expires_at IS NULL OR expires_at > now())
            ORDER BY expires_at ASC NULLS LAST, created_at, id
            FOR NO KEY UPDATE
        LOOP
            v_take := LEAST(v_lot.free, v_needed);
            UPDATE credit_lots SET reserved = reserved + v_take WHERE id = v_lot.id;
            INSERT INTO hold_allocations (id, hold_id, lot_id, amount) VALUES (gen_random_uuid(), p_hold_id, v_lot.id, v_take);
            v_needed := v_needed - v_take;
            EXIT WHEN v_needed = 0;
        END LOOP;
        IF v_needed > 0 THEN
            -- Lots that expired but were not swept yet still count in credits_total; they are not spendable.
            RAISE EXCEPTION 'insufficient credits' USING ERRCODE = 'CD402', DETAIL = (p_amount - v_needed)::text;
        END IF;
    END IF;
    INSERT INTO ledger_entries
        (id, account_id, kind, amount, delta_total, delta_held, hold_id, task_id, idempotency_key, description)
    VALUES (p_entry_id, p_account_id, 'hold', p_amount, 0, p_amount, p_hold_id, p_task_id, 'hold:' || p_hold_id, p_description);
END
$$
