-- Issue #12, two-factor login. A user's TOTP secret (RFC 6238), sealed like customer data: a
-- data key of its own wrapped by the master key, the secret sealed under it with the row's uid
-- as associated data. No row: password only.
CREATE TABLE user_totp (
    user_id      INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    uid          BLOB NOT NULL,
    key_id       INTEGER NOT NULL,
    wrapped_key  BLOB NOT NULL,
    secret       BLOB NOT NULL,
    created_at   INTEGER NOT NULL,             -- unix ms
    confirmed_at INTEGER,                      -- NULL: enrolment started, not yet confirmed
    last_step    INTEGER NOT NULL DEFAULT 0    -- the last time step accepted: no code twice
);

-- One-time recovery codes, keyed hashes only (see src/store/two_factor.rs).
CREATE TABLE user_recovery_codes (
    user_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash BLOB NOT NULL,
    used_at   INTEGER,                         -- unix ms; NULL: still unused
    PRIMARY KEY (user_id, code_hash)
);

-- Per-device passwords for IMAP, for users whose web and API logins take a second factor.
CREATE TABLE app_passwords (
    id            INTEGER PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device        TEXT NOT NULL,
    password_hash TEXT NOT NULL,               -- argon2id PHC string, like users.password_hash
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER,
    UNIQUE (user_id, device)
);
