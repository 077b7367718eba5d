-- Issue #13, IMAP on huge queues: an incremental view and CONDSTORE (RFC 7162); as
-- migrations/sqlite/0018_imap_modseq.sql (the triggers in PL/pgSQL).
ALTER TABLE message_cases ADD COLUMN queue TEXT;
ALTER TABLE message_cases ADD COLUMN modseq BIGINT;
ALTER TABLE message_cases ADD COLUMN x_category TEXT;
ALTER TABLE message_cases ADD COLUMN x_priority TEXT;
ALTER TABLE message_cases ADD COLUMN x_due BIGINT;
UPDATE message_cases mc SET modseq = 1, queue = c.queue, x_category = c.category, x_priority = c.priority, x_due = c.due_at
FROM cases c WHERE c.id = mc.case_id;
CREATE INDEX message_cases_queue_uid ON message_cases (queue, uid);
CREATE INDEX message_cases_queue_modseq ON message_cases (queue, modseq);

ALTER TABLE mailbox_flags ADD COLUMN modseq BIGINT NOT NULL DEFAULT 0;
CREATE INDEX mailbox_flags_modseq ON mailbox_flags (user_id, modseq);

INSERT INTO counters (name, value) VALUES ('modseq', 1);

CREATE TABLE mailbox_expunged (
    queue  TEXT NOT NULL,
    uid    BIGINT NOT NULL,
    modseq BIGINT NOT NULL,
    PRIMARY KEY (queue, modseq, uid)
);

CREATE FUNCTION next_modseq() RETURNS BIGINT LANGUAGE sql AS $$
    UPDATE counters SET value = value + 1 WHERE name = 'modseq' RETURNING value
$$;

-- A new placement (the writer names no modseq; `store copy` brings its own).
CREATE FUNCTION message_cases_placed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.modseq IS NULL THEN
        NEW.modseq := next_modseq();
        SELECT queue, category, priority, due_at INTO NEW.queue, NEW.x_category, NEW.x_priority, NEW.x_due
        FROM cases WHERE id = NEW.case_id;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER message_cases_placed BEFORE INSERT ON message_cases FOR EACH ROW EXECUTE FUNCTION message_cases_placed();

-- A new UID (transfer) or another queue: the old (queue, uid) left.
CREATE FUNCTION message_cases_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.modseq := next_modseq();
    INSERT INTO mailbox_expunged (queue, uid, modseq) VALUES (OLD.queue, OLD.uid, NEW.modseq) ON CONFLICT DO NOTHING;
    RETURN NEW;
END $$;
CREATE TRIGGER message_cases_moved BEFORE UPDATE OF uid, queue ON message_cases FOR EACH ROW
WHEN (OLD.queue IS NOT NULL AND (OLD.uid IS DISTINCT FROM NEW.uid OR OLD.queue IS DISTINCT FROM NEW.queue))
EXECUTE FUNCTION message_cases_moved();

-- A purge removes the placement: an expunge.
CREATE FUNCTION message_cases_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO mailbox_expunged (queue, uid, modseq) VALUES (OLD.queue, OLD.uid, next_modseq()) ON CONFLICT DO NOTHING;
    RETURN OLD;
END $$;
CREATE TRIGGER message_cases_removed AFTER DELETE ON message_cases FOR EACH ROW WHEN (OLD.queue IS NOT NULL)
EXECUTE FUNCTION message_cases_removed();

-- What the keywords show changed: every message of the case gets a new modseq.
CREATE FUNCTION cases_imap_visible() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    m BIGINT := next_modseq();
    moved BOOLEAN := OLD.queue IS DISTINCT FROM NEW.queue;
BEGIN
    UPDATE message_cases SET
        modseq = m,
        x_category = CASE WHEN moved THEN NEW.category ELSE x_category END,
        x_priority = CASE WHEN moved THEN NEW.priority ELSE x_priority END,
        x_due = CASE WHEN moved THEN NEW.due_at ELSE x_due END,
        queue = NEW.queue
    WHERE case_id = NEW.id;
    RETURN NULL;
END $$;
CREATE TRIGGER cases_imap_visible AFTER UPDATE OF queue, category, priority, status, assignee, spam ON cases FOR EACH ROW
WHEN (OLD.queue IS DISTINCT FROM NEW.queue OR OLD.category IS DISTINCT FROM NEW.category OR OLD.priority IS DISTINCT FROM NEW.priority
   OR OLD.status IS DISTINCT FROM NEW.status OR OLD.assignee IS DISTINCT FROM NEW.assignee OR OLD.spam IS DISTINCT FROM NEW.spam)
EXECUTE FUNCTION cases_imap_visible();
