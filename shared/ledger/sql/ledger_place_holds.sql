-- ledger_place_holds(): the holds of many concurrent requests or task submits in one round trip (a group commit).
--
-- The API gathers the holds of concurrent chat completions (shared.ledger.request_holds) and of concurrent task
-- submits (shared.tasks.creation) and places them with one statement (shared.ledger.holds.place_holds). The
-- rules are exactly those of placing them one after the other, in order, with ledger_place_hold; but a refusal
-- (CD402 insufficient credits, CD403 account not active) is an outcome of that item, not an error of the batch:
-- one request without credits does not fail the others. Any other error fails the whole batch (nothing of it is
-- kept; the caller then places the holds one by one). A task's row must exist (the caller inserts it first, in
-- the same transaction).
--
-- The items of one account are placed together first, by ledger_place_task_holds: one update of the account
-- row and of each lot for all of them, instead of one per item (one busy account's requests all queue on its
-- row, so that is the row to touch least). When the account's balance does not cover them all, that attempt
-- is rolled back (its own subtransaction) and the account's items are placed one by one, each in its own
-- subtransaction, so that exactly those that the balance covers, in order, are placed.
--
-- Subtransactions are bounded: at most 64 items per call, the size of PostgreSQL's per-backend cache of
-- subtransaction ids (the API sends at most 32). Accounts are taken in order of their ids, so concurrent batches
-- (several API processes) take the account locks in the same order and cannot deadlock on them. Returns one row
-- per item: its position in the arrays (1-based); 'placed', 'insufficient' (detail: the spendable
-- micro-credits) or 'inactive' (detail: the account's status, 'deleted' when it is gone).

CREATE OR REPLACE FUNCTION ledger_place_holds(
    p_hold_ids uuid[], p_account_ids uuid[], p_amounts bigint[], p_task_ids uuid[], p_entry_ids uuid[],
    p_descriptions text[]
) RETURNS TABLE (item integer, outcome text, detail text) LANGUAGE plpgsql AS $$
DECLARE
    v_account uuid;
    v_items integer[];
    v_n integer;
BEGIN
    IF cardinality(p_hold_ids) > 64 THEN
        RAISE EXCEPTION 'at most 64 holds per batch' USING ERRCODE = 'program_limit_exceeded';
    END IF;
    FOR v_account, v_items IN
        SELECT i.account_id, array_agg(i.n::integer ORDER BY i.n)
        FROM unnest(p_account_ids) WITH ORDINALITY AS i(account_id, n)
        GROUP BY i.account_id ORDER BY i.account_id
    LOOP
        IF cardinality(v_items) > 1 THEN
            BEGIN
                PERFORM ledger_place_task_holds(
                    v_account,
                    ARRAY(SELECT p_hold_ids[n] FROM unnest(v_items) AS n),
                    ARRAY(SELECT p_amounts[n] FROM unnest(v_items) AS n),
                    ARRAY(SELECT p_task_ids[n] FROM unnest(v_items) AS n),
                    ARRAY(SELECT p_entry_ids[n] FROM unnest(v_items) AS n),
                    ARRAY(SELECT p_descriptions[n] FROM unnest(v_items) AS n)
                );
                FOREACH v_n IN ARRAY v_items LOOP
                    item := v_n;
                    outcome := 'placed';
                    detail := NULL;
                    RETURN NEXT;
                END LOOP;
                CONTINUE;
            EXCEPTION
                WHEN SQLSTATE 'CD402' OR SQLSTATE 'CD403' THEN
                    NULL;  -- not all of them: one by one below
            END;
        END IF;
        FOREACH v_n IN ARRAY v_items LOOP
            item := v_n;
            detail := NULL;
            BEGIN
                PERFORM ledger_place_hold(p_hold_ids[v_n], v_account, p_amounts[v_n], p_task_ids[v_n],
                                          p_entry_ids[v_n], p_descriptions[v_n]);
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
    END LOOP;
END
$$
