-- Issue #10: each staff user's own page settings; as migrations/sqlite/0009_user_preferences.sql.
CREATE TABLE user_preferences (
    user_id    BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    language   TEXT NOT NULL DEFAULT 'auto',   -- 'auto' | 'en' | 'zh-CN' | 'ru'
    shortcuts  BIGINT NOT NULL DEFAULT 1,      -- 0/1: keyboard shortcuts on the pages
    updated_at BIGINT NOT NULL                 -- unix ms
);
