package parquet

import "time"

// recordCopy is a record and the values it points to in one allocation.
type recordCopy struct {
	rec   record
	cells cells
}

// recordRef is what the writer holds per row. Being pointer-shaped, it is
// stored in an interface without another allocation and copy of the record.
type recordRef struct{ p *recordCopy }

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
