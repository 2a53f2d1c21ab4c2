-- ledger_place_holds(): the holds of many synchronous requests in one round trip (a group commit).
--
-- The API gathers the holds of concurrent chat completions (shared.ledger.request_holds) and places them with
-- one statement (shared.ledger.holds.place_holds). Each item is placed by ledger_place_hold, so the rules are
-- exactly the same; but a refusal (CD402 insufficient credits, CD403 account not active) is an outcome of that
-- item, caught in its own subtransaction, not an error of the batch: one request without credits does not
-- fail the others. Any other error fails the whole batch (nothing of it is kept; the caller then places the
-- holds one by one).
--
-- A subtransaction per item is bounded: at most 64 items per call, the size of PostgreSQL's per-backend cache
-- of subtransaction ids (the API sends at most 32). The alternative, checking the account row under its lock
-- before calling ledger_place_hold, measured the same backend CPU per item (~350 us either way on the
-- development machine) and would copy the refusal rules, so this one reuses them.
--
-- Items are placed in account order, so concurrent batches (several API processes) take the account locks in
-- the same order and cannot deadlock on them. Returns one row per item: its position in the arrays (1-based);
-- 'placed', 'insufficient' (detail: the spendable micro-credits) or 'inactive' (detail: the account's status,
-- 'deleted' when it is gone).

CREATE OR REPLACE FUNCTION ledger_place_holds(
    p_hold_ids uuid[], p_account_ids uuid[], p_amounts bigint[], p_entry_ids uuid[], p_descriptions text[]
) RETURNS TABLE (item integer, outcome text, detail text) LANGUAGE plpgsql AS $$
DECLARE
    v_item record;
BEGIN
    IF cardinality(p_hold_ids) > 64 THEN
        RAISE EXCEPTION 'at most 64 holds per batch' USING ERRCODE = 'program_limit_exceeded';
    END IF;
    FOR v_item IN
        SELECT i.n::integer AS n, i.hold_id, i.account_id, i.amount, i.entry_id, i.description
        FROM unnest(p_hold_ids, p_account_ids, p_amounts, p_entry_ids, p_descriptions) WITH ORDINALITY
             AS i(hold_id, account_id, amount, entry_id, description, n)
        ORDER BY i.account_id, i.n
    LOOP
        item := v_item.n;
        detail := NULL;
        BEGIN
            PERFORM ledger_place_hold(v_item.hold_id, v_item.account_id, v_item.amount, NULL, v_item.entry_id,
                                      v_item.description);
            outcome := 'placed';
        EXCEPTION
            WHEN SQLSTATE 'CD402' THEN
                GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
                outcome := 'insufficient';
            WHEN SQLSTATE 'CD403' THEN
                GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
                outcome := 'inactive';
        END;
        RETURN NEXT;
    END LOOP;
END
$$
