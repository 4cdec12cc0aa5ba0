-- Feedback that teaches (handlers/feedback.py): a 👎 may carry a reason (wrong, outdated, unclear,
-- missing, other) and a comment, and names the fact it was about; questions answered "no answer" are
-- kept for the content editors (their text only when FEEDBACK_KEEP_QUESTION_TEXT is on) until
-- expires_at (UNANSWERED_RETENTION_DAYS), when Store.purge_expired forgets them. Additive: older
-- releases ignore the new columns and table.
ALTER TABLE feedback ADD COLUMN fact text;
ALTER TABLE feedback ADD COLUMN reason text CHECK (reason IS NULL OR reason IN ('wrong', 'outdated', 'unclear', 'missing', 'other'));
ALTER TABLE feedback ADD COLUMN reason_text text;
ALTER TABLE feedback ADD COLUMN reason_at timestamptz;
CREATE INDEX feedback_message ON feedback (platform, message_ref, user_id);

CREATE TABLE unanswered_questions (
    id          bigserial PRIMARY KEY,
    platform    text NOT NULL,
    workspace   text,
    topic       text,
    question    text,
    language    text NOT NULL DEFAULT 'en',
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX unanswered_questions_expires ON unanswered_questions (expires_at);
CREATE INDEX unanswered_questions_workspace ON unanswered_questions (platform, workspace, created_at);
