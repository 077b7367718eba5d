-- Issue #10, keyboard and languages: each staff user's own page settings. No row: the defaults
-- (language from the browser's Accept-Language, keyboard shortcuts on).
CREATE TABLE user_preferences (
    user_id    INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    language   TEXT NOT NULL DEFAULT 'auto',   -- 'auto' | 'en' | 'zh-CN' | 'ru'
    shortcuts  INTEGER NOT NULL DEFAULT 1,     -- 1: keyboard shortcuts on the pages
    updated_at INTEGER NOT NULL                -- unix ms
);
