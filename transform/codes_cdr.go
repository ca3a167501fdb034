package transform

// Code tables of the finished-call interfaces (querycalls, querycalldetailbyid;
// cms-discovery.md section 4), in code order. Like the tables in codes.go
// they are the single source of the labels and of the warehouse's lookup
// tables (migrations); treat them as read-only.
var (
	// CallTypes labels callType. Two Huawei tables are referenced: the
	// monitoring appendix "Call Type" (querycalldetailbyid) and the CTI
	// "Description of Call Types" (querycalls). Where both define a code
	// they agree (0, 6, 7, 40), so one table holds the union. Codes above
	// 40 are only read from the first table.
	CallTypes = []Code{
		{0, "normal_inbound", "SP_CALL_NORMAL, common inbound call"},
		{1, "special_inbound", "SP_CALL_SPECIAL, special inbound call"},
		{2, "vms_get_voice_message", "KE11_CALL, VMS call: get voice message"},
		{3, "vms_delete_voice_message", "KE15_CALL, VMS call: delete voice message"},
		{4, "vms_send_to_bp", "BP_CALL, VMS call: send to BP"},
		{5, "toll_inbound", "SP_CALL_LONG, toll inbound call"},
		{6, "internal", "INTER_CALL, internal call, agent to agent"},
		{7, "normal_outbound", "SP_CALL_OUT, common outbound call (usually manual)"},
		{8, "agent_outbound", "OP_CALL_OUT, agent outbound call"},
		{9, "pri_outbound", "OP_PRI_OUT, PRI outbound call"},
		{10, "ivr_outbound", "IVR_CALL_OUT, IVR outbound call"},
		{11, "phone_agent_outbound", "SELF_CALLOUT, a phone agent's own outbound call"},
		{12, "ivr_pri_outbound", "IVR_PRI_CALL, IVR PRI outbound call"},
		{13, "network_inbound", "NIRC_CALL_IN, networked call center inbound call"},
		{14, "network_outbound", "NIRC_CALL_OUT, networked call center outbound call"},
		{15, "network_qc_inbound", "NIRC_SPY_CALL_IN, networked call center quality-check inbound call"},
		{16, "network_qc_outbound", "NIRC_SPY_CALL_OUT, networked call center quality-check outbound call"},
		{17, "network_virtual_agent_inbound", "NIRC_INTER_CALL_IN, network inbound call to a virtual agent"},
		{18, "network_virtual_agent_outbound", "NIRC_INTER_CALL_OUT, network outbound call from a virtual agent"},
		{20, "operator_aid", "ICD_SP_OPS_AIDERCALL, aid call"},
		{21, "operator_incoming", "ICD_SP_OPS_INCALL, incoming call (international operator)"},
		{22, "operator_relay", "ICD_SP_OPS_PASSCALL, relay or deferred call"},
		{23, "operator_outgoing", "ICD_SP_OPS_GIVECALL, outgoing call (international operator)"},
		{30, "video_inbound", "ICD_SP_VCP_ISDNCALL_IN, video inbound call"},
		{31, "video_outbound", "ICD_SP_VCP_ISDNCALL_OUT, video outbound call"},
		{32, "video_2bd_virtual_inbound", "ICD_SP_VCP_VIRTUALCALL_IN_2BD, video 2B+D virtual inbound call"},
		{33, "video_6bd_virtual_inbound", "ICD_SP_VCP_VIRTUALCALL_IN_6BD, video 6B+D virtual inbound call"},
		{34, "video_2bd_virtual_outbound", "ICD_SP_VCP_VIRTUALCALL_OUT_2BD, video 2B+D virtual outbound call"},
		{35, "video_6bd_virtual_outbound", "ICD_SP_VCP_VIRTUALCALL_OUT_6BD, video 6B+D virtual outbound call"},
		{40, "reserved_outbound", "OUTBOUND_CALL_OUT, reserved (scheduled) outbound call"},
		{41, "preoccupied_outbound", "pre-occupied outbound call"},
		{43, "predictive_outbound", "predictive outbound call"},
		{44, "preview_outbound", "preview outbound call"},
		{45, "reserved_callback", "reserved callback"},
		{51, "internal_two_party_consultation", "internal two-party consultation"},
		{52, "internal_three_party_consultation", "internal three-party consultation"},
		{53, "multi_party", "multi-party call"},
	}

	// LeaveReasons labels leaveReason: the same Huawei table as enterReason
	// ("Reasons for Leaving the Device of the Call").
	LeaveReasons = EnterReasons

	// SubMediaTypes labels subMediaType (mediaType 53, social chat), per the
	// current Huawei table (2025-11-13). Older platform versions number
	// 7-9 differently (5G message, email, SMS): see the README.
	SubMediaTypes = []Code{
		{1, "web", "WEB"},
		{2, "whatsapp", "WhatsApp"},
		{3, "line", "Line"},
		{4, "wechat", "WeChat"},
		{5, "facebook_messenger", "Facebook Messenger"},
		{6, "twitter", "Twitter"},
		{7, "email", "Email (5G message on older platform versions)"},
		{8, "sms", "SMS (Email on older platform versions)"},
		{9, "telegram", "Telegram (SMS on older platform versions)"},
		{10, "instagram", "Instagram"},
	}

	// ReleaseCauses labels releaseCause: the codes of Huawei's "Call release
	// cause codes" table 1 that could be read; every other code is unknown
	// until the full table is obtained.
	ReleaseCauses = []Code{
		{0, "normal_release", "flow released the line; normal release"},
		{1, "resources_full", "resources fully occupied"},
		{2, "agent_polling_timeout", "CCACS detected an agent-side polling timeout"},
		{3, "abnormal_release", "abnormal release (other causes)"},
		{4, "number_not_exist", "number does not exist"},
		{5, "mailbox_full_or_suspended", "mailbox full or suspended"},
		{6, "mailbox_inbound_not_allowed", "inbound to mailbox not allowed"},
		{7, "connection_failed", "connection failed"},
		{8, "callee_no_answer", "callee did not answer"},
		{9, "callee_rejected", "callee rejected"},
		{10, "callee_out_of_service", "callee out of service area"},
		{11, "line_busy", "line busy; CTI-IVR link fully disconnected"},
		{12, "ccs_disconnected", "CCS disconnected, DR handling"},
		{13, "vms_fatal_error", "VMS fatal error"},
		{14, "resource_operation_release", "abnormal resource operation release"},
		{47, "callee_busy", "callee busy"},
		{48, "phone_off", "phone switched off"},
		{49, "user_released_before_answer", "user released before answer"},
		{50, "insufficient_balance", "insufficient balance"},
		{59, "parameter_error", "parameter error"},
		{60, "file_not_found", "announcement or script file not found"},
		{61, "operation_conflict", "operation conflict"},
		{62, "service_type_not_supported", "service type not supported"},
		{63, "system_internal_fault", "system internal fault"},
		{80, "user_cancelled_queuing", "user cancelled queuing"},
		{251, "vsp_unavailable", "start of VSP-side release causes; VSPCOMM unavailable"},
		{252, "vsp_rating_failed", "VSPCOMM rating failed"},
		{253, "vsp_charging_failed", "VSPCOMM charging failed"},
		{254, "vsp_other_release", "VSPCOMM released for other reasons"},
		{256, "ivr_normal_release", "CCIVR/IVR normal release"},
		{257, "insufficient_resources", "insufficient resources"},
		{258, "general_timeout", "general timeout"},
		{263, "ivr_connection_failed", "CCIVR/IVR release: connection failed"},
		{338, "ivr_flow_not_found", "CCIVR/IVR release: flow not found or flow parse error"},
		{339, "ivr_control_blocks_exhausted", "CCIVR/IVR release: control blocks exhausted"},
		{340, "ivr_wrong_script_type", "CCIVR/IVR release: wrong MRF script type"},
		{342, "ivr_bad_conference_name", "CCIVR/IVR release: bad conference name"},
		{343, "ctis_callidinfo_timeout", "timeout waiting for CTIS CallIDInfo"},
		{344, "ctis_notify_timeout", "timeout waiting for CTIS Notify"},
		{345, "ctis_answerack_timeout", "timeout waiting for CTIS AnswerAck"},
		{346, "ivr_callee_offhook_timeout", "CCIVR/IVR release: timeout waiting for the callee's off-hook"},
		{347, "ctis_subscribe_timeout", "timeout waiting for CTIS Subscribe_NotifyRsp"},
		{348, "ctis_script_failed", "CTIS failed to run the script"},
		{349, "service_start_ack_timeout", "timeout waiting for the service module's ServiceStartAck"},
		{350, "ivr_service_answer_timeout", "CCIVR/IVR release: timeout waiting for the service module to answer"},
		{351, "service_call_answer_timeout", "timeout waiting for the service module to answer the call"},
		{352, "service_subscribe_timeout", "timeout waiting for the service module's SubscribeRsp"},
		{353, "mscml_transfer_timeout", "timeout waiting for the MSCML transferscript response"},
		{354, "ivr_handshake_timeout", "CCIVR/IVR release: handshake with CTIServer timed out"},
		{356, "ivr_outbound_timeout", "CCIVR/IVR release: CCIVR outbound timed out"},
		{357, "ivr_connect_failed", "CCIVR/IVR release: IVR failed to connect two calls"},
		{359, "ivr_max_talk_exceeded", "CCIVR/IVR release: maximum talk duration exceeded"},
	}
)

var (
	callTypeLabels     = labelMap(CallTypes)
	subMediaTypeLabels = labelMap(SubMediaTypes)
	releaseCauseLabels = labelMap(ReleaseCauses)
)

// CallTypeLabel returns the label of a callType code; UnknownLabel and false
// for a code not in CallTypes.
func CallTypeLabel(code int32) (label string, known bool) { return lookup(callTypeLabels, code) }

// LeaveReasonLabel returns the label of a leaveReason code; UnknownLabel and
// false for a code not in LeaveReasons.
func LeaveReasonLabel(code int32) (label string, known bool) { return lookup(enterReasonLabels, code) }

// SubMediaTypeLabel returns the label of a subMediaType code; UnknownLabel
// and false for a code not in SubMediaTypes.
func SubMediaTypeLabel(code int32) (label string, known bool) {
	return lookup(subMediaTypeLabels, code)
}

// ReleaseCauseLabel returns the label of a releaseCause code; UnknownLabel
// and false for a code not in ReleaseCauses.
func ReleaseCauseLabel(code int32) (label string, known bool) {
	return lookup(releaseCauseLabels, code)
}
