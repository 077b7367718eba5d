-- Issue #12, SLA escalation and staff notifications.
-- A staff user's own e-mail address, where notifications are sent (NULL: web page only). Staff
-- addresses are not customer data; login names are stored in clear too.
ALTER TABLE users ADD COLUMN email TEXT;

-- Each escalation event happens once: one row per (case, kind, deadline), written in the same
-- transaction as its escalation, notifications, outbox rows and audit entries. A new due time
-- (e.g. after a priority change) is a new deadline and may warn again.
CREATE TABLE escalation_events (
    case_id  INTEGER NOT NULL REFERENCES cases (id),
    kind     TEXT NOT NULL,                    -- warning | breach | new
    deadline INTEGER NOT NULL,                 -- the due_at judged (unix ms); 0 for new
    at       INTEGER NOT NULL,
    PRIMARY KEY (case_id, kind, deadline)
);

-- A staff user's notifications (the web list and GET /api/notifications).
CREATE TABLE notifications (
    id        INTEGER PRIMARY KEY,
    user_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    case_id   INTEGER NOT NULL REFERENCES cases (id),
    kind      TEXT NOT NULL,                   -- warning | breach | new
    at        INTEGER NOT NULL,
    outbox_id INTEGER REFERENCES outbox (id),  -- the mail, when the user has an address
    read_at   INTEGER
);
CREATE INDEX notifications_user ON notifications (user_id, id);
