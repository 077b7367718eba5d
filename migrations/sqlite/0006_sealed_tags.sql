-- Issue #8: case tags sealed. A tag is free text that staff (and rules) choose, so it can carry
-- customer information; it is stored like the other sealed case data: a per-case data key wrapped
-- by the master key, the tag list sealed under it with the case's uid as associated data, and one
-- keyed blind index row per tag (HMAC under the key file's index key) so listings can still filter
-- by tag without the text.

ALTER TABLE cases ADD COLUMN uid BLOB;           -- random row identity, made with the case's first tag
ALTER TABLE cases ADD COLUMN key_id INTEGER;     -- master key version that wraps the data key
ALTER TABLE cases ADD COLUMN wrapped_key BLOB;
ALTER TABLE cases ADD COLUMN tags_ct BLOB;       -- sealed JSON array of tags; NULL = no tags

CREATE TABLE case_tags (
    case_id INTEGER NOT NULL REFERENCES cases (id),
    tag_idx BLOB NOT NULL,                       -- blind index of one tag of the case
    PRIMARY KEY (case_id, tag_idx)
) WITHOUT ROWID;

-- The clear tags written before this migration cannot be sealed in SQL (the key is not in the
-- database): their cases are listed here, and Store::open seals them, empties `cases.tags`
-- (which nothing writes any more) and removes them from this list, batch by batch.
CREATE TABLE cases_clear_tags (case_id INTEGER PRIMARY KEY);
INSERT INTO cases_clear_tags (case_id) SELECT id FROM cases WHERE tags NOT IN ('', '[]');
