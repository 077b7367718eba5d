-- Issue #12, retention and erasure (crypto-shredding). A purged registration keeps its row as a
-- tombstone (number, reg_year/reg_seq, received_at, size, case → queue) with its data key,
-- ciphertexts and blind indexes destroyed (key_id 0, empty blobs, NULL indexes); these say when
-- and why. Sealed rows of other tables (case_entries, outbox) mark a destroyed key with key_id 0.
ALTER TABLE messages ADD COLUMN purged_at INTEGER;      -- unix ms; NULL: not purged
ALTER TABLE messages ADD COLUMN purged_by TEXT;         -- the retention policy's name, or 'erasure'

-- Legal hold: a held case is skipped by retention and erasure until an officer releases it.
ALTER TABLE cases ADD COLUMN hold_at INTEGER;           -- unix ms; NULL: not held
ALTER TABLE cases ADD COLUMN hold_by TEXT;              -- the officer's actor name
ALTER TABLE cases ADD COLUMN hold_reason TEXT;          -- the officer's words (staff text, no customer data expected)

CREATE INDEX messages_purged ON messages (purged_at) WHERE purged_at IS NOT NULL;
