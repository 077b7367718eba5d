-- Issue #8, part 2 follow-up: a sealed enrolment code waiting for the officer who asked for an
-- approved reset; as migrations/sqlite/0007_reset_approval.sql.
ALTER TABLE access_changes ADD COLUMN code_key_id BIGINT;
ALTER TABLE access_changes ADD COLUMN code_wrapped_key BYTEA;
ALTER TABLE access_changes ADD COLUMN code_ct BYTEA;
ALTER TABLE access_changes ADD COLUMN code_expires_at BIGINT;   -- unix ms, as the code's own expiry
ALTER TABLE access_changes ADD COLUMN code_collected_at BIGINT; -- unix ms; NULL: not collected
