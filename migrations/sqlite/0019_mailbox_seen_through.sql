-- Issue #13, IMAP SEARCH UNSEEN proportional to the result: per user and queue, a UID through
-- which every message CURRENTLY in the queue is seen by the user (has a mailbox_flags row with
-- seen = 1). The flags stay the truth; this is only a proven lower bound where the walk for
-- unseen messages starts (SELECT's [UNSEEN n], SEARCH UNSEEN, STATUS UNSEEN). No row: 0.
--
-- Kept true in the writing transaction: `mailbox_commit` lowers it when \Seen is cleared and
-- advances it after \Seen is set; removing a user removes its rows; a message leaving the queue
-- (transfer, purge) cannot make it false. A message enters a queue with a UID from the global
-- message sequence, above every UID given before, so above every watermark; the trigger below
-- keeps the rule true even if a placement ever kept an old UID.
CREATE TABLE mailbox_seen_through (
    user_id INTEGER NOT NULL,
    queue   TEXT NOT NULL,
    uid     INTEGER NOT NULL,
    PRIMARY KEY (user_id, queue)
);
CREATE INDEX mailbox_seen_through_queue ON mailbox_seen_through (queue, uid);

-- A message (re)placed in a queue at a UID at or below a watermark: the watermark goes below it.
CREATE TRIGGER mailbox_seen_through_placed AFTER UPDATE OF uid, queue ON message_cases
WHEN NEW.queue IS NOT NULL AND (OLD.uid IS NOT NEW.uid OR OLD.queue IS NOT NEW.queue)
BEGIN
    UPDATE mailbox_seen_through SET uid = NEW.uid - 1 WHERE queue = NEW.queue AND uid >= NEW.uid;
END;
