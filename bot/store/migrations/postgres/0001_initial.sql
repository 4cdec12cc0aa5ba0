-- China Desk storage, PostgreSQL. Timestamps are timestamptz (UTC on the wire), payloads jsonb.

CREATE TABLE processed_events (
    key         text PRIMARY KEY,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX processed_events_expires ON processed_events (expires_at);

CREATE TABLE feedback (
    id          bigserial PRIMARY KEY,
    platform    text NOT NULL,
    workspace   text,
    channel     text,
    user_id     text,
    message_ref text,
    topic       text,
    vote        text NOT NULL CHECK (vote IN ('up', 'down')),
    question    text,
    created_at  timestamptz NOT NULL
);
CREATE INDEX feedback_platform ON feedback (platform, created_at);
CREATE INDEX feedback_workspace ON feedback (platform, workspace);

CREATE TABLE installations (
    platform    text NOT NULL,
    workspace   text NOT NULL,
    data        jsonb NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (platform, workspace)
);

CREATE TABLE oauth_states (
    state       text PRIMARY KEY,
    expires_at  timestamptz NOT NULL
);

CREATE TABLE conversations (
    platform        text NOT NULL,
    conversation_id text NOT NULL,
    workspace       text,
    reference       jsonb NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (platform, conversation_id)
);
CREATE INDEX conversations_workspace ON conversations (platform, workspace);

CREATE TABLE channel_settings (
    platform    text NOT NULL,
    channel     text NOT NULL,
    workspace   text,
    timezone    text NOT NULL DEFAULT 'Asia/Shanghai',
    watch       boolean NOT NULL DEFAULT false,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (platform, channel)
);
CREATE INDEX channel_settings_workspace ON channel_settings (platform, workspace);
CREATE INDEX channel_settings_watch ON channel_settings (platform, watch) WHERE watch;

CREATE TABLE tracked_deadlines (
    id            bigserial PRIMARY KEY,
    platform      text NOT NULL,
    workspace     text,
    channel       text NOT NULL,
    topic         text NOT NULL,
    start_value   text NOT NULL,         -- ISO date or date-time, as the user gave it
    due_date      date NOT NULL,
    note          text,
    created_by    text,
    created_at    timestamptz NOT NULL,
    status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused')),
    paused_reason text,
    paused_at     timestamptz
);
CREATE INDEX tracked_deadlines_channel ON tracked_deadlines (platform, channel);
CREATE INDEX tracked_deadlines_workspace ON tracked_deadlines (platform, workspace);

CREATE TABLE subscriptions (
    id                 bigserial PRIMARY KEY,
    platform           text NOT NULL,
    workspace          text,
    channel            text NOT NULL,
    topic              text NOT NULL,      -- a topic id, or 'all'
    created_by         text,
    created_at         timestamptz NOT NULL,
    status             text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused')),
    paused_reason      text,
    paused_at          timestamptz,
    materialised_until timestamptz,         -- event posts exist up to here
    UNIQUE (platform, channel, topic)
);
CREATE INDEX subscriptions_workspace ON subscriptions (platform, workspace);
CREATE INDEX subscriptions_refresh ON subscriptions (status, materialised_until);

CREATE TABLE scheduled_posts (
    id              bigserial PRIMARY KEY,
    key             text NOT NULL UNIQUE,   -- re-materialising the same post is a no-op
    platform        text NOT NULL,
    workspace       text,
    channel         text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('deadline', 'event')),
    deadline_id     bigint REFERENCES tracked_deadlines (id) ON DELETE CASCADE,
    subscription_id bigint REFERENCES subscriptions (id) ON DELETE CASCADE,
    due_at          timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,   -- after this the post is pointless (deadline passed)
    payload         jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'claimed', 'posted', 'failed', 'paused', 'expired', 'skipped')),
    lease_until     timestamptz,            -- claimed: lease end; pending: not before (retry back-off)
    claim_token     text,
    attempts        integer NOT NULL DEFAULT 0,
    late            boolean NOT NULL DEFAULT false,
    posted_ref      text,                   -- Slack ts / Teams activity id once acknowledged
    posted_at       timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL
);
-- A scheduler pass reads only due rows: its cost follows the number due, not the number stored.
CREATE INDEX scheduled_posts_due ON scheduled_posts (status, due_at);
CREATE INDEX scheduled_posts_channel ON scheduled_posts (platform, channel);
CREATE INDEX scheduled_posts_workspace ON scheduled_posts (platform, workspace);
CREATE INDEX scheduled_posts_deadline ON scheduled_posts (deadline_id);
CREATE INDEX scheduled_posts_subscription ON scheduled_posts (subscription_id);
