-- Processes started with the same --rate-group share one --rate through
-- these two tables (package extract/pool/rategroup): each live member takes
-- rate * weight / sum(live weights), and a throttle event one member sees
-- cuts the rate of all. A member heartbeats every half second; one not seen
-- for a few seconds is out.
CREATE TABLE cms.rate_group (
    name       text PRIMARY KEY,
    cut_seq    bigint      NOT NULL DEFAULT 0,
    cut_at     timestamptz,
    cut_by     text,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE cms.rate_group_member (
    group_name text             NOT NULL REFERENCES cms.rate_group (name) ON DELETE CASCADE,
    member_id  text             NOT NULL,
    run_id     text,
    host       text,
    pid        integer,
    rate       double precision NOT NULL CONSTRAINT rate_group_member_rate_check CHECK (rate > 0),
    weight     double precision NOT NULL DEFAULT 1 CONSTRAINT rate_group_member_weight_check CHECK (weight > 0),
    joined_at  timestamptz      NOT NULL DEFAULT clock_timestamp(),
    seen_at    timestamptz      NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT rate_group_member_pkey PRIMARY KEY (group_name, member_id)
);

COMMENT ON TABLE cms.rate_group IS 'Groups of runs sharing one --rate (--rate-group), with the last throttle event that cut the rate of all members.';
COMMENT ON COLUMN cms.rate_group.name IS 'The --rate-group name.';
COMMENT ON COLUMN cms.rate_group.cut_seq IS 'Number of group-wide throttle events so far; members apply each new one once.';
COMMENT ON COLUMN cms.rate_group.cut_at IS 'When the last group-wide throttle event was recorded; another is recorded only after the cooldown.';
COMMENT ON COLUMN cms.rate_group.cut_by IS 'Member that recorded the last throttle event.';
COMMENT ON COLUMN cms.rate_group.created_at IS 'When the group was first used.';

COMMENT ON TABLE cms.rate_group_member IS 'Runs in a rate group. A member not seen for a few seconds is out; its row is removed when it leaves or a minute after it died.';
COMMENT ON COLUMN cms.rate_group_member.group_name IS 'The group (cms.rate_group.name).';
COMMENT ON COLUMN cms.rate_group_member.member_id IS 'The member: its run ID with a random suffix.';
COMMENT ON COLUMN cms.rate_group_member.run_id IS 'Run ID of the member (cms.etl_run.id when the run records itself).';
COMMENT ON COLUMN cms.rate_group_member.host IS 'Host the member runs on.';
COMMENT ON COLUMN cms.rate_group_member.pid IS 'Process ID of the member on its host.';
COMMENT ON COLUMN cms.rate_group_member.rate IS 'The member''s --rate; the group runs at the lowest among live members.';
COMMENT ON COLUMN cms.rate_group_member.weight IS 'The member''s weight: its share is rate * weight / sum of the live members'' weights.';
COMMENT ON COLUMN cms.rate_group_member.joined_at IS 'When the member joined (or rejoined after dropping out); it sends nothing until every other live member has been seen since.';
COMMENT ON COLUMN cms.rate_group_member.seen_at IS 'Last heartbeat.';
