-- The language a channel (or a user's DM) is answered in: `/china-filing language zh|en|auto`.
-- "auto" answers in the language each question or command is written in. Additive: older releases
-- ignore the column.
ALTER TABLE channel_settings ADD COLUMN language TEXT NOT NULL DEFAULT 'auto';
