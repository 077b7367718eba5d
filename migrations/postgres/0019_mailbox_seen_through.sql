-- Issue #13, IMAP SEARCH UNSEEN proportional to the result; as
-- migrations/sqlite/0019_mailbox_seen_through.sql (the trigger in PL/pgSQL).
CREATE TABLE mailbox_seen_through (
    user_id BIGINT NOT NULL,
    queue   TEXT NOT NULL,
    uid     BIGINT NOT NULL,
    PRIMARY KEY (user_id, queue)
);
CREATE INDEX mailbox_seen_through_queue ON mailbox_seen_through (queue, uid);

-- A message (re)placed in a queue at a UID at or below a watermark: the watermark goes below it.
CREATE FUNCTION mailbox_seen_through_placed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE mailbox_seen_through SET uid = NEW.uid - 1 WHERE queue = NEW.queue AND uid >= NEW.uid;
    RETURN NULL;
END $$;
CREATE TRIGGER mailbox_seen_through_placed AFTER UPDATE OF uid, queue ON message_cases FOR EACH ROW
WHEN (NEW.queue IS NOT NULL AND (OLD.uid IS DISTINCT FROM NEW.uid OR OLD.queue IS DISTINCT FROM NEW.queue))
EXECUTE FUNCTION mailbox_seen_through_placed();
