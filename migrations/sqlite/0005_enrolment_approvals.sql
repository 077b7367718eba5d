-- Issue #8, part 2: an officer never knows a staff member's password, and nothing opens a queue's
-- mail to someone on one person's word.

-- One-time enrolment codes. Only a keyed MAC of the code is stored (the key lives in the key
-- file, not here). While a code is pending the account has no usable password: `password_hash`
-- holds a hash of a random secret nobody knows, so a login costs the same and always fails.
ALTER TABLE users ADD COLUMN enrolment_mac BLOB;              -- NULL: no code pending
ALTER TABLE users ADD COLUMN enrolment_expires_at INTEGER;    -- unix ms
ALTER TABLE users ADD COLUMN enrolment_issuer TEXT;           -- actor who issued the pending code
-- Who issued the code the current password was set with (NULL: set on the host). Such an
-- account never approves that officer's changes: he may have enrolled it himself.
ALTER TABLE users ADD COLUMN password_issuer TEXT;

-- Changes that give an account access to a queue's mail (or officer powers), held until a
-- second person approves them.
CREATE TABLE access_changes (
    id           INTEGER PRIMARY KEY,
    kind         TEXT NOT NULL,                  -- role.assign | role.grant
    role         TEXT NOT NULL,
    user_id      INTEGER,                        -- role.assign: the account that gains the role
    user_name    TEXT,
    queue        TEXT,                           -- role.grant: a queue or '*'
    permissions  TEXT,                           -- role.grant: comma-separated
    requester_id INTEGER NOT NULL,
    requester    TEXT NOT NULL,                  -- login name
    requested_at INTEGER NOT NULL,
    status       TEXT NOT NULL DEFAULT 'pending', -- pending | approved | rejected
    decided_by   TEXT,                           -- actor (user:NAME or cli:NAME)
    decided_at   INTEGER
);
CREATE INDEX access_changes_status ON access_changes (status, id);
