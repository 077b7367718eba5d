-- Issue #13, IMAP on huge queues: an incremental view and CONDSTORE (RFC 7162).
--
-- `message_cases` carries the queue its case is in (kept by the triggers below), so a mailbox
-- is a range of the (queue, uid) index and its changes a range of (queue, modseq): no session
-- re-reads a whole queue per command. `modseq` comes from one global counter ('modseq') bumped
-- in the writing transaction whenever something a client sees of the message changes (its
-- case's queue, category, priority, status, assignee or spam verdict: the keywords).
--
-- x_category, x_priority and x_due are the case's values when the message got its UID (at
-- delivery, or at a transfer, which gives a new UID): the X-Mailroom-* header fields are
-- rendered from them, so a UID always shows the same bytes (clients cache by UID).
ALTER TABLE message_cases ADD COLUMN queue TEXT;
ALTER TABLE message_cases ADD COLUMN modseq INTEGER;
ALTER TABLE message_cases ADD COLUMN x_category TEXT;
ALTER TABLE message_cases ADD COLUMN x_priority TEXT;
ALTER TABLE message_cases ADD COLUMN x_due INTEGER;
UPDATE message_cases SET modseq = 1,
    queue = (SELECT queue FROM cases WHERE id = case_id),
    x_category = (SELECT category FROM cases WHERE id = case_id),
    x_priority = (SELECT priority FROM cases WHERE id = case_id),
    x_due = (SELECT due_at FROM cases WHERE id = case_id);
CREATE INDEX message_cases_queue_uid ON message_cases (queue, uid);
CREATE INDEX message_cases_queue_modseq ON message_cases (queue, modseq);

-- The user's own flags carry the modseq of their last change (stamped by the store).
ALTER TABLE mailbox_flags ADD COLUMN modseq INTEGER NOT NULL DEFAULT 0;
CREATE INDEX mailbox_flags_modseq ON mailbox_flags (user_id, modseq);

-- 1: every message already placed (and every flag) is "modseq 1" after this migration.
INSERT INTO counters (name, value) VALUES ('modseq', 1);

-- Departures: a UID that left a mailbox (transfer or purge), so a session learns which of the
-- UIDs it shows are gone (EXPUNGE, VANISHED) from a range read, not by comparing lists.
CREATE TABLE mailbox_expunged (
    queue  TEXT NOT NULL,
    uid    INTEGER NOT NULL,
    modseq INTEGER NOT NULL,
    PRIMARY KEY (queue, modseq, uid)
);

-- A new placement (the writer names no modseq; `store copy` brings its own).
CREATE TRIGGER message_cases_placed AFTER INSERT ON message_cases WHEN NEW.modseq IS NULL
BEGIN
    UPDATE counters SET value = value + 1 WHERE name = 'modseq';
    UPDATE message_cases SET
        modseq = (SELECT value FROM counters WHERE name = 'modseq'),
        queue = (SELECT queue FROM cases WHERE id = NEW.case_id),
        x_category = (SELECT category FROM cases WHERE id = NEW.case_id),
        x_priority = (SELECT priority FROM cases WHERE id = NEW.case_id),
        x_due = (SELECT due_at FROM cases WHERE id = NEW.case_id)
    WHERE rowid = NEW.rowid;
END;

-- A new UID (transfer) or another queue: the old (queue, uid) left. A transfer may record a
-- departure of a UID the old mailbox never showed (the new UID, when the queue follows): harmless.
CREATE TRIGGER message_cases_moved AFTER UPDATE OF uid, queue ON message_cases
WHEN OLD.queue IS NOT NULL AND (OLD.uid IS NOT NEW.uid OR OLD.queue IS NOT NEW.queue)
BEGIN
    UPDATE counters SET value = value + 1 WHERE name = 'modseq';
    INSERT OR IGNORE INTO mailbox_expunged (queue, uid, modseq)
        VALUES (OLD.queue, OLD.uid, (SELECT value FROM counters WHERE name = 'modseq'));
    UPDATE message_cases SET modseq = (SELECT value FROM counters WHERE name = 'modseq') WHERE rowid = NEW.rowid;
END;

-- A purge (retention, erasure) removes the placement: an expunge.
CREATE TRIGGER message_cases_removed AFTER DELETE ON message_cases WHEN OLD.queue IS NOT NULL
BEGIN
    UPDATE counters SET value = value + 1 WHERE name = 'modseq';
    INSERT OR IGNORE INTO mailbox_expunged (queue, uid, modseq)
        VALUES (OLD.queue, OLD.uid, (SELECT value FROM counters WHERE name = 'modseq'));
END;

-- What the keywords show changed: every message of the case gets a new modseq (and follows the
-- queue; a transfer fixes the header values of the new UIDs at the transfer's values).
CREATE TRIGGER cases_imap_visible AFTER UPDATE OF queue, category, priority, status, assignee, spam ON cases
WHEN OLD.queue IS NOT NEW.queue OR OLD.category IS NOT NEW.category OR OLD.priority IS NOT NEW.priority
  OR OLD.status IS NOT NEW.status OR OLD.assignee IS NOT NEW.assignee OR OLD.spam IS NOT NEW.spam
BEGIN
    UPDATE counters SET value = value + 1 WHERE name = 'modseq';
    UPDATE message_cases SET
        modseq = (SELECT value FROM counters WHERE name = 'modseq'),
        x_category = CASE WHEN OLD.queue IS NOT NEW.queue THEN NEW.category ELSE x_category END,
        x_priority = CASE WHEN OLD.queue IS NOT NEW.queue THEN NEW.priority ELSE x_priority END,
        x_due = CASE WHEN OLD.queue IS NOT NEW.queue THEN NEW.due_at ELSE x_due END,
        queue = NEW.queue
    WHERE case_id = NEW.id;
END;
