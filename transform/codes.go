package transform

// Code is one entry of a code table: the raw integer, the stable label this
// project writes (lowercase snake_case, never translated or changed once
// shipped) and Huawei's meaning, for documentation and lookup tables.
type Code struct {
	Code        int32
	Label       string
	Description string
}

// UnknownLabel is the label of a code missing from its table.
const UnknownLabel = "unknown"

// The code tables of /work/shared/reference/codes.md, in code order. They are
// exported so that the warehouse's lookup tables (migrations/002_codes.sql)
// can be checked against the same data; treat them as read-only.
var (
	// MediaTypes labels mediaType. 23 (CLASSIC_MEDIA_TYPE_NUM) is a count,
	// not a media type, so it is deliberately absent: it labels as unknown.
	MediaTypes = []Code{
		{1, "text_chat", "MEDIA_TYPE_CHAT, text chat"},
		{2, "click_to_dial", "MEDIA_TYPE_WEBPHONE, click-to-dial"},
		{3, "escorted_browsing", "MEDIA_TYPE_ESCORT, escorted browsing / form sharing"},
		{4, "callback_request", "MEDIA_TYPE_CALLBACK, callback request call"},
		{5, "voice", "MEDIA_TYPE_PHONE, common voice call"},
		{6, "email", "MEDIA_TYPE_EMAIL, email call"},
		{7, "fax", "MEDIA_TYPE_FAX, fax call"},
		{8, "ip_video", "MEDIA_TYPE_VIDEO, IP (H.323) video call"},
		{9, "whiteboard", "MEDIA_TYPE_WB, electronic whiteboard"},
		{10, "app_sharing", "MEDIA_TYPE_APP_SHARE, application sharing"},
		{11, "file_transfer", "MEDIA_TYPE_FILE_TRANSFER, file transfer"},
		{12, "isdn_video_2b1d", "MEDIA_TYPE_VIDEO_2B1D, 2B+D ISDN video call"},
		{13, "isdn_video_6b1d", "MEDIA_TYPE_VIDEO_6B1D, 6B+D ISDN video call"},
		{14, "ops", "MEDIA_TYPE_OPS, OPS call"},
		{15, "predictive_outbound", "MEDIA_TYPE_PREDICT_OUTBOUND, predictive dialing"},
		{16, "preview_outbound", "MEDIA_TYPE_PREVIEW_OUTBOUND, preview dialing"},
		{17, "message", "MEDIA_TYPE_MSG, message media"},
		{18, "click_to_dial_video", "MEDIA_TYPE_WEBPHONE_VIDEO, video click-to-dial"},
		{19, "video", "MEDIA_TYPE_PHONE_VIDEO, video call"},
		{20, "web_leave_message", "MEDIA_TYPE_WEB_LEAVE_MESSAGE, non-real-time call"},
		{21, "desktop_sharing", "MEDIA_TYPE_DESKTOP_SHARE, desktop sharing"},
		{22, "vc_call", "MEDIA_TYPE_VC_CALL, calling number in a skill queue"},
		{50, "email_chat", "MEDIA_TYPE_MULTI_MEDIA_EMAILCHAT"},
		{51, "web_chat", "MEDIA_TYPE_MULTI_MEDIA_WEBCHAT"},
		{52, "sms_chat", "MEDIA_TYPE_MULTI_MEDIA_SMSCHAT"},
		{53, "social_chat", "MEDIA_TYPE_MULTI_MEDIA_SOCIALCHAT"},
		{54, "fax_chat", "MEDIA_TYPE_MULTI_MEDIA_FAXCHAT"},
		{55, "h5_video", "MEDIA_TYPE_MULTI_MEDIA_H5CHAT, H5 video"},
	}

	// DeviceTypes labels deviceType.
	DeviceTypes = []Code{
		{1, "skill_queue", "skill queue"},
		{2, "agent", "agent"},
		{3, "ivr", "IVR service flow"},
		{5, "call", "call (two parties talking inside the platform, e.g. on transfer-out)"},
		{7, "temporary_route", "temporary routing device"},
		{8, "virtual_device", "virtual device"},
		{10, "cdn", "CDN device"},
		{11, "melcas", "MELCAS device"},
		{14, "pgr", "PGR, default CDN route controlled by the SCAI"},
		{15, "conference", "conference call"},
	}

	// CallFeatures labels callFeature.
	CallFeatures = []Code{
		{0, "customer", "call from a common customer"},
		{1, "agent", "call from an agent / operator"},
		{2, "toll_customer", "toll call from a customer"},
		{3, "network_routed", "routing started after the CTI received a routed network call"},
		{4, "international_toll", "international inbound toll call"},
		{40, "reserved_outbound", "reserved (scheduled) outbound call"},
		{41, "preoccupied_outbound", "pre-occupied outbound call"},
		{42, "preconnected_outbound", "pre-connected outbound call"},
		{43, "predictive_outbound", "virtual inbound/outbound (predictive) call"},
		{44, "preview_outbound", "previewed outbound call"},
		{45, "callback_request", "callback request"},
		{51, "internal_help", "internal help call"},
	}

	// EnterReasons labels enterReason (Huawei's table "Reasons for Leaving
	// the Device of the Call", which querybasiccallinfo links to).
	EnterReasons = []Code{
		{0, "normal", "normal access / transfer"},
		{1, "overflow_transfer", "overflow (or busy) transfer"},
		{2, "timeout_transfer", "timeout transfer"},
		{3, "no_agent_on_duty", "transfer because no agent is on duty"},
		{4, "queue_cancel_transfer", "transfer on queue cancellation"},
		{5, "agent_no_answer_transfer", "agent did not answer for a long time"},
		{6, "resume_suspended", "resume a suspended call"},
		{7, "connect_held", "connect a held call"},
		{8, "three_party_help", "three-party help"},
		{9, "retrieve_held", "retrieve a held call"},
		{10, "three_party_conversation", "three-party conversation"},
		{11, "internal_help_released", "internal help; the requesting party released"},
		{12, "intercepted", "intercepted"},
		{13, "picked_up", "picked up (answered on behalf)"},
		{14, "called_number_unanalyzed", "called-number analysis not configured"},
		{15, "user_released", "user released"},
		{16, "agent_released", "agent released"},
		{17, "transferred_out", "transferred out"},
		{18, "held", "held"},
		{19, "internal_error", "internal processing error"},
		{20, "called_busy", "called party busy"},
		{22, "mobile_off", "mobile switched off"},
		{23, "mobile_out_of_service", "mobile out of service area"},
		{24, "number_not_exist", "number does not exist"},
		{25, "acd_no_resource", "ACD has no resources"},
		{26, "user_no_answer", "user does not answer"},
		{27, "called_rejected", "called party rejects"},
		{28, "queue_transfer_success", "successfully transferred to a queue"},
		{29, "three_party_queue_transfer", "three-party transferred to a queue"},
		{30, "queue_transfer_timeout", "success-mode transfer to queue timed out"},
		{31, "three_party_queue_timeout", "three-party transfer to queue timed out"},
		{34, "network_call_failed_queued", "timeout/overflow/busy: network call failed, queued"},
		{35, "network_call_returned", "network call returned to the original call center's queue"},
		{36, "queued_call_rerouted", "queued call rerouted"},
		{37, "cdn_from_inbound", "entered CDN from inbound routing"},
		{38, "cdn_from_consultation", "entered CDN from agent consultation"},
		{39, "cdn_route_result", "CDN returned a routing result"},
		{40, "cdn_route_timeout", "CDN routing timed out"},
		{41, "consultation_cancelled", "agent cancelled during consultation, or routing failed"},
		{42, "pgr_after_cdn_timeout", "entered PGR after CDN routing timeout"},
		{43, "pgr_after_cdn_result", "entered PGR after a normal CDN routing result"},
		{44, "pgr_from_inbound", "entered PGR from inbound routing"},
		{45, "pgr_from_consultation", "entered PGR from agent consultation"},
		{46, "agent_unreachable_cdn_reroute", "agent unreachable; CDN rerouting"},
		{47, "multi_queue", "call queued in multiple queues"},
		{48, "answered_from_secondary_queue", "main-queue call answered from a secondary queue"},
		{49, "agent_rejected_inbound", "agent rejected the inbound call (cancel)"},
		{50, "agent_rejected", "agent rejected the call"},
		{51, "joined_conference", "user call joined a conference"},
		{52, "conference_released", "chair released the conference, or a fault released it"},
		{53, "removed_from_conference", "participant removed from the conference"},
		{54, "low_connection_rate_transfer", "transfer because the connection rate is below a threshold"},
		{88, "user_hung_up_after_answer", "user hung up after the agent answered"},
		{89, "user_hung_up_before_answer", "user hung up before the agent answered"},
	}
)

// Lookups built once from the tables above, so the tables stay the single
// source of truth.
var (
	mediaTypeLabels   = labelMap(MediaTypes)
	deviceTypeLabels  = labelMap(DeviceTypes)
	callFeatureLabels = labelMap(CallFeatures)
	enterReasonLabels = labelMap(EnterReasons)
)

func labelMap(codes []Code) map[int32]string {
	m := make(map[int32]string, len(codes))
	for _, c := range codes {
		m[c.Code] = c.Label
	}
	return m
}

func lookup(m map[int32]string, code int32) (string, bool) {
	if l, ok := m[code]; ok {
		return l, true
	}
	return UnknownLabel, false
}

// MediaTypeLabel returns the label of a mediaType code; UnknownLabel and
// false for a code not in MediaTypes.
func MediaTypeLabel(code int32) (label string, known bool) { return lookup(mediaTypeLabels, code) }

// DeviceTypeLabel returns the label of a deviceType code; UnknownLabel and
// false for a code not in DeviceTypes.
func DeviceTypeLabel(code int32) (label string, known bool) { return lookup(deviceTypeLabels, code) }

// CallFeatureLabel returns the label of a callFeature code; UnknownLabel and
// false for a code not in CallFeatures.
func CallFeatureLabel(code int32) (label string, known bool) {
	return lookup(callFeatureLabels, code)
}

// EnterReasonLabel returns the label of an enterReason code; UnknownLabel and
// false for a code not in EnterReasons.
func EnterReasonLabel(code int32) (label string, known bool) {
	return lookup(enterReasonLabels, code)
}
