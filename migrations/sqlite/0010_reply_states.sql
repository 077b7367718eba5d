-- Issue #10, replies: a reply's state besides its outbox row, and what the reply changed.
--   state: NULL (queued or sent: the outbox row tells), 'withdrawn' (taken back within the undo
--   window; the outbox row is 'withdrawn' too), 'awaiting-review' (no outbox row yet),
--   'returned' (a reviewer sent it back with a comment), 'resubmitted' (returned, then sent again
--   by its author as a new reply).
--   status_before: the case status the reply replaced (an undo puts it back).
-- Numbered 0010 so that migrations of the other branches of issue #10 fit in before it.
ALTER TABLE case_entries ADD COLUMN state TEXT;
ALTER TABLE case_entries ADD COLUMN status_before TEXT;
