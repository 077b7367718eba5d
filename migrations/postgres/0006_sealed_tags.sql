-- Issue #8: case tags sealed; as migrations/sqlite/0006_sealed_tags.sql.

ALTER TABLE cases ADD COLUMN uid BYTEA;           -- random row identity, made with the first tag
ALTER TABLE cases ADD COLUMN key_id BIGINT;       -- master key version that wraps the data key
ALTER TABLE cases ADD COLUMN wrapped_key BYTEA;
ALTER TABLE cases ADD COLUMN tags_ct BYTEA;       -- sealed JSON array of tags; NULL = no tags

-- One blind index row per tag (SQLite: WITHOUT ROWID; PostgreSQL tables have no rowid).
CREATE TABLE case_tags (
    case_id BIGINT NOT NULL REFERENCES cases (id),
    tag_idx BYTEA NOT NULL,
    PRIMARY KEY (case_id, tag_idx)
);

-- Cases whose clear tags Store::open still has to seal (empty on a new database).
CREATE TABLE cases_clear_tags (case_id BIGINT PRIMARY KEY);
INSERT INTO cases_clear_tags (case_id) SELECT id FROM cases WHERE tags NOT IN ('', '[]');
