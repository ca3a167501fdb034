-- Live enrichment (issue 12): querybasiccallinfo answers only while a call is
-- in progress, so every cms.call_info row is a live answer. The row keeps the
-- latest answer; these columns say when the call was seen live and how often,
-- and cms.call_snapshot keeps the path of the call (IVR -> queue -> agent).
-- Rows stored before this migration were seen once, at the time they hold.
ALTER TABLE cms.call_info
    ADD COLUMN first_seen_live_at timestamptz,
    ADD COLUMN last_seen_live_at  timestamptz,
    ADD COLUMN snapshots          integer;
UPDATE cms.call_info SET first_seen_live_at = first_fetched_at, last_seen_live_at = fetched_at, snapshots = 1;
ALTER TABLE cms.call_info
    ALTER COLUMN first_seen_live_at SET NOT NULL,
    ALTER COLUMN last_seen_live_at SET NOT NULL,
    ALTER COLUMN snapshots SET NOT NULL;

COMMENT ON COLUMN cms.call_info.first_seen_live_at IS 'When CC-CMS first answered about the call while it was in progress (the fetched_at of the first stored answer), UTC.';
COMMENT ON COLUMN cms.call_info.last_seen_live_at IS 'The latest answer about the call while it was in progress, UTC: with tracking (etl run --track-every), the call ended between this and the next poll.';
COMMENT ON COLUMN cms.call_info.snapshots IS 'Number of live answers stored for the call: 1 without tracking; with tracking, one per poll that found the call in progress (an answer stored twice, e.g. a retried commit, counts once).';

-- One row per change of the call's device or state, the first answer
-- included, appended in the transaction that upserts cms.call_info.
CREATE TABLE cms.call_snapshot (
    cc_id              integer     NOT NULL,
    vdn                integer     NOT NULL,
    call_id            text        NOT NULL,
    seen_at            timestamptz NOT NULL,
    device_type        integer,
    device_type_label  text,
    device_no          bigint,
    wait_seconds       bigint,
    talk_seconds       bigint,
    logon_seconds      bigint,
    enter_reason       integer,
    enter_reason_label text,
    run_id             text        NOT NULL,
    CONSTRAINT call_snapshot_pkey PRIMARY KEY (cc_id, vdn, call_id, seen_at)
);
CREATE INDEX call_snapshot_seen_at_idx ON cms.call_snapshot (seen_at);

COMMENT ON TABLE cms.call_snapshot IS
    'The path of a call while it was in progress: one row for each answer of querybasiccallinfo that differed from the previous stored answer in device_type, device_no or enter_reason (the first answer included), e.g. IVR -> skill queue -> agent. Filled for every live answer; with tracking (etl run --track-every) a call is asked again until it ends, so the path is complete to within one poll interval.';
COMMENT ON COLUMN cms.call_snapshot.cc_id IS 'Call center ID (as cms.call_info.cc_id).';
COMMENT ON COLUMN cms.call_snapshot.vdn IS 'VDN ID (as cms.call_info.vdn).';
COMMENT ON COLUMN cms.call_snapshot.call_id IS 'Call ID (as cms.call_info.call_id).';
COMMENT ON COLUMN cms.call_snapshot.seen_at IS 'When the answer arrived (its cms.call_info.fetched_at), UTC.';
COMMENT ON COLUMN cms.call_snapshot.device_type IS 'Type of the device handling the call then (deviceType), raw code; see cms.device_type.';
COMMENT ON COLUMN cms.call_snapshot.device_type_label IS 'Stable label of device_type; ''unknown'' for a code not in cms.device_type.';
COMMENT ON COLUMN cms.call_snapshot.device_no IS 'ID of the device handling the call then (deviceNo): the IVR flow, the skill queue or the agent.';
COMMENT ON COLUMN cms.call_snapshot.wait_seconds IS 'Seconds the call had waited in queue by then (waitTime).';
COMMENT ON COLUMN cms.call_snapshot.talk_seconds IS 'Seconds the call had been talking by then (totalTalkingTimes).';
COMMENT ON COLUMN cms.call_snapshot.logon_seconds IS 'Seconds since the call entered, then (logonTimes).';
COMMENT ON COLUMN cms.call_snapshot.enter_reason IS 'Why the call entered that device (enterReason), raw code; see cms.enter_reason.';
COMMENT ON COLUMN cms.call_snapshot.enter_reason_label IS 'Stable label of enter_reason; ''unknown'' for a code not in cms.enter_reason.';
COMMENT ON COLUMN cms.call_snapshot.run_id IS 'The run that fetched the answer (cms.etl_run.id).';

-- A follower (etl run --follow) runs for days: its row is updated at every
-- commit, not only at the end.
ALTER TABLE cms.etl_run ADD COLUMN updated_at timestamptz;
COMMENT ON COLUMN cms.etl_run.updated_at IS 'When the run last updated its counts: at every commit, and at the end. A running row whose updated_at is old belongs to a run that is stuck or gone.';
