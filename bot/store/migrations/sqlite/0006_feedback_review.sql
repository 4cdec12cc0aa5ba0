-- Feedback that teaches (handlers/feedback.py): a 👎 may carry a reason (wrong, outdated, unclear,
-- missing, other) and a comment, and names the fact it was about; questions answered "no answer" are
-- kept for the content editors (their text only when FEEDBACK_KEEP_QUESTION_TEXT is on) until
-- expires_at (UNANSWERED_RETENTION_DAYS), when Store.purge_expired forgets them. Additive: older
-- releases ignore the new columns and table.
ALTER TABLE feedback ADD COLUMN fact TEXT;
ALTER TABLE feedback ADD COLUMN reason TEXT CHECK (reason IS NULL OR reason IN ('wrong', 'outdated', 'unclear', 'missing', 'other'));
ALTER TABLE feedback ADD COLUMN reason_text TEXT;
ALTER TABLE feedback ADD COLUMN reason_at TEXT;
CREATE INDEX feedback_message ON feedback (platform, message_ref, user_id);

CREATE TABLE unanswered_questions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    platform    TEXT NOT NULL,
    workspace   TEXT,
    topic       TEXT,
    question    TEXT,
    language    TEXT NOT NULL DEFAULT 'en',
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);
CREATE INDEX unanswered_questions_expires ON unanswered_questions (expires_at);
CREATE INDEX unanswered_questions_workspace ON unanswered_questions (platform, workspace, created_at);
