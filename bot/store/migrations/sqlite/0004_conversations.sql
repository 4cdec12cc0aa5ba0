-- Channel Q&A conversation context (handlers/qa/context.py): what a Slack thread or DM, a Teams reply
-- chain or chat, or a CLI --thread key was last about, so that follow-ups can lean on it. Expires after
-- a day; expired rows are purged by Store.purge_expired and whenever a context is saved.

CREATE TABLE qa_context (
    platform    TEXT NOT NULL,
    thread      TEXT NOT NULL,
    workspace   TEXT,
    data        TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    PRIMARY KEY (platform, thread)
);
CREATE INDEX qa_context_expires ON qa_context (expires_at);
CREATE INDEX qa_context_workspace ON qa_context (platform, workspace);
