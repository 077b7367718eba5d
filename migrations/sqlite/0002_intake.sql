-- Issue #3: classification, routing to several queues, threading, SLA, customer directory,
-- acknowledgements. Customer data again only as ciphertext (*_ct) or blind index (*_idx).

-- A case now carries what classification decided; a message may open or join a case in each
-- queue it was addressed to (one registration, several cases).
ALTER TABLE cases ADD COLUMN category TEXT;                       -- category code, e.g. BZZX
ALTER TABLE cases ADD COLUMN priority TEXT NOT NULL DEFAULT 'normal';  -- urgent | normal | low
ALTER TABLE cases ADD COLUMN due_at INTEGER;                      -- unix ms, SLA due time
ALTER TABLE cases ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';     -- JSON array of tag names
ALTER TABLE cases ADD COLUMN spam INTEGER NOT NULL DEFAULT 0;
CREATE INDEX cases_due ON cases (status, due_at);
CREATE INDEX cases_opening ON cases (opening_number);

ALTER TABLE messages ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';  -- e.g. unverified-sender, new-participant
ALTER TABLE messages ADD COLUMN auth TEXT;                        -- "spf=pass dkim=pass dmarc=pass" (no customer data)
ALTER TABLE messages ADD COLUMN automatic INTEGER NOT NULL DEFAULT 0;  -- auto-reply / delivery report

CREATE TABLE message_cases (
    message_id INTEGER NOT NULL REFERENCES messages (id),
    case_id    INTEGER NOT NULL REFERENCES cases (id),
    PRIMARY KEY (message_id, case_id)
);
CREATE INDEX message_cases_case ON message_cases (case_id, message_id);

-- Who has written to a case (blind index of the sender address).
CREATE TABLE case_participants (
    case_id     INTEGER NOT NULL REFERENCES cases (id),
    address_idx BLOB NOT NULL,
    PRIMARY KEY (case_id, address_idx)
);

-- Customer directory: an address or a whole domain, with a tier; name and free tags encrypted.
CREATE TABLE customers (
    id       INTEGER PRIMARY KEY,
    key_idx  BLOB NOT NULL UNIQUE,                 -- blind index of "address:a@b" or "domain:b"
    tier     TEXT NOT NULL,                        -- vip | long-term | prospect
    uid      BLOB NOT NULL,
    key_id   INTEGER NOT NULL,
    wrapped_key BLOB NOT NULL,
    entry_ct BLOB NOT NULL                         -- JSON {address|domain, name, tags}
);

-- Outgoing mail (acknowledgements, later staff replies), written in the same transaction as the
-- registration it belongs to, sent by a worker, never lost by a crash.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    message_id      INTEGER REFERENCES messages (id),  -- the registration it answers
    kind            TEXT NOT NULL,                     -- ack
    rcpt_idx        BLOB NOT NULL,                     -- blind index of the recipient (rate limit)
    created_at      INTEGER NOT NULL,                  -- unix ms
    next_attempt_at INTEGER NOT NULL,                  -- unix ms
    attempts        INTEGER NOT NULL DEFAULT 0,
    status          TEXT NOT NULL DEFAULT 'pending',   -- pending | sent | failed
    last_error      TEXT,                              -- never contains addresses or content
    sent_at         INTEGER,
    uid             BLOB NOT NULL,                     -- AAD identity of mail_ct
    key_id          INTEGER NOT NULL,
    wrapped_key     BLOB NOT NULL,
    mail_ct         BLOB NOT NULL                      -- JSON {from, to: [..], data: base64 RFC 5322}
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_rcpt ON outbox (rcpt_idx, created_at);
