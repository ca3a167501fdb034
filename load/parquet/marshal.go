package parquet

import (
	"fmt"

	"github.com/xitongsys/parquet-go/common"
	"github.com/xitongsys/parquet-go/layout"
	"github.com/xitongsys/parquet-go/schema"
)

// numRecordColumns is the number of fields of record, all leaf columns.
const numRecordColumns = 35

// marshalRecords is the writer's MarshalFunc for records (held as recordRef). It fills the
// column tables field by field instead of walking every record by
// reflection as the library's Marshal does, which cost more than encoding
// and compressing the pages. A test holds its output equal to Marshal's.
func marshalRecords(objs []any, sh *schema.SchemaHandler) (*map[string]*layout.Table, error) {
	tables := make(map[string]*layout.Table, numRecordColumns)
	cols := make([]*layout.Table, 0, numRecordColumns)
	// Leaves come in schema order, which is record's field order.
	for i, el := range sh.SchemaElements {
		if el.GetNumChildren() != 0 {
			continue
		}
		path := sh.IndexMap[int32(i)]
		t := layout.NewEmptyTable()
		t.Path = common.StrToPath(path)
		t.MaxDefinitionLevel, _ = sh.MaxDefinitionLevel(t.Path)
		t.MaxRepetitionLevel, _ = sh.MaxRepetitionLevel(t.Path)
		t.RepetitionType = el.GetRepetitionType()
		t.Schema = sh.SchemaElements[sh.MapIndex[path]]
		t.Info = sh.Infos[i]
		t.Values = make([]any, 0, len(objs))
		t.DefinitionLevels = make([]int32, 0, len(objs))
		t.RepetitionLevels = make([]int32, 0, len(objs))
		tables[path] = t
		cols = append(cols, t)
	}
	if len(cols) != numRecordColumns {
		return nil, fmt.Errorf("marshal parquet records: schema has %d columns, want %d", len(cols), numRecordColumns)
	}
	// Labels, run_id and many codes repeat from row to row: reusing the
	// previous row's boxed value saves an allocation per cell.
	var last [numRecordColumns]boxed
	for _, o := range objs {
		ref, ok := o.(recordRef)
		if !ok {
			return nil, fmt.Errorf("marshal parquet records: got %T, want a recordRef", o)
		}
		r := &ref.p.rec
		c := cols
		required(c[0], r.CCID)
		required(c[1], r.VDN)
		requiredText(c[2], &last[2], r.CallID)
		optional(c[3], r.CallStartedAt)
		optional(c[4], r.EnteredAt)
		optional(c[5], r.DSN)
		optional(c[6], r.Handle)
		optional(c[7], r.Server)
		optionalText(c[8], &last[8], r.KeyID)
		optionalText(c[9], &last[9], r.CallingNum)
		optionalText(c[10], &last[10], r.CalledNum)
		optional(c[11], r.MID)
		optional(c[12], r.TrunkNo)
		optional(c[13], r.Priority)
		optional(c[14], r.DeviceType)
		optionalText(c[15], &last[15], r.DeviceTypeLabel)
		optional(c[16], r.DeviceNo)
		optionalText(c[17], &last[17], r.CallSkill)
		optional(c[18], r.PartyNum)
		optional(c[19], r.CallFeature)
		optionalText(c[20], &last[20], r.CallFeatureLabel)
		optionalText(c[21], &last[21], r.OrigCalledNum)
		optional(c[22], r.MediaType)
		optionalText(c[23], &last[23], r.MediaTypeLabel)
		optional(c[24], r.Place)
		optional(c[25], r.WaitSeconds)
		optional(c[26], r.TalkSeconds)
		optional(c[27], r.LogonSeconds)
		optional(c[28], r.ServiceType)
		optional(c[29], r.CallInCause)
		optional(c[30], r.EnterReason)
		optionalText(c[31], &last[31], r.EnterReasonLabel)
		optionalText(c[32], &last[32], r.MediaBillType)
		required(c[33], r.FetchedAt)
		requiredText(c[34], &last[34], r.RunID)
	}
	return &tables, nil
}

// appendCell adds one value to a column: v when present, else NULL. A
// required column's definition level is 0 either way.
func appendCell(t *layout.Table, v any, present bool) {
	if present {
		t.Values = append(t.Values, v)
		t.DefinitionLevels = append(t.DefinitionLevels, t.MaxDefinitionLevel)
	} else {
		t.Values = append(t.Values, nil)
		t.DefinitionLevels = append(t.DefinitionLevels, 0)
	}
	t.RepetitionLevels = append(t.RepetitionLevels, 0)
}

func required[T int32 | int64](t *layout.Table, v T) { appendCell(t, v, true) }

func optional[T int32 | int64](t *layout.Table, p *T) {
	if p == nil {
		appendCell(t, nil, false)
		return
	}
	appendCell(t, *p, true)
}

// boxed is a text value and the interface holding it.
type boxed struct {
	s string
	v any
}

func (b *boxed) box(s string) any {
	if b.v == nil || b.s != s {
		b.s, b.v = s, s
	}
	return b.v
}

func requiredText(t *layout.Table, last *boxed, v string) { appendCell(t, last.box(v), true) }

func optionalText(t *layout.Table, last *boxed, p *string) {
	if p == nil {
		appendCell(t, nil, false)
		return
	}
	appendCell(t, last.box(*p), true)
}
