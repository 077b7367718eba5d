-- Issue #13, queue counts in O(1). Counters the store keeps in the same write transaction as
-- every change of a case's queue, status, assignee or due time (src/store/cases/counters.rs), so
-- that a queue's counts read a few small rows instead of counting its cases. Filled here from
-- the cases as they are; `mailroom store counts` compares them with a full count.

-- Active cases (new, open, waiting) per queue, status and whether anybody is assigned.
CREATE TABLE queue_counters (
    queue      TEXT NOT NULL,
    status     TEXT NOT NULL,
    unassigned INTEGER NOT NULL,               -- 1: assignee IS NULL
    n          INTEGER NOT NULL,
    PRIMARY KEY (queue, status, unassigned)
);

-- Cases whose SLA clock runs (new, open) with a due time, per queue and time bucket, at four
-- widths (day, hour, minute, second: 86400000, 3600000, 60000, 1000 ms). "Due before t" sums
-- the days before t's day, the hours of that day before t's hour, and so on down to the seconds
-- of t's minute, and counts the cases of t's own second: O(days + 24 + 60 + 60) rows and one
-- second's cases, whatever the backlog. Empty buckets are deleted.
CREATE TABLE queue_due_buckets (
    queue TEXT NOT NULL,
    width INTEGER NOT NULL,                    -- ms
    start INTEGER NOT NULL,                    -- unix ms, a multiple of width
    n     INTEGER NOT NULL,
    PRIMARY KEY (queue, width, start)
);

INSERT INTO queue_counters (queue, status, unassigned, n)
SELECT queue, status, CASE WHEN assignee IS NULL THEN 1 ELSE 0 END, COUNT(*)
FROM cases WHERE status IN ('new', 'open', 'waiting')
GROUP BY queue, status, CASE WHEN assignee IS NULL THEN 1 ELSE 0 END;

INSERT INTO queue_due_buckets (queue, width, start, n)
SELECT c.queue, w.width, c.due_at - ((c.due_at % w.width) + w.width) % w.width, COUNT(*)
FROM cases c, (SELECT 86400000 AS width UNION ALL SELECT 3600000 UNION ALL SELECT 60000 UNION ALL SELECT 1000) w
WHERE c.status IN ('new', 'open') AND c.due_at IS NOT NULL
GROUP BY c.queue, w.width, c.due_at - ((c.due_at % w.width) + w.width) % w.width;
