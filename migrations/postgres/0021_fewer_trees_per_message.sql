-- Issue #13, ingest speed: fewer B-trees written for each new message (as in migrations/sqlite,
-- where message_cases and case_participants also become WITHOUT ROWID tables; a PostgreSQL table
-- is a heap and its primary key's index either way).
--
-- messages (case_id): no query looks messages up by their first case (the mailbox and the case
-- thread go through message_cases, whose (case_id, uid) index serves them), and neither messages
-- nor cases are ever deleted, so the foreign key never needs it either.
DROP INDEX messages_case;
