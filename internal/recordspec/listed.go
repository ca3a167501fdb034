package recordspec

// ListedCall is one row of querycalls v2's data array, a finished call of a
// VDN (cms-discovery.md section 1.6), and the row of cms.call_record and the
// call_record Parquet dataset. The sample sends most numbers as strings.
var ListedCall = Record{
	Names: Names{
		Record: "ListedCall", Decode: "DecodeListedCall",
		Row: "CallRecordRow", Input: "CallRecordInput", ToRow: "ToCallRecordRow", Columns: "CallRecordColumns",
		Ident: "listed",
	},
	Table:    "call_record",
	Endpoint: "/rest/cmsapp/v2/openapi/vdn/querycalls",
	Fields: []Field{
		{API: "logDate", Go: "LogDate", Kind: Int, Doc: "epoch ms the record was stored"},
		{API: "callerNo", Go: "CallerNo", Kind: Text, Doc: "calling number"},
		{API: "calleeNo", Go: "CalleeNo", Kind: Text, Doc: "called number"},
		{API: "callId", Go: "CallID", Kind: Text, Doc: "call id"},
		{API: "callType", Go: "CallType", Kind: Int, Doc: "call type"},
		{API: "waitBegin", Go: "WaitBegin", Kind: Int, Doc: "epoch ms the call started waiting"},
		{API: "ackBegin", Go: "AckBegin", Kind: Int, Doc: "epoch ms the call was answered"},
		{API: "callBegin", Go: "CallBegin", Kind: Int, Doc: "epoch ms the talk started"},
		{API: "callEnd", Go: "CallEnd", Kind: Int, Doc: "epoch ms the talk ended"},
		{API: "vdn", Go: "VDN", Kind: Int, Doc: "VDN of the call"},
		{API: "leaveReason", Go: "LeaveReason", Kind: Int, Doc: "reason the call left the device"},
		{API: "mediaType", Go: "MediaType", Kind: Int, Doc: "media type"},
		{API: "subMediaType", Go: "SubMediaType", Kind: Int, Doc: "sub-media type (social media)"},
	},
	Columns: []Column{
		{Name: "cc_id", Go: "CCID", Type: Int32, Conv: KeyCCID, Required: true},
		{Name: "vdn", Go: "VDN", Type: Int32, Conv: KeyVDN, Required: true},
		{Name: "call_id", Go: "CallID", Type: String, Conv: KeyCallID, Required: true},
		{Name: "is_call_in", Go: "IsCallIn", Type: Bool, Conv: Direction, Required: true, Doc: "listed by the inbound (true) or outbound pass; true when both listed it"},
		{Name: "listed_both_directions", Go: "ListedBothDirections", Type: Bool, Conv: BothDirections, Required: true, Appended: true,
			Doc: "listed by both the inbound and the outbound pass (kept once, as inbound)"},
		{Name: "log_date", Go: "LogDate", Type: Timestamp, Conv: EpochMillis, Field: "LogDate", Doc: "when CC-CMS stored the record, UTC"},
		{Name: "caller_no", Go: "CallerNo", Type: String, Conv: Copy, Field: "CallerNo"},
		{Name: "callee_no", Go: "CalleeNo", Type: String, Conv: Copy, Field: "CalleeNo"},
		{Name: "call_type", Go: "CallType", Type: Int32, Conv: Coded, Field: "CallType", Codes: "CallType"},
		{Name: "wait_begin", Go: "WaitBegin", Type: Timestamp, Conv: EpochMillis, Field: "WaitBegin", Doc: "when the call started waiting, UTC"},
		{Name: "ack_begin", Go: "AckBegin", Type: Timestamp, Conv: EpochMillis, Field: "AckBegin", Doc: "when the call was answered, UTC"},
		{Name: "call_begin", Go: "CallBegin", Type: Timestamp, Conv: EpochMillis, Field: "CallBegin", Doc: "when the talk started, UTC"},
		{Name: "call_end", Go: "CallEnd", Type: Timestamp, Conv: EpochMillis, Field: "CallEnd", Doc: "when the talk ended, UTC"},
		{Name: "leave_reason", Go: "LeaveReason", Type: Int32, Conv: Coded, Field: "LeaveReason", Codes: "LeaveReason"},
		{Name: "media_type", Go: "MediaType", Type: Int32, Conv: Coded, Field: "MediaType", Codes: "MediaType"},
		{Name: "sub_media_type", Go: "SubMediaType", Type: Int32, Conv: Coded, Field: "SubMediaType", Codes: "SubMediaType"},
		{Name: "fetched_at", Go: "FetchedAt", Type: Timestamp, Conv: FetchedAt, Required: true},
		{Name: "run_id", Go: "RunID", Type: String, Conv: RunID, Required: true},
	},
	PartitionBy: []string{"WaitBegin", "CallBegin", "LogDate"},
	StoresRaw:   true,
}
