-- Issue #13, ingest speed: fewer B-trees written for each new message. Every B-tree a message
-- adds a row to costs the writer a search and its leaf page in each commit's WAL.
--
-- messages (case_id): no query looks messages up by their first case (the mailbox and the case
-- thread go through message_cases, whose (case_id, uid) index serves them), and neither messages
-- nor cases are ever deleted, so the foreign key never needs it either.
DROP INDEX messages_case;

-- message_cases and case_participants are keyed by their primary key alone: WITHOUT ROWID makes
-- that key the table itself, one B-tree where a rowid table kept two (the rows and the key's
-- index). The triggers that named a row by rowid name it by its key. cases_imap_visible names
-- message_cases, so it goes first (a rename checks every trigger against the schema) and comes
-- back unchanged at the end.
DROP TRIGGER cases_imap_visible;

CREATE TABLE message_cases_new (
    message_id INTEGER NOT NULL REFERENCES messages (id),
    case_id    INTEGER NOT NULL REFERENCES cases (id),
    uid        INTEGER,
    queue      TEXT,
    modseq     INTEGER,
    x_category TEXT,
    x_priority TEXT,
    x_due      INTEGER,
    PRIMARY KEY (message_id, case_id)
) WITHOUT ROWID;
INSERT INTO message_cases_new (message_id, case_id, uid, queue, modseq, x_category, x_priority, x_due)
    SELECT message_id, case_id, uid, queue, modseq, x_category, x_priority, x_due FROM message_cases;
DROP TABLE message_cases;
ALTER TABLE message_cases_new RENAME TO message_cases;
CREATE INDEX message_cases_uid ON message_cases (case_id, uid);
CREATE INDEX message_cases_queue_uid ON message_cases (queue, uid);
CREATE INDEX message_cases_queue_modseq ON message_cases (queue, modseq);

CREATE TRIGGER message_cases_moved AFTER UPDATE OF uid, queue ON message_cases
WHEN OLD.queue IS NOT NULL AND (OLD.uid IS NOT NEW.uid OR OLD.queue IS NOT NEW.queue)
BEGIN
    UPDATE counters SET value = value + 1 WHERE name = 'modseq';
    INSERT OR IGNORE INTO mailbox_expunged (queue, uid, modseq)
        VALUES (OLD.queue, OLD.uid, (SELECT value FROM counters WHERE name = 'modseq'));
    UPDATE message_cases SET modseq = (SELECT value FROM counters WHERE name = 'modseq')
        WHERE message_id = NEW.message_id AND case_id = NEW.case_id;
END;

CREATE TRIGGER message_cases_removed AFTER DELETE ON message_cases WHEN OLD.queue IS NOT NULL
BEGIN
    UPDATE counters SET value = value + 1 WHERE name = 'modseq';
    INSERT OR IGNORE INTO mailbox_expunged (queue, uid, modseq)
        VALUES (OLD.queue, OLD.uid, (SELECT value FROM counters WHERE name = 'modseq'));
END;

CREATE TRIGGER mailbox_seen_through_placed AFTER UPDATE OF uid, queue ON message_cases
WHEN NEW.queue IS NOT NULL AND (OLD.uid IS NOT NEW.uid OR OLD.queue IS NOT NEW.queue)
BEGIN
    UPDATE mailbox_seen_through SET uid = NEW.uid - 1 WHERE queue = NEW.queue AND uid >= NEW.uid;
END;

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

CREATE TABLE case_participants_new (
    case_id     INTEGER NOT NULL REFERENCES cases (id),
    address_idx BLOB NOT NULL,
    PRIMARY KEY (case_id, address_idx)
) WITHOUT ROWID;
INSERT INTO case_participants_new (case_id, address_idx) SELECT case_id, address_idx FROM case_participants;
DROP TABLE case_participants;
ALTER TABLE case_participants_new RENAME TO case_participants;
