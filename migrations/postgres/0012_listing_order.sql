-- Issue #11: the queue listing's due-time order read from the index on PostgreSQL too. The
-- listing asks for `due_at ASC NULLS FIRST, id` (`DESC NULLS LAST, id DESC` reversed), but 0004's
-- index keeps `due_at` in PostgreSQL's default order (NULLS LAST) and equal due times in heap
-- order, so every page read and sorted the whole (queue, status, priority) run. Declared in the
-- listing's order, one range scan (forwards or backwards) returns a page and stops. SQLite read
-- it in order already (its index entries end with the rowid): migrations/sqlite/0012 only keeps
-- the two schemas alike. The index is rebuilt while this migration holds its lock (seconds for a
-- million cases).
DROP INDEX cases_queue_priority_due;
CREATE INDEX cases_queue_priority_due ON cases (queue, status, priority, due_at NULLS FIRST, id);
