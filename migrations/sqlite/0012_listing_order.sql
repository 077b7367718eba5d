-- Issue #11: as migrations/postgres/0012_listing_order.sql, which makes PostgreSQL read the
-- queue listing's due-time order (`due_at NULLS FIRST, id`) from the index. SQLite already did
-- (it sorts NULL first, and its index entries end with the rowid, which `id` is): naming `id`
-- changes no plan here and keeps the two schemas alike.
DROP INDEX cases_queue_priority_due;
CREATE INDEX cases_queue_priority_due ON cases (queue, status, priority, due_at, id);
