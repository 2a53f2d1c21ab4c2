-- staff_audit_log_append_only(): the trigger that keeps the staff audit log append-only. It refuses every
-- UPDATE, DELETE and TRUNCATE of staff_audit_log, whoever sends them (see shared/staff/audit.py).

CREATE OR REPLACE FUNCTION staff_audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the staff audit log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$
