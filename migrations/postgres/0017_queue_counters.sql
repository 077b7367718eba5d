-- Issue #13, queue counts in O(1); as migrations/sqlite/0017_queue_counters.sql.
CREATE TABLE queue_counters (
    queue      TEXT NOT NULL,
    status     TEXT NOT NULL,
    unassigned BIGINT NOT NULL,
    n          BIGINT NOT NULL,
    PRIMARY KEY (queue, status, unassigned)
);

CREATE TABLE queue_due_buckets (
    queue TEXT NOT NULL,
    width BIGINT NOT NULL,
    start BIGINT NOT NULL,
    n     BIGINT NOT NULL,
    PRIMARY KEY (queue, width, start)
);

INSERT INTO queue_counters (queue, status, unassigned, n)
SELECT queue, status, CASE WHEN assignee IS NULL THEN 1 ELSE 0 END, COUNT(*)
FROM cases WHERE status IN ('new', 'open', 'waiting')
GROUP BY queue, status, CASE WHEN assignee IS NULL THEN 1 ELSE 0 END;

INSERT INTO queue_due_buckets (queue, width, start, n)
SELECT c.queue, w.width, c.due_at - ((c.due_at % w.width) + w.width) % w.width, COUNT(*)
FROM cases c, (SELECT CAST(86400000 AS BIGINT) AS width UNION ALL SELECT 3600000 UNION ALL SELECT 60000 UNION ALL SELECT 1000) w
WHERE c.status IN ('new', 'open') AND c.due_at IS NOT NULL
GROUP BY c.queue, w.width, c.due_at - ((c.due_at % w.width) + w.width) % w.width;
