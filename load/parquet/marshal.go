package parquet

import (
	"fmt"

	"github.com/xitongsys/parquet-go/common"
	"github.com/xitongsys/parquet-go/layout"
	"github.com/xitongsys/parquet-go/schema"
)

// marshalRecords is the writer's MarshalFunc for the records of one table
// (each held as the table's generated reference type). It fills the column
// tables field by field instead of walking every record by reflection as the
// library's Marshal does, which cost more than encoding and compressing the
// pages. A test holds its output equal to Marshal's.
func marshalRecords[R any](t *Table[R], objs []any, sh *schema.SchemaHandler) (*map[string]*layout.Table, error) {
	numRecordColumns := t.columns
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
	last := make([]boxed, numRecordColumns)
	for _, o := range objs {
		if !t.marshalRow(cols, last, o) {
			return nil, fmt.Errorf("marshal parquet records of %s: got %T", t.Name, o)
		}
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

func required[T int32 | int64 | bool](t *layout.Table, v T) { appendCell(t, v, true) }

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
