-- Issue #10 (dashboard): the customer tier the sender had when the case was opened (vip,
-- long-term, prospect; NULL: not in the directory or not authenticated), so the queue list can
-- show a badge and the dashboard can count cases by tier without opening any message.
ALTER TABLE cases ADD COLUMN tier TEXT;

-- The dashboard counts resolutions and first responses per day over a time range: these partial
-- indexes hold only the cases that have the time, so new mail writes no entry into them.
CREATE INDEX cases_queue_resolved ON cases (queue, resolved_at) WHERE resolved_at IS NOT NULL;
CREATE INDEX cases_queue_responded ON cases (queue, first_response_at) WHERE first_response_at IS NOT NULL;
