-- mailroom schema v1 for PostgreSQL: as migrations/sqlite/0001_init.sql, with SQLite's INTEGER as
-- BIGINT (PostgreSQL's INTEGER is 32-bit) and BLOB as BYTEA. Customer data appears only as
-- ciphertext (*_ct) or keyed blind indexes (*_idx).

-- PostgreSQL only: the one row every write transaction locks first
-- (`SELECT id FROM sequencer WHERE id = 1 FOR UPDATE`), PostgreSQL's `BEGIN IMMEDIATE`: one writer
-- at a time across all nodes, so registration numbers, message ids (IMAP UIDs) and the audit chain
-- follow commit order, and no two writers deadlock. `node` and `at` name the last holder.
CREATE TABLE sequencer (
    id   BIGINT PRIMARY KEY CHECK (id = 1),
    node TEXT,
    at   BIGINT                                -- unix milliseconds
);
INSERT INTO sequencer (id) VALUES (1);

-- Gap-free registration sequences: one row per counter year (0 when the format has no year),
-- incremented in the transaction that stores the messages.
CREATE TABLE reg_counters (
    year     BIGINT PRIMARY KEY,
    last_seq BIGINT NOT NULL
);

-- Id allocation for cases and messages (UPDATE … RETURNING under the sequencer lock).
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('message', 0), ('case', 0);

-- Ids from counters.case.
CREATE TABLE cases (
    id             BIGINT PRIMARY KEY,
    opening_number TEXT NOT NULL,
    queue          TEXT NOT NULL,
    status         TEXT NOT NULL DEFAULT 'new',
    opened_at      BIGINT NOT NULL,           -- unix milliseconds
    updated_at     BIGINT NOT NULL
);
CREATE INDEX cases_queue_status ON cases (queue, status, opened_at);

-- Ids from counters.message. Columns as in migrations/sqlite/0001_init.sql.
CREATE TABLE messages (
    id              BIGINT PRIMARY KEY,
    uid             BYTEA NOT NULL,            -- row identity, AAD of every ciphertext
    number          TEXT NOT NULL,             -- registration number as issued
    reg_year        BIGINT NOT NULL,
    reg_seq         BIGINT NOT NULL,
    received_at     BIGINT NOT NULL,           -- unix milliseconds, SMTP acceptance
    size            BIGINT NOT NULL,           -- octets as received
    protocol        TEXT NOT NULL,             -- smtp | lmtp
    tls             TEXT,                      -- NULL in clear
    parsed          BIGINT NOT NULL,           -- 0/1: the MIME parser could read it
    case_id         BIGINT NOT NULL REFERENCES cases (id),
    key_id          BIGINT NOT NULL,           -- master key version that wraps the data key
    wrapped_key     BYTEA NOT NULL,
    trace_ct        BYTEA NOT NULL,            -- our Received: header
    fields_ct       BYTEA NOT NULL,            -- extracted record (JSON)
    sender_idx      BYTEA,
    msgid_idx       BYTEA,
    dedupe_idx      BYTEA NOT NULL,            -- retry fingerprint
    duplicate_count BIGINT NOT NULL DEFAULT 0,
    UNIQUE (reg_year, reg_seq)
);
-- Only the indexes that are needed (see migrations/sqlite/0001_init.sql).
CREATE INDEX messages_dedupe ON messages (dedupe_idx) WHERE msgid_idx IS NULL;
CREATE INDEX messages_sender ON messages (sender_idx);
CREATE INDEX messages_msgid ON messages (msgid_idx);
CREATE INDEX messages_case ON messages (case_id);

-- The raw message apart from the row metadata.
CREATE TABLE message_blobs (
    message_id BIGINT PRIMARY KEY REFERENCES messages (id),
    raw_ct     BYTEA NOT NULL
);

-- Append-only, hash-chained. `mailroom audit verify` requires ids 1, 2, 3 … without a gap, which
-- a sequence (or identity) cannot promise: it skips values on rollback and after a crash. So the
-- id is MAX(id) + 1, set by the trigger below when an INSERT names no id (as SQLite does for a
-- rowid): consecutive under the sequencer lock, and a duplicate key (never a gap) without it.
CREATE TABLE audit (
    id        BIGINT PRIMARY KEY,
    at        BIGINT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    object    TEXT,
    detail    TEXT,
    prev_hash BYTEA NOT NULL,
    hash      BYTEA NOT NULL
);
-- A row-level BEFORE trigger sees the rows that earlier rows of the same INSERT wrote, so a
-- multi-row INSERT numbers its rows consecutively too.
CREATE FUNCTION audit_next_id() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id IS NULL THEN
        SELECT COALESCE(MAX(id), 0) + 1 INTO NEW.id FROM audit;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER audit_next_id BEFORE INSERT ON audit FOR EACH ROW EXECUTE FUNCTION audit_next_id();
