-- Issue #4: the staff HTTP API's queue listing; as migrations/sqlite/0004_http.sql.

-- Sort by due time (and by priority, then due time); overdue counts are a range of it.
CREATE INDEX cases_queue_priority_due ON cases (queue, status, priority, due_at);
-- Sort by last change.
CREATE INDEX cases_queue_updated ON cases (queue, status, updated_at);
