-- Issue #4: staff access (users, roles, sessions), case work, and the IMAP view's bookkeeping.
-- Staff login names and role names are operational data; customer data stays sealed (*_ct).

CREATE TABLE users (
    id                  INTEGER PRIMARY KEY,
    name                TEXT NOT NULL UNIQUE,          -- login name
    password_hash       TEXT NOT NULL,                 -- argon2id, PHC string (salt inside)
    locked              INTEGER NOT NULL DEFAULT 0,    -- locked by a security officer
    failed_logins       INTEGER NOT NULL DEFAULT 0,    -- consecutive failures (throttling)
    locked_until        INTEGER,                       -- unix ms: temporary lockout after failures
    created_at          INTEGER NOT NULL,
    password_changed_at INTEGER NOT NULL
);

CREATE TABLE roles (
    name        TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
);
-- Built in: manages users and roles and reads the audit log, but gets no queue permission.
INSERT INTO roles (name, description, created_at)
VALUES ('security-officer', 'manages users and roles, reads the audit log; reads no customer mail', 0);

-- permission: read | act | assign | supervise; queue '*' means every queue.
CREATE TABLE role_grants (
    role       TEXT NOT NULL REFERENCES roles (name) ON DELETE CASCADE,
    queue      TEXT NOT NULL,
    permission TEXT NOT NULL,
    PRIMARY KEY (role, queue, permission)
);

CREATE TABLE user_roles (
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role    TEXT NOT NULL REFERENCES roles (name) ON DELETE CASCADE,
    PRIMARY KEY (user_id, role)
);

-- HTTP sessions and bearer tokens. Only a hash of the token is stored: a copy of the database
-- does not let anyone in.
CREATE TABLE sessions (
    token_hash   BLOB PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,                  -- cookie | bearer
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

-- Case work.
ALTER TABLE cases ADD COLUMN assignee INTEGER REFERENCES users (id);
ALTER TABLE cases ADD COLUMN escalated INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cases ADD COLUMN follow_up_at INTEGER;                  -- unix ms
ALTER TABLE cases ADD COLUMN first_response_at INTEGER;             -- first staff reply
ALTER TABLE cases ADD COLUMN resolved_at INTEGER;
-- No index on assignee: "assigned to me" is a filter within a queue listing (read through the
-- queue's index), and every index on cases is one more page written per commit of new mail.

-- Notes, replies and follow-ups written by staff; the text is sealed like a message.
CREATE TABLE case_entries (
    id          INTEGER PRIMARY KEY,
    case_id     INTEGER NOT NULL REFERENCES cases (id),
    at          INTEGER NOT NULL,
    author      TEXT NOT NULL,                  -- staff login name
    kind        TEXT NOT NULL,                  -- note | reply | follow-up
    outbox_id   INTEGER REFERENCES outbox (id), -- a reply's outgoing mail
    uid         BLOB NOT NULL,
    key_id      INTEGER NOT NULL,
    wrapped_key BLOB NOT NULL,
    body_ct     BLOB NOT NULL
);
CREATE INDEX case_entries_case ON case_entries (case_id, id);

-- What happened to a case (status, priority, queue, assignee …), never customer content.
CREATE TABLE case_history (
    id      INTEGER PRIMARY KEY,
    case_id INTEGER NOT NULL REFERENCES cases (id),
    at      INTEGER NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    detail  TEXT
);
CREATE INDEX case_history_case ON case_history (case_id, id);

-- IMAP: a message is shown in the mailbox of each queue it has a case in, under a UID taken from
-- the global message sequence (`counters.message`): the message id at delivery, a fresh value when
-- its case is transferred. UIDs therefore only ever grow within a mailbox, and UIDVALIDITY never
-- has to change.
ALTER TABLE message_cases ADD COLUMN uid INTEGER;
UPDATE message_cases SET uid = message_id;
-- Replaces (case_id, message_id): serves the same look-ups by case, and reads a mailbox in UID
-- order, for the same one index write per message.
DROP INDEX message_cases_case;
CREATE INDEX message_cases_uid ON message_cases (case_id, uid);

CREATE TABLE mailboxes (
    queue       TEXT PRIMARY KEY,
    uidvalidity INTEGER NOT NULL
);

-- Per-user IMAP flags (\Seen, \Flagged): shared queues, personal reading state.
CREATE TABLE mailbox_flags (
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    case_id    INTEGER NOT NULL REFERENCES cases (id),
    message_id INTEGER NOT NULL REFERENCES messages (id),
    seen       INTEGER NOT NULL DEFAULT 0,
    flagged    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, case_id, message_id)
);
