-- Issue #11, workers across nodes: one row per singleton job (session purge, …), held by one
-- node's process until `until` (unix ms); taken over once it has expired. As
-- migrations/postgres/0011_leases.sql.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until INTEGER NOT NULL
);
