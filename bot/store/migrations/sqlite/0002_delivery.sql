-- Delivery that loses nothing and repeats nothing (issue 11). Additive: the previous release ignores these.

-- When the current (or last) claim of a post began, and the window of earlier tries that may have reached
-- the platform without an answer (a crash, a timeout, a 5xx): the Slack deliverer looks in that window
-- of channel history before posting again. NULL: no such try, post at once.
ALTER TABLE scheduled_posts ADD COLUMN claimed_at TEXT;
ALTER TABLE scheduled_posts ADD COLUMN unconfirmed_since TEXT;
ALTER TABLE scheduled_posts ADD COLUMN unconfirmed_until TEXT;

-- The answer of a state-changing command, kept beside its claim: the same request again gets it back
-- and changes nothing (handlers.router.run_once).
ALTER TABLE processed_events ADD COLUMN result TEXT;

-- The scheduler forgets tracked deadlines some time after they passed (see Store.purge_expired).
CREATE INDEX tracked_deadlines_due ON tracked_deadlines (due_date);
