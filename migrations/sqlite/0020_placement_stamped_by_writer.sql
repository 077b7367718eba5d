-- Issue #13, ingest speed: the writer stamps a new placement's modseq, queue and X-Mailroom-*
-- values in its own INSERT (one modseq per batch), so the per-row trigger of 0018 goes. A table
-- with an INSERT trigger makes SQLite keep a statement journal for every insert into it (a copy
-- of each page the statement changes), and the trigger bumped the counter once per message.
-- Every INSERT INTO message_cases now names these columns (the writer; `store copy` brings them).
DROP TRIGGER message_cases_placed;
