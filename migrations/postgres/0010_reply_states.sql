-- Issue #10, replies: a reply's state besides its outbox row, and the case status it replaced;
-- as migrations/sqlite/0010_reply_states.sql.
ALTER TABLE case_entries ADD COLUMN state TEXT;          -- NULL | withdrawn | awaiting-review | returned | resubmitted
ALTER TABLE case_entries ADD COLUMN status_before TEXT;
