-- Issue #12, retention and erasure (crypto-shredding); as migrations/sqlite/0016_retention.sql.
ALTER TABLE messages ADD COLUMN purged_at BIGINT;
ALTER TABLE messages ADD COLUMN purged_by TEXT;

ALTER TABLE cases ADD COLUMN hold_at BIGINT;
ALTER TABLE cases ADD COLUMN hold_by TEXT;
ALTER TABLE cases ADD COLUMN hold_reason TEXT;

CREATE INDEX messages_purged ON messages (purged_at) WHERE purged_at IS NOT NULL;
