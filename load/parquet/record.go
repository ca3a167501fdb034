package parquet

import (
	"time"

	"github.com/cmsetl/cms-etl/transform"
)

// record is the on-disk shape of transform.Row. The tags are spelled the way
// independent readers (DuckDB, Arrow, Spark) understand them (go-notes.md):
// strings BYTE_ARRAY+UTF8, timestamps INT64 TIMESTAMP_MICROS adjusted to UTC,
// pointer fields OPTIONAL. Columns follow transform.Columns (a test checks
// the order); Raw is deliberately absent.
type record struct {
	CCID             int32   `parquet:"name=cc_id, type=INT32, repetitiontype=REQUIRED"`
	VDN              int32   `parquet:"name=vdn, type=INT32, repetitiontype=REQUIRED"`
	CallID           string  `parquet:"name=call_id, type=BYTE_ARRAY, convertedtype=UTF8, repetitiontype=REQUIRED"`
	CallStartedAt    *int64  `parquet:"name=call_started_at, type=INT64, convertedtype=TIMESTAMP_MICROS, isadjustedtoutc=true, repetitiontype=OPTIONAL"`
	EnteredAt        *int64  `parquet:"name=entered_at, type=INT64, convertedtype=TIMESTAMP_MICROS, isadjustedtoutc=true, repetitiontype=OPTIONAL"`
	DSN              *int64  `parquet:"name=dsn, type=INT64, repetitiontype=OPTIONAL"`
	Handle           *int64  `parquet:"name=handle, type=INT64, repetitiontype=OPTIONAL"`
	Server           *int64  `parquet:"name=server, type=INT64, repetitiontype=OPTIONAL"`
	KeyID            *string `parquet:"name=key_id, type=BYTE_ARRAY, convertedtype=UTF8, repetitiontype=OPTIONAL"`
	CallingNum       *string `parquet:"name=calling_num, type=BYTE_ARRAY, convertedtype=UTF8, repetitiontype=OPTIONAL"`
	CalledNum        *string `parquet:"name=called_num, type=BYTE_ARRAY, convertedtype=UTF8, repetitiontype=OPTIONAL"`
	MID              *int64  `parquet:"name=mid, type=INT64, repetitiontype=OPTIONAL"`
	TrunkNo          *int64  `parquet:"name=trunk_no, type=INT64, repetitiontype=OPTIONAL"`
	Priority         *int32  `parquet:"name=priority, type=INT32, repetitiontype=OPTIONAL"`
	DeviceType       *int32  `parquet:"name=device_type, type=INT32, repetitiontype=OPTIONAL"`
	DeviceTypeLabel  *string `parquet:"name=device_type_label, type=BYTE_ARRAY, convertedtype=UTF8, repetitiontype=OPTIONAL"`
	DeviceNo         *int64  `parquet:"name=device_no, type=INT64, repetitiontype=OPTIONAL"`
	CallSkill        *string `parquet:"name=call_skill, type=BYTE_ARRAY, convertedtype=UTF8, repetitiontype=OPTIONAL"`
	PartyNum         *int32  `parquet:"name=party_num, type=INT32, repetitiontype=OPTIONAL"`
	CallFeature      *int32  `parquet:"name=call_feature, type=INT32, repetitiontype=OPTIONAL"`
	CallFeatureLabel *string `parquet:"name=call_feature_label, type=BYTE_ARRAY, convertedtype=UTF8, repetitiontype=OPTIONAL"`
	OrigCalledNum    *string `parquet:"name=orig_called_num, type=BYTE_ARRAY, convertedtype=UTF8, repetitiontype=OPTIONAL"`
	MediaType        *int32  `parquet:"name=media_type, type=INT32, repetitiontype=OPTIONAL"`
	MediaTypeLabel   *string `parquet:"name=media_type_label, type=BYTE_ARRAY, convertedtype=UTF8, repetitiontype=OPTIONAL"`
	Place            *int32  `parquet:"name=place, type=INT32, repetitiontype=OPTIONAL"`
	WaitSeconds      *int64  `parquet:"name=wait_seconds, type=INT64, repetitiontype=OPTIONAL"`
	TalkSeconds      *int64  `parquet:"name=talk_seconds, type=INT64, repetitiontype=OPTIONAL"`
	LogonSeconds     *int64  `parquet:"name=logon_seconds, type=INT64, repetitiontype=OPTIONAL"`
	ServiceType      *int32  `parquet:"name=service_type, type=INT32, repetitiontype=OPTIONAL"`
	CallInCause      *int32  `parquet:"name=call_in_cause, type=INT32, repetitiontype=OPTIONAL"`
	EnterReason      *int32  `parquet:"name=enter_reason, type=INT32, repetitiontype=OPTIONAL"`
	EnterReasonLabel *string `parquet:"name=enter_reason_label, type=BYTE_ARRAY, convertedtype=UTF8, repetitiontype=OPTIONAL"`
	MediaBillType    *string `parquet:"name=media_bill_type, type=BYTE_ARRAY, convertedtype=UTF8, repetitiontype=OPTIONAL"`
	FetchedAt        int64   `parquet:"name=fetched_at, type=INT64, convertedtype=TIMESTAMP_MICROS, isadjustedtoutc=true, repetitiontype=REQUIRED"`
	RunID            string  `parquet:"name=run_id, type=BYTE_ARRAY, convertedtype=UTF8, repetitiontype=REQUIRED"`
}

// cells holds copies of one row's nullable values. The parquet writer keeps
// records until it encodes a page, so their pointers must not alias the
// caller's rows, which the caller may reuse once Write returns.
type cells struct {
	i64 [11]int64
	i32 [9]int32
	str [10]string
}

// recordCopy is a record and the values it points to in one allocation.
type recordCopy struct {
	rec   record
	cells cells
}

// recordRef is what the writer holds per row. Being pointer-shaped, it is
// stored in an interface without another allocation and copy of the record.
type recordRef struct{ p *recordCopy }

// cellAlloc hands out the slots of one cells value in order.
type cellAlloc struct {
	c            *cells
	n64, n32, ns int
}

// copyInto copies *p into the next of slots (counted by n); nil stays nil.
func copyInto[T any](slots []T, n *int, p *T) *T {
	if p == nil {
		return nil
	}
	v := &slots[*n]
	*n++
	*v = *p
	return v
}

func (a *cellAlloc) int64(p *int64) *int64    { return copyInto(a.c.i64[:], &a.n64, p) }
func (a *cellAlloc) int32(p *int32) *int32    { return copyInto(a.c.i32[:], &a.n32, p) }
func (a *cellAlloc) string(p *string) *string { return copyInto(a.c.str[:], &a.ns, p) }

func (a *cellAlloc) time(t *time.Time) *int64 {
	if t == nil {
		return nil
	}
	us := t.UnixMicro() // microseconds since the epoch: UTC by definition
	return a.int64(&us)
}

// toRecord converts r, copying its nullable values into c.
func toRecord(r *transform.Row, c *cells) record {
	a := cellAlloc{c: c}
	return record{
		CCID:             r.CCID,
		VDN:              r.VDN,
		CallID:           r.CallID,
		CallStartedAt:    a.time(r.CallStartedAt),
		EnteredAt:        a.time(r.EnteredAt),
		DSN:              a.int64(r.DSN),
		Handle:           a.int64(r.Handle),
		Server:           a.int64(r.Server),
		KeyID:            a.string(r.KeyID),
		CallingNum:       a.string(r.CallingNum),
		CalledNum:        a.string(r.CalledNum),
		MID:              a.int64(r.MID),
		TrunkNo:          a.int64(r.TrunkNo),
		Priority:         a.int32(r.Priority),
		DeviceType:       a.int32(r.DeviceType),
		DeviceTypeLabel:  a.string(r.DeviceTypeLabel),
		DeviceNo:         a.int64(r.DeviceNo),
		CallSkill:        a.string(r.CallSkill),
		PartyNum:         a.int32(r.PartyNum),
		CallFeature:      a.int32(r.CallFeature),
		CallFeatureLabel: a.string(r.CallFeatureLabel),
		OrigCalledNum:    a.string(r.OrigCalledNum),
		MediaType:        a.int32(r.MediaType),
		MediaTypeLabel:   a.string(r.MediaTypeLabel),
		Place:            a.int32(r.Place),
		WaitSeconds:      a.int64(r.WaitSeconds),
		TalkSeconds:      a.int64(r.TalkSeconds),
		LogonSeconds:     a.int64(r.LogonSeconds),
		ServiceType:      a.int32(r.ServiceType),
		CallInCause:      a.int32(r.CallInCause),
		EnterReason:      a.int32(r.EnterReason),
		EnterReasonLabel: a.string(r.EnterReasonLabel),
		MediaBillType:    a.string(r.MediaBillType),
		FetchedAt:        r.FetchedAt.UTC().UnixMicro(),
		RunID:            r.RunID,
	}
}

// Partition directory names. Hive's spelling of the null partition lets
// Spark, Athena and DuckDB read rows without a date as call_date = NULL.
const (
	partitionPrefix   = "call_date="
	nullPartition     = partitionPrefix + "__HIVE_DEFAULT_PARTITION__"
	partitionDateForm = "2006-01-02"
)

// PartitionFor returns the partition directory of r: the UTC date of
// EnteredAt, else of CallStartedAt, else Hive's null partition.
func PartitionFor(r *transform.Row) string {
	t := r.EnteredAt
	if t == nil {
		t = r.CallStartedAt
	}
	if t == nil {
		return nullPartition
	}
	return partitionPrefix + t.UTC().Format(partitionDateForm)
}
