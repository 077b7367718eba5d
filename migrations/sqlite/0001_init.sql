-- mailroom schema v1. Customer data appears only as ciphertext (*_ct) or keyed blind indexes
-- (*_idx); registration numbers, sizes, times and queue names are operational data in clear.

-- Gap-free registration sequences: one row per counter year (0 when the format has no year).
-- Incremented inside the same transaction that stores the messages, so a rollback frees nothing
-- and a commit consumes exactly the numbers it stored.
CREATE TABLE reg_counters (
    year     INTEGER PRIMARY KEY,
    last_seq INTEGER NOT NULL
);

-- Id allocation that works the same on SQLite and PostgreSQL (UPDATE … RETURNING under the
-- transaction's row lock), so batches can insert many rows with known ids in one statement.
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO counters (name, value) VALUES ('message', 0), ('case', 0);

CREATE TABLE cases (
    id             INTEGER PRIMARY KEY,
    opening_number TEXT NOT NULL,
    queue          TEXT NOT NULL,
    status         TEXT NOT NULL DEFAULT 'new',
    opened_at      INTEGER NOT NULL,          -- unix milliseconds
    updated_at     INTEGER NOT NULL
);
CREATE INDEX cases_queue_status ON cases (queue, status, opened_at);

CREATE TABLE messages (
    id              INTEGER PRIMARY KEY,
    uid             BLOB NOT NULL,             -- row identity, bound into every ciphertext as AAD
                                               -- (unique by construction: time + 64 random bits)
    number          TEXT NOT NULL,             -- registration number as issued (unique through reg_year, reg_seq)
    reg_year        INTEGER NOT NULL,
    reg_seq         INTEGER NOT NULL,
    received_at     INTEGER NOT NULL,          -- unix milliseconds, SMTP acceptance
    size            INTEGER NOT NULL,          -- octets as received
    protocol        TEXT NOT NULL,             -- smtp | lmtp
    tls             TEXT,                      -- e.g. "TLSv1.3 TLS13_AES_256_GCM_SHA384", NULL in clear
    parsed          INTEGER NOT NULL,          -- 0 when the MIME parser could not read it (stored raw anyway)
    case_id         INTEGER NOT NULL REFERENCES cases (id),
    key_id          INTEGER NOT NULL,          -- master key version that wraps the data key
    wrapped_key     BLOB NOT NULL,
    trace_ct        BLOB NOT NULL,             -- our Received: header
    fields_ct       BLOB NOT NULL,             -- extracted record (JSON)
    sender_idx      BLOB,
    msgid_idx       BLOB,
    dedupe_idx      BLOB NOT NULL,             -- envelope + Message-ID + body hash, for retry detection
    duplicate_count INTEGER NOT NULL DEFAULT 0,
    UNIQUE (reg_year, reg_seq)
);
-- Every index is a page written per commit (and again at checkpoint), and blind-index keys are
-- random, so each insert lands on a different page: keep only the indexes that are needed.
-- A retry carries the same Message-ID, so retries are found through messages_msgid; the
-- fingerprint index is needed only for the rare message without a Message-ID.
CREATE INDEX messages_dedupe ON messages (dedupe_idx) WHERE msgid_idx IS NULL;
CREATE INDEX messages_sender ON messages (sender_idx);
CREATE INDEX messages_msgid ON messages (msgid_idx);
CREATE INDEX messages_case ON messages (case_id);

-- The raw message lives apart from the row metadata so listings never touch large pages.
CREATE TABLE message_blobs (
    message_id INTEGER PRIMARY KEY REFERENCES messages (id),
    raw_ct     BLOB NOT NULL
);

-- Append-only, hash-chained: hash = SHA-256(prev_hash ‖ fields); editing or deleting a row breaks
-- the chain from that row on.
CREATE TABLE audit (
    id        INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    object    TEXT,
    detail    TEXT,
    prev_hash BLOB NOT NULL,
    hash      BLOB NOT NULL
);
