-- Issue #13, ingest speed: the writer stamps a new placement's modseq, queue and X-Mailroom-*
-- values in its own INSERT (one modseq per batch), so the per-row trigger of 0018 goes (it
-- bumped the counter once per message). Every INSERT INTO message_cases now names these columns
-- (the writer; `store copy` brings them).
DROP TRIGGER message_cases_placed ON message_cases;
DROP FUNCTION message_cases_placed();
