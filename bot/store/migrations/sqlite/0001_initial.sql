-- China Desk storage, SQLite. Timestamps are ISO-8601 UTC text of one fixed shape
-- (YYYY-MM-DDTHH:MM:SS.ffffff+00:00) so that text order is time order; payloads are JSON text.

CREATE TABLE processed_events (
    key         TEXT PRIMARY KEY,
    expires_at  TEXT NOT NULL
);
CREATE INDEX processed_events_expires ON processed_events (expires_at);

CREATE TABLE feedback (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    platform    TEXT NOT NULL,
    workspace   TEXT,
    channel     TEXT,
    user_id     TEXT,
    message_ref TEXT,
    topic       TEXT,
    vote        TEXT NOT NULL CHECK (vote IN ('up', 'down')),
    question    TEXT,
    created_at  TEXT NOT NULL
);
CREATE INDEX feedback_platform ON feedback (platform, created_at);
CREATE INDEX feedback_workspace ON feedback (platform, workspace);

CREATE TABLE installations (
    platform    TEXT NOT NULL,
    workspace   TEXT NOT NULL,
    data        TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (platform, workspace)
);

CREATE TABLE oauth_states (
    state       TEXT PRIMARY KEY,
    expires_at  TEXT NOT NULL
);

CREATE TABLE conversations (
    platform        TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    workspace       TEXT,
    reference       TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (platform, conversation_id)
);
CREATE INDEX conversations_workspace ON conversations (platform, workspace);

CREATE TABLE channel_settings (
    platform    TEXT NOT NULL,
    channel     TEXT NOT NULL,
    workspace   TEXT,
    timezone    TEXT NOT NULL DEFAULT 'Asia/Shanghai',
    watch       INTEGER NOT NULL DEFAULT 0,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (platform, channel)
);
CREATE INDEX channel_settings_workspace ON channel_settings (platform, workspace);
CREATE INDEX channel_settings_watch ON channel_settings (platform, watch);

CREATE TABLE tracked_deadlines (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    platform      TEXT NOT NULL,
    workspace     TEXT,
    channel       TEXT NOT NULL,
    topic         TEXT NOT NULL,
    start_value   TEXT NOT NULL,
    due_date      TEXT NOT NULL,
    note          TEXT,
    created_by    TEXT,
    created_at    TEXT NOT NULL,
    status        TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused')),
    paused_reason TEXT,
    paused_at     TEXT
);
CREATE INDEX tracked_deadlines_channel ON tracked_deadlines (platform, channel);
CREATE INDEX tracked_deadlines_workspace ON tracked_deadlines (platform, workspace);

CREATE TABLE subscriptions (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    platform           TEXT NOT NULL,
    workspace          TEXT,
    channel            TEXT NOT NULL,
    topic              TEXT NOT NULL,
    created_by         TEXT,
    created_at         TEXT NOT NULL,
    status             TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused')),
    paused_reason      TEXT,
    paused_at          TEXT,
    materialised_until TEXT,
    UNIQUE (platform, channel, topic)
);
CREATE INDEX subscriptions_workspace ON subscriptions (platform, workspace);
CREATE INDEX subscriptions_refresh ON subscriptions (status, materialised_until);

CREATE TABLE scheduled_posts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    key             TEXT NOT NULL UNIQUE,
    platform        TEXT NOT NULL,
    workspace       TEXT,
    channel         TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('deadline', 'event')),
    deadline_id     INTEGER REFERENCES tracked_deadlines (id) ON DELETE CASCADE,
    subscription_id INTEGER REFERENCES subscriptions (id) ON DELETE CASCADE,
    due_at          TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'claimed', 'posted', 'failed', 'paused', 'expired', 'skipped')),
    lease_until     TEXT,
    claim_token     TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    late            INTEGER NOT NULL DEFAULT 0,
    posted_ref      TEXT,
    posted_at       TEXT,
    last_error      TEXT,
    created_at      TEXT NOT NULL
);
CREATE INDEX scheduled_posts_due ON scheduled_posts (status, due_at);
CREATE INDEX scheduled_posts_channel ON scheduled_posts (platform, channel);
CREATE INDEX scheduled_posts_workspace ON scheduled_posts (platform, workspace);
CREATE INDEX scheduled_posts_deadline ON scheduled_posts (deadline_id);
CREATE INDEX scheduled_posts_subscription ON scheduled_posts (subscription_id);
