-- Finished calls (issue 13): the calls a VDN listed through querycalls v2
-- (cms.call_record) and their CDRs from querycalldetailbyid
-- (cms.call_detail), with the lookup tables of their codes. Column names,
-- types and order follow internal/recordspec (ListedCall, CallDetail); a
-- test checks them against it.
CREATE TABLE cms.call_record (
    cc_id                integer     NOT NULL,
    vdn                  integer     NOT NULL,
    call_id              text        NOT NULL,
    is_call_in           boolean     NOT NULL,
    log_date             timestamptz,
    caller_no            text,
    callee_no            text,
    call_type            integer,
    call_type_label      text,
    wait_begin           timestamptz,
    ack_begin            timestamptz,
    call_begin           timestamptz,
    call_end             timestamptz,
    leave_reason         integer,
    leave_reason_label   text,
    media_type           integer,
    media_type_label     text,
    sub_media_type       integer,
    sub_media_type_label text,
    fetched_at           timestamptz NOT NULL,
    run_id               text        NOT NULL,
    raw                  jsonb,
    CONSTRAINT call_record_pkey PRIMARY KEY (cc_id, vdn, call_id)
);
CREATE INDEX call_record_wait_begin_idx ON cms.call_record (wait_begin);

COMMENT ON TABLE cms.call_record IS
    'One row per finished call of a VDN, as listed by CC-CMS querycalls v2 (etl discover). Coded columns keep the raw code and add a stable *_label (see cms.call_type, cms.leave_reason, cms.media_type, cms.sub_media_type). Timestamps in UTC. Join cms.call_detail on (cc_id, vdn, call_id) for agent, durations and release cause.';
COMMENT ON COLUMN cms.call_record.cc_id IS 'Call center ID (ccId of the request).';
COMMENT ON COLUMN cms.call_record.vdn IS 'VDN ID (vdn of the request).';
COMMENT ON COLUMN cms.call_record.call_id IS 'Call ID (callId).';
COMMENT ON COLUMN cms.call_record.is_call_in IS 'true when listed by the inbound pass (isCallIn "true"), false by the outbound pass.';
COMMENT ON COLUMN cms.call_record.log_date IS 'When CC-CMS stored the record (logDate, epoch ms), UTC.';
COMMENT ON COLUMN cms.call_record.caller_no IS 'Calling number (callerNo).';
COMMENT ON COLUMN cms.call_record.callee_no IS 'Called number (calleeNo).';
COMMENT ON COLUMN cms.call_record.call_type IS 'Call type (callType), raw code; see cms.call_type.';
COMMENT ON COLUMN cms.call_record.call_type_label IS 'Stable label of call_type (cms.call_type.label); ''unknown'' for a code not in that table.';
COMMENT ON COLUMN cms.call_record.wait_begin IS 'When the call started waiting (waitBegin), UTC.';
COMMENT ON COLUMN cms.call_record.ack_begin IS 'When the call was answered (ackBegin), UTC; NULL when never answered.';
COMMENT ON COLUMN cms.call_record.call_begin IS 'When the talk started (callBegin), UTC.';
COMMENT ON COLUMN cms.call_record.call_end IS 'When the talk ended (callEnd), UTC.';
COMMENT ON COLUMN cms.call_record.leave_reason IS 'Reason the call left the device (leaveReason), raw code; see cms.leave_reason.';
COMMENT ON COLUMN cms.call_record.leave_reason_label IS 'Stable label of leave_reason (cms.leave_reason.label); ''unknown'' for a code not in that table.';
COMMENT ON COLUMN cms.call_record.media_type IS 'Media type (mediaType), raw code; see cms.media_type.';
COMMENT ON COLUMN cms.call_record.media_type_label IS 'Stable label of media_type (cms.media_type.label); ''unknown'' for a code not in that table.';
COMMENT ON COLUMN cms.call_record.sub_media_type IS 'Sub-media type (subMediaType, for social chat), raw code; see cms.sub_media_type.';
COMMENT ON COLUMN cms.call_record.sub_media_type_label IS 'Stable label of sub_media_type (cms.sub_media_type.label); ''unknown'' for a code not in that table.';
COMMENT ON COLUMN cms.call_record.fetched_at IS 'When the job listed the call, UTC.';
COMMENT ON COLUMN cms.call_record.run_id IS 'ID of the run that last wrote this row (cms.etl_run.id).';
COMMENT ON COLUMN cms.call_record.raw IS 'The data row exactly as received from querycalls.';

CREATE TABLE cms.call_detail (
    cc_id               integer     NOT NULL,
    vdn                 integer     NOT NULL,
    call_id             text        NOT NULL,
    is_call_in          boolean     NOT NULL,
    call_started_at     timestamptz,
    caller_no           text,
    callee_no           text,
    call_type           integer,
    call_type_label     text,
    agent_id            bigint,
    skill_id            bigint,
    anony_call          integer,
    queue_wait_seconds  bigint,
    ivr_call_seconds    bigint,
    ack_seconds         bigint,
    call_seconds        bigint,
    release_cause       integer,
    release_cause_label text,
    begin_time          timestamptz,
    end_time            timestamptz,
    result              text,
    result_code         text,
    busi_result         text,
    busi_sub_status     text,
    fetched_at          timestamptz NOT NULL,
    run_id              text        NOT NULL,
    raw                 jsonb,
    CONSTRAINT call_detail_pkey PRIMARY KEY (cc_id, vdn, call_id)
);
CREATE INDEX call_detail_agent_id_idx ON cms.call_detail (agent_id);

COMMENT ON TABLE cms.call_detail IS
    'One row per finished call: its CDR from CC-CMS querycalldetailbyid (etl run --query cdr). Durations in seconds, timestamps in UTC. result, result_code, busi_result and busi_sub_status are the outbound call''s results, not the API''s envelope.';
COMMENT ON COLUMN cms.call_detail.cc_id IS 'Call center ID (ccId).';
COMMENT ON COLUMN cms.call_detail.vdn IS 'VDN ID of the queued or input key (the request has no vdn).';
COMMENT ON COLUMN cms.call_detail.call_id IS 'Call ID (callId).';
COMMENT ON COLUMN cms.call_detail.is_call_in IS 'The direction asked (isCallin): true = inbound.';
COMMENT ON COLUMN cms.call_detail.call_started_at IS 'Call start time from the call_id prefix (10 digits = epoch seconds, 13 = ms), UTC.';
COMMENT ON COLUMN cms.call_detail.caller_no IS 'Calling number (callerNo).';
COMMENT ON COLUMN cms.call_detail.callee_no IS 'Called number (calleeNo).';
COMMENT ON COLUMN cms.call_detail.call_type IS 'Call type (callType), raw code; see cms.call_type.';
COMMENT ON COLUMN cms.call_detail.call_type_label IS 'Stable label of call_type (cms.call_type.label); ''unknown'' for a code not in that table.';
COMMENT ON COLUMN cms.call_detail.agent_id IS 'Agent ID (agentId).';
COMMENT ON COLUMN cms.call_detail.skill_id IS 'Skill queue ID (skillId).';
COMMENT ON COLUMN cms.call_detail.anony_call IS 'Anonymous-call flag (anonyCall), inbound calls only; no published code table.';
COMMENT ON COLUMN cms.call_detail.queue_wait_seconds IS 'Queue wait duration in seconds (queueWaitTime).';
COMMENT ON COLUMN cms.call_detail.ivr_call_seconds IS 'IVR talk duration in seconds (ivrCallTime).';
COMMENT ON COLUMN cms.call_detail.ack_seconds IS 'Answer duration in seconds (ackTime).';
COMMENT ON COLUMN cms.call_detail.call_seconds IS 'Talk duration in seconds (callTime).';
COMMENT ON COLUMN cms.call_detail.release_cause IS 'Release cause (releaseCause), raw code; see cms.release_cause.';
COMMENT ON COLUMN cms.call_detail.release_cause_label IS 'Stable label of release_cause (cms.release_cause.label); ''unknown'' for a code not in that table (the published table is partial).';
COMMENT ON COLUMN cms.call_detail.begin_time IS 'Outbound predictive and pre-occupied calls only: start (beginTime, written in the tenant''s zone), UTC.';
COMMENT ON COLUMN cms.call_detail.end_time IS 'Outbound predictive and pre-occupied calls only: end (endTime, written in the tenant''s zone), UTC.';
COMMENT ON COLUMN cms.call_detail.result IS 'Outbound only: call result (result of the CDR object, e.g. 0000, 0101).';
COMMENT ON COLUMN cms.call_detail.result_code IS 'Outbound only: displayed call result code (resultCode of the CDR object).';
COMMENT ON COLUMN cms.call_detail.busi_result IS 'Outbound only: business result code (busiResult).';
COMMENT ON COLUMN cms.call_detail.busi_sub_status IS 'Outbound only: business result sub-status (busiSubStatus).';
COMMENT ON COLUMN cms.call_detail.fetched_at IS 'When the job fetched the CDR, UTC.';
COMMENT ON COLUMN cms.call_detail.run_id IS 'ID of the run that last wrote this row (cms.etl_run.id).';
COMMENT ON COLUMN cms.call_detail.raw IS 'The CDR object exactly as received from querycalldetailbyid.';

-- Code tables of the new codes (cms-discovery.md section 4). leave_reason
-- is the same Huawei table as enter_reason.
CREATE TABLE cms.call_type (LIKE cms.media_type INCLUDING ALL);
CREATE TABLE cms.leave_reason (LIKE cms.media_type INCLUDING ALL);
CREATE TABLE cms.sub_media_type (LIKE cms.media_type INCLUDING ALL);
CREATE TABLE cms.release_cause (LIKE cms.media_type INCLUDING ALL);

COMMENT ON TABLE cms.call_type IS 'Call types (callType; Huawei "Call Type" and "Description of Call Types", which agree where both define a code).';
COMMENT ON TABLE cms.leave_reason IS 'Reasons a call left a device (leaveReason; Huawei "Reasons for Leaving the Device of the Call", the table of cms.enter_reason).';
COMMENT ON TABLE cms.sub_media_type IS 'Sub-media types of social chat (subMediaType; Huawei "Description of Call Submedia Types", 2025 numbering: older platforms number 7-9 as 5G message, email, SMS).';
COMMENT ON TABLE cms.release_cause IS 'Call release causes (releaseCause; the part of Huawei "Call release cause codes" table 1 that is published; other codes are labelled unknown).';
COMMENT ON COLUMN cms.call_type.code IS 'Code as sent by CC-CMS (call_type columns).';
COMMENT ON COLUMN cms.call_type.label IS 'Stable lowercase label written to the call_type_label columns.';
COMMENT ON COLUMN cms.call_type.description IS 'Huawei''s constant and meaning.';
COMMENT ON COLUMN cms.leave_reason.code IS 'Code as sent by CC-CMS (cms.call_record.leave_reason).';
COMMENT ON COLUMN cms.leave_reason.label IS 'Stable lowercase label written to cms.call_record.leave_reason_label.';
COMMENT ON COLUMN cms.leave_reason.description IS 'Huawei''s meaning.';
COMMENT ON COLUMN cms.sub_media_type.code IS 'Code as sent by CC-CMS (cms.call_record.sub_media_type).';
COMMENT ON COLUMN cms.sub_media_type.label IS 'Stable lowercase label written to cms.call_record.sub_media_type_label.';
COMMENT ON COLUMN cms.sub_media_type.description IS 'Huawei''s meaning.';
COMMENT ON COLUMN cms.release_cause.code IS 'Code as sent by CC-CMS (cms.call_detail.release_cause).';
COMMENT ON COLUMN cms.release_cause.label IS 'Stable lowercase label written to cms.call_detail.release_cause_label.';
COMMENT ON COLUMN cms.release_cause.description IS 'Huawei''s meaning.';

-- call_type
INSERT INTO cms.call_type (code, label, description) VALUES
  (0, 'normal_inbound', 'SP_CALL_NORMAL, common inbound call'),
  (1, 'special_inbound', 'SP_CALL_SPECIAL, special inbound call'),
  (2, 'vms_get_voice_message', 'KE11_CALL, VMS call: get voice message'),
  (3, 'vms_delete_voice_message', 'KE15_CALL, VMS call: delete voice message'),
  (4, 'vms_send_to_bp', 'BP_CALL, VMS call: send to BP'),
  (5, 'toll_inbound', 'SP_CALL_LONG, toll inbound call'),
  (6, 'internal', 'INTER_CALL, internal call, agent to agent'),
  (7, 'normal_outbound', 'SP_CALL_OUT, common outbound call (usually manual)'),
  (8, 'agent_outbound', 'OP_CALL_OUT, agent outbound call'),
  (9, 'pri_outbound', 'OP_PRI_OUT, PRI outbound call'),
  (10, 'ivr_outbound', 'IVR_CALL_OUT, IVR outbound call'),
  (11, 'phone_agent_outbound', 'SELF_CALLOUT, a phone agent''s own outbound call'),
  (12, 'ivr_pri_outbound', 'IVR_PRI_CALL, IVR PRI outbound call'),
  (13, 'network_inbound', 'NIRC_CALL_IN, networked call center inbound call'),
  (14, 'network_outbound', 'NIRC_CALL_OUT, networked call center outbound call'),
  (15, 'network_qc_inbound', 'NIRC_SPY_CALL_IN, networked call center quality-check inbound call'),
  (16, 'network_qc_outbound', 'NIRC_SPY_CALL_OUT, networked call center quality-check outbound call'),
  (17, 'network_virtual_agent_inbound', 'NIRC_INTER_CALL_IN, network inbound call to a virtual agent'),
  (18, 'network_virtual_agent_outbound', 'NIRC_INTER_CALL_OUT, network outbound call from a virtual agent'),
  (20, 'operator_aid', 'ICD_SP_OPS_AIDERCALL, aid call'),
  (21, 'operator_incoming', 'ICD_SP_OPS_INCALL, incoming call (international operator)'),
  (22, 'operator_relay', 'ICD_SP_OPS_PASSCALL, relay or deferred call'),
  (23, 'operator_outgoing', 'ICD_SP_OPS_GIVECALL, outgoing call (international operator)'),
  (30, 'video_inbound', 'ICD_SP_VCP_ISDNCALL_IN, video inbound call'),
  (31, 'video_outbound', 'ICD_SP_VCP_ISDNCALL_OUT, video outbound call'),
  (32, 'video_2bd_virtual_inbound', 'ICD_SP_VCP_VIRTUALCALL_IN_2BD, video 2B+D virtual inbound call'),
  (33, 'video_6bd_virtual_inbound', 'ICD_SP_VCP_VIRTUALCALL_IN_6BD, video 6B+D virtual inbound call'),
  (34, 'video_2bd_virtual_outbound', 'ICD_SP_VCP_VIRTUALCALL_OUT_2BD, video 2B+D virtual outbound call'),
  (35, 'video_6bd_virtual_outbound', 'ICD_SP_VCP_VIRTUALCALL_OUT_6BD, video 6B+D virtual outbound call'),
  (40, 'reserved_outbound', 'OUTBOUND_CALL_OUT, reserved (scheduled) outbound call'),
  (41, 'preoccupied_outbound', 'pre-occupied outbound call'),
  (43, 'predictive_outbound', 'predictive outbound call'),
  (44, 'preview_outbound', 'preview outbound call'),
  (45, 'reserved_callback', 'reserved callback'),
  (51, 'internal_two_party_consultation', 'internal two-party consultation'),
  (52, 'internal_three_party_consultation', 'internal three-party consultation'),
  (53, 'multi_party', 'multi-party call');

-- leave_reason: the enter_reason table, copied (one Huawei table).
INSERT INTO cms.leave_reason (code, label, description)
    SELECT code, label, description FROM cms.enter_reason;

-- sub_media_type
INSERT INTO cms.sub_media_type (code, label, description) VALUES
  (1, 'web', 'WEB'),
  (2, 'whatsapp', 'WhatsApp'),
  (3, 'line', 'Line'),
  (4, 'wechat', 'WeChat'),
  (5, 'facebook_messenger', 'Facebook Messenger'),
  (6, 'twitter', 'Twitter'),
  (7, 'email', 'Email (5G message on older platform versions)'),
  (8, 'sms', 'SMS (Email on older platform versions)'),
  (9, 'telegram', 'Telegram (SMS on older platform versions)'),
  (10, 'instagram', 'Instagram');

-- release_cause
INSERT INTO cms.release_cause (code, label, description) VALUES
  (0, 'normal_release', 'flow released the line; normal release'),
  (1, 'resources_full', 'resources fully occupied'),
  (2, 'agent_polling_timeout', 'CCACS detected an agent-side polling timeout'),
  (3, 'abnormal_release', 'abnormal release (other causes)'),
  (4, 'number_not_exist', 'number does not exist'),
  (5, 'mailbox_full_or_suspended', 'mailbox full or suspended'),
  (6, 'mailbox_inbound_not_allowed', 'inbound to mailbox not allowed'),
  (7, 'connection_failed', 'connection failed'),
  (8, 'callee_no_answer', 'callee did not answer'),
  (9, 'callee_rejected', 'callee rejected'),
  (10, 'callee_out_of_service', 'callee out of service area'),
  (11, 'line_busy', 'line busy; CTI-IVR link fully disconnected'),
  (12, 'ccs_disconnected', 'CCS disconnected, DR handling'),
  (13, 'vms_fatal_error', 'VMS fatal error'),
  (14, 'resource_operation_release', 'abnormal resource operation release'),
  (47, 'callee_busy', 'callee busy'),
  (48, 'phone_off', 'phone switched off'),
  (49, 'user_released_before_answer', 'user released before answer'),
  (50, 'insufficient_balance', 'insufficient balance'),
  (59, 'parameter_error', 'parameter error'),
  (60, 'file_not_found', 'announcement or script file not found'),
  (61, 'operation_conflict', 'operation conflict'),
  (62, 'service_type_not_supported', 'service type not supported'),
  (63, 'system_internal_fault', 'system internal fault'),
  (80, 'user_cancelled_queuing', 'user cancelled queuing'),
  (251, 'vsp_unavailable', 'start of VSP-side release causes; VSPCOMM unavailable'),
  (252, 'vsp_rating_failed', 'VSPCOMM rating failed'),
  (253, 'vsp_charging_failed', 'VSPCOMM charging failed'),
  (254, 'vsp_other_release', 'VSPCOMM released for other reasons'),
  (256, 'ivr_normal_release', 'CCIVR/IVR normal release'),
  (257, 'insufficient_resources', 'insufficient resources'),
  (258, 'general_timeout', 'general timeout'),
  (263, 'ivr_connection_failed', 'CCIVR/IVR release: connection failed'),
  (338, 'ivr_flow_not_found', 'CCIVR/IVR release: flow not found or flow parse error'),
  (339, 'ivr_control_blocks_exhausted', 'CCIVR/IVR release: control blocks exhausted'),
  (340, 'ivr_wrong_script_type', 'CCIVR/IVR release: wrong MRF script type'),
  (342, 'ivr_bad_conference_name', 'CCIVR/IVR release: bad conference name'),
  (343, 'ctis_callidinfo_timeout', 'timeout waiting for CTIS CallIDInfo'),
  (344, 'ctis_notify_timeout', 'timeout waiting for CTIS Notify'),
  (345, 'ctis_answerack_timeout', 'timeout waiting for CTIS AnswerAck'),
  (346, 'ivr_callee_offhook_timeout', 'CCIVR/IVR release: timeout waiting for the callee''s off-hook'),
  (347, 'ctis_subscribe_timeout', 'timeout waiting for CTIS Subscribe_NotifyRsp'),
  (348, 'ctis_script_failed', 'CTIS failed to run the script'),
  (349, 'service_start_ack_timeout', 'timeout waiting for the service module''s ServiceStartAck'),
  (350, 'ivr_service_answer_timeout', 'CCIVR/IVR release: timeout waiting for the service module to answer'),
  (351, 'service_call_answer_timeout', 'timeout waiting for the service module to answer the call'),
  (352, 'service_subscribe_timeout', 'timeout waiting for the service module''s SubscribeRsp'),
  (353, 'mscml_transfer_timeout', 'timeout waiting for the MSCML transferscript response'),
  (354, 'ivr_handshake_timeout', 'CCIVR/IVR release: handshake with CTIServer timed out'),
  (356, 'ivr_outbound_timeout', 'CCIVR/IVR release: CCIVR outbound timed out'),
  (357, 'ivr_connect_failed', 'CCIVR/IVR release: IVR failed to connect two calls'),
  (359, 'ivr_max_talk_exceeded', 'CCIVR/IVR release: maximum talk duration exceeded');
