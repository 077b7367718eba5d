-- Issue #8, part 2 follow-up: a password reset of an account that can read a queue's mail (or is a
-- security officer) is a pending change too (kind 'user.reset', role ''): until a second person
-- approves it nothing happens. On approval the enrolment code is issued (its MAC goes into
-- `users` as for any code) and, for the officer who asked, a sealed copy waits here: a fresh data
-- key wrapped by the master key, the code sealed under it with the change id as associated data.
-- The requester collects it once (POST /api/admin/changes/{id}/code), which empties these columns.
ALTER TABLE access_changes ADD COLUMN code_key_id INTEGER;
ALTER TABLE access_changes ADD COLUMN code_wrapped_key BLOB;
ALTER TABLE access_changes ADD COLUMN code_ct BLOB;
ALTER TABLE access_changes ADD COLUMN code_expires_at INTEGER;   -- unix ms, as the code's own expiry
ALTER TABLE access_changes ADD COLUMN code_collected_at INTEGER; -- unix ms; NULL: not collected
