-- conduit_uuid7(): a time-ordered id made inside PostgreSQL, for the ledger entries that
-- ledger_resolve_hold writes without an id from the caller (lots that expired while on hold).

CREATE OR REPLACE FUNCTION conduit_uuid7() RETURNS uuid LANGUAGE sql VOLATILE AS $$
    -- A version 7 UUID: 48-bit Unix milliseconds, then random bits (gen_random_uuid's, version bits set to 7).
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::uuid
$$
