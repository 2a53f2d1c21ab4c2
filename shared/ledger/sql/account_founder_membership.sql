-- account_founder_membership(): the trigger that makes every new account's founder its owner (an account is an
-- organisation of members, see shared/teams/). It runs after each INSERT INTO accounts, whichever path creates
-- the account (sign-up, OAuth, the command line, an accepted invitation).

CREATE OR REPLACE FUNCTION account_founder_membership() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO account_members (id, account_id, person_id, role) VALUES (conduit_uuid7(), NEW.id, NEW.id, 'owner')
    ON CONFLICT (account_id, person_id) DO NOTHING;
    RETURN NULL;
END
$$
