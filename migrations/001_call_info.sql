-- The warehouse table of calls. Column names, types and meanings are a
-- contract shared with the Parquet output (transform.Columns): change them
-- only with a new migration and a note to analysts.
CREATE SCHEMA IF NOT EXISTS cms;
COMMENT ON SCHEMA cms IS 'Huawei CC-CMS call data loaded by cms-etl';

CREATE TABLE cms.call_info (
    cc_id              integer     NOT NULL,
    vdn                integer     NOT NULL,
    call_id            text        NOT NULL,
    call_started_at    timestamptz,
    entered_at         timestamptz,
    dsn                bigint,
    handle             bigint,
    server             bigint,
    key_id             text,
    calling_num        text,
    called_num         text,
    mid                bigint,
    trunk_no           bigint,
    priority           integer,
    device_type        integer,
    device_type_label  text,
    device_no          bigint,
    call_skill         text,
    party_num          integer,
    call_feature       integer,
    call_feature_label text,
    orig_called_num    text,
    media_type         integer,
    media_type_label   text,
    place              integer,
    wait_seconds       bigint,
    talk_seconds       bigint,
    logon_seconds      bigint,
    service_type       integer,
    call_in_cause      integer,
    enter_reason       integer,
    enter_reason_label text,
    media_bill_type    text,
    fetched_at         timestamptz NOT NULL,
    run_id             text        NOT NULL,
    raw                jsonb,
    first_fetched_at   timestamptz NOT NULL,
    CONSTRAINT call_info_pkey PRIMARY KEY (cc_id, vdn, call_id)
);

-- Analysts filter by time and by media type; the pair serves "voice calls
-- last week" without a bitmap AND of the two.
CREATE INDEX call_info_entered_at_idx ON cms.call_info (entered_at);
CREATE INDEX call_info_media_type_entered_at_idx ON cms.call_info (media_type, entered_at);

COMMENT ON TABLE cms.call_info IS
    'One row per call: the basic call information returned by CC-CMS querybasiccallinfo for (cc_id, vdn, call_id), normalized. Coded columns keep the raw code and add a stable *_label (see cms.media_type, cms.device_type, cms.call_feature, cms.enter_reason; a code missing from those tables gets the label ''unknown''). Re-fetching a call updates its row only when its data changed. Durations are in seconds, timestamps in UTC.';
COMMENT ON COLUMN cms.call_info.cc_id IS 'Call center ID (request field ccId, 1..65535).';
COMMENT ON COLUMN cms.call_info.vdn IS 'Virtual call center (VDN) ID (request field vdn, 1..5000).';
COMMENT ON COLUMN cms.call_info.call_id IS 'Call ID as sent in the request (callId): "call start time-call sequence", e.g. 1659513159000-546750.';
COMMENT ON COLUMN cms.call_info.call_started_at IS 'Call start time taken from the call_id prefix (13 digits = epoch milliseconds, 10 digits = epoch seconds), UTC. NULL when the prefix is not a time.';
COMMENT ON COLUMN cms.call_info.entered_at IS 'When the call entered the platform (field time, epoch milliseconds), UTC.';
COMMENT ON COLUMN cms.call_info.dsn IS 'Call task ID (field dsn).';
COMMENT ON COLUMN cms.call_info.handle IS 'Number of times the call''s control block was reused (field handle).';
COMMENT ON COLUMN cms.call_info.server IS 'Media server ID (field server).';
COMMENT ON COLUMN cms.call_info.key_id IS 'Unique call ID assigned by the platform (field keyId).';
COMMENT ON COLUMN cms.call_info.calling_num IS 'Calling number (field callingNum).';
COMMENT ON COLUMN cms.call_info.called_num IS 'Called number (field calledNum).';
COMMENT ON COLUMN cms.call_info.mid IS 'UAP module ID (field mid).';
COMMENT ON COLUMN cms.call_info.trunk_no IS 'Trunk ID (field trunkNo).';
COMMENT ON COLUMN cms.call_info.priority IS 'Customer level (field priority); no published code table.';
COMMENT ON COLUMN cms.call_info.device_type IS 'Type of the device handling the call (field deviceType), raw code; see cms.device_type.';
COMMENT ON COLUMN cms.call_info.device_type_label IS 'Stable label of device_type (cms.device_type.label); ''unknown'' for a code not in that table.';
COMMENT ON COLUMN cms.call_info.device_no IS 'ID of the device handling the call (field deviceNo): the agent ID for an agent, the queue ID for a skill queue or virtual device.';
COMMENT ON COLUMN cms.call_info.call_skill IS 'Skill queue description (field callSkill; documented as an integer, sent as text such as defaultAudioSkill).';
COMMENT ON COLUMN cms.call_info.party_num IS 'Number of devices on the call''s track (field partyNum).';
COMMENT ON COLUMN cms.call_info.call_feature IS 'Call feature (field callFeature), raw code; see cms.call_feature.';
COMMENT ON COLUMN cms.call_info.call_feature_label IS 'Stable label of call_feature (cms.call_feature.label); ''unknown'' for a code not in that table.';
COMMENT ON COLUMN cms.call_info.orig_called_num IS 'First called number when it changed before the call entered the platform (field orgiCalledNum, sic).';
COMMENT ON COLUMN cms.call_info.media_type IS 'Call media type (field mediaType), raw code; see cms.media_type.';
COMMENT ON COLUMN cms.call_info.media_type_label IS 'Stable label of media_type (cms.media_type.label); ''unknown'' for a code not in that table.';
COMMENT ON COLUMN cms.call_info.place IS 'Customer location / access place (field place); no published code table.';
COMMENT ON COLUMN cms.call_info.wait_seconds IS 'Time the call waited in queue, in seconds (field waitTime; unit as in the sibling detail API).';
COMMENT ON COLUMN cms.call_info.talk_seconds IS 'Talk duration in seconds (field totalTalkingTimes).';
COMMENT ON COLUMN cms.call_info.logon_seconds IS 'Total time since the call entered the platform, in seconds (field logonTimes).';
COMMENT ON COLUMN cms.call_info.service_type IS 'Business type (field serviceType); no published code table.';
COMMENT ON COLUMN cms.call_info.call_in_cause IS 'Reason for the inbound call (field callInCause); no published code table, 65535 appears to mean unset.';
COMMENT ON COLUMN cms.call_info.enter_reason IS 'Reason the call entered (or left) the device (field enterReason), raw code; see cms.enter_reason.';
COMMENT ON COLUMN cms.call_info.enter_reason_label IS 'Stable label of enter_reason (cms.enter_reason.label); ''unknown'' for a code not in that table.';
COMMENT ON COLUMN cms.call_info.media_bill_type IS 'Multimedia report type (field mediaBillType), as text.';
COMMENT ON COLUMN cms.call_info.fetched_at IS 'When the job last fetched the call data now in this row, UTC.';
COMMENT ON COLUMN cms.call_info.run_id IS 'ID of the run that last wrote this row (cms.etl_run.id).';
COMMENT ON COLUMN cms.call_info.raw IS 'The result object exactly as received from querybasiccallinfo; the typed columns are derived from it.';
COMMENT ON COLUMN cms.call_info.first_fetched_at IS 'When the job first stored this call, UTC; kept when the row is updated.';
