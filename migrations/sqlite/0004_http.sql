-- Issue #4: the staff HTTP API's queue listing. A listing reads one (queue, status[, priority])
-- range of an index in sort order and stops after one page, so it costs the same with a million
-- cases as with a hundred. Inserts land at the end of their range (due and update times grow), so
-- the writer pays little for them.

-- Sort by due time (and by priority, then due time); overdue counts are a range of it.
CREATE INDEX cases_queue_priority_due ON cases (queue, status, priority, due_at);
-- Sort by last change.
CREATE INDEX cases_queue_updated ON cases (queue, status, updated_at);
