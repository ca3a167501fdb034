package parquet

import (
	"time"

	"github.com/xitongsys/parquet-go/layout"
)

// Table is the Parquet shape of one row type R, generated from its
// declaration (records_gen.go: CallInfo, CallDetail, CallRecord). A
// directory holds one table's dataset.
type Table[R any] struct {
	// Name is the dataset's name, the same as its warehouse table.
	Name string

	newRecord func() any // a zero record, for the writer's schema
	columns   int        // leaf columns of the record
	// hold copies r into the value the writer keeps until the file is done:
	// a pointer-shaped reference to the record and the cells it points to,
	// stored in an interface without another allocation.
	hold func(r *R) any
	// marshalRow appends the cells of one held value to the column tables;
	// false when obj is not this table's.
	marshalRow func(cols []*layout.Table, last []boxed, obj any) bool
	// record returns the record a held value refers to, for the test that
	// holds marshalRow equal to the library's reflection-based Marshal.
	record func(held any) any
	// partition names r's partition directory.
	partition func(r *R) string
}

// Partition returns r's partition directory (call_date=YYYY-MM-DD, or
// Hive's null partition).
func (t *Table[R]) Partition(r *R) string { return t.partition(r) }

// cellAlloc hands out the slots of one cells value in order: the slices'
// capacity is the generated cells' arrays, sized to the record, so the
// pointers stay valid.
type cellAlloc struct {
	i64 []int64
	i32 []int32
	str []string
}

// copyInto copies *p into the next slot of *slots; nil stays nil.
func copyInto[T any](slots *[]T, p *T) *T {
	if p == nil {
		return nil
	}
	*slots = append(*slots, *p)
	return &(*slots)[len(*slots)-1]
}

func (a *cellAlloc) int64(p *int64) *int64    { return copyInto(&a.i64, p) }
func (a *cellAlloc) int32(p *int32) *int32    { return copyInto(&a.i32, p) }
func (a *cellAlloc) string(p *string) *string { return copyInto(&a.str, p) }

func (a *cellAlloc) time(t *time.Time) *int64 {
	if t == nil {
		return nil
	}
	us := t.UnixMicro() // microseconds since the epoch: UTC by definition
	return a.int64(&us)
}

// Partition directory names. Hive's spelling of the null partition lets
// Spark, Athena and DuckDB read rows without a date as call_date = NULL.
const (
	partitionPrefix   = "call_date="
	nullPartition     = partitionPrefix + "__HIVE_DEFAULT_PARTITION__"
	partitionDateForm = "2006-01-02"
)

// partitionOf names the partition of a row whose partitioning time is t
// (nil: Hive's null partition).
func partitionOf(t *time.Time) string {
	if t == nil {
		return nullPartition
	}
	return partitionPrefix + t.UTC().Format(partitionDateForm)
}
