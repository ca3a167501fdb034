package transform

import (
	"encoding/json"
	"time"
)

// Row is one output row: the same columns, names and meaning in Parquet and
// in cms.call_info. Pointer fields are nullable.
type Row struct {
	CCID             int32
	VDN              int32
	CallID           string
	CallStartedAt    *time.Time // from the callId prefix (13 digits = ms, 10 = s), UTC
	EnteredAt        *time.Time // from time (epoch ms), UTC
	DSN              *int64
	Handle           *int64
	Server           *int64
	KeyID            *string
	CallingNum       *string
	CalledNum        *string
	MID              *int64
	TrunkNo          *int64
	Priority         *int32
	DeviceType       *int32
	DeviceTypeLabel  *string
	DeviceNo         *int64
	CallSkill        *string
	PartyNum         *int32
	CallFeature      *int32
	CallFeatureLabel *string
	OrigCalledNum    *string
	MediaType        *int32
	MediaTypeLabel   *string
	Place            *int32
	WaitSeconds      *int64
	TalkSeconds      *int64
	LogonSeconds     *int64
	ServiceType      *int32
	CallInCause      *int32
	EnterReason      *int32
	EnterReasonLabel *string
	MediaBillType    *string
	FetchedAt        time.Time
	RunID            string

	// Raw is the result object as received; the warehouse stores it (jsonb).
	Raw json.RawMessage
}

// Columns lists the output columns in order (Parquet schema and Postgres).
var Columns = []string{
	"cc_id", "vdn", "call_id", "call_started_at", "entered_at", "dsn", "handle", "server", "key_id",
	"calling_num", "called_num", "mid", "trunk_no", "priority", "device_type", "device_type_label",
	"device_no", "call_skill", "party_num", "call_feature", "call_feature_label", "orig_called_num",
	"media_type", "media_type_label", "place", "wait_seconds", "talk_seconds", "logon_seconds",
	"service_type", "call_in_cause", "enter_reason", "enter_reason_label", "media_bill_type",
	"fetched_at", "run_id",
}
