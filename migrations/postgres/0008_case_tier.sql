-- Issue #10 (dashboard): the customer tier the sender had when the case was opened; as
-- migrations/sqlite/0008_case_tier.sql.
ALTER TABLE cases ADD COLUMN tier TEXT;

-- Partial indexes: only the cases that have the time, so new mail writes no entry into them.
CREATE INDEX cases_queue_resolved ON cases (queue, resolved_at) WHERE resolved_at IS NOT NULL;
CREATE INDEX cases_queue_responded ON cases (queue, first_response_at) WHERE first_response_at IS NOT NULL;
