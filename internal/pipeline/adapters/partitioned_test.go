package adapters

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/extract/cms"
	"github.com/cmsetl/cms-etl/extract/discover"
	"github.com/cmsetl/cms-etl/internal/pipeline"
	"github.com/cmsetl/cms-etl/load/parquet"
	"github.com/cmsetl/cms-etl/transform"
)

// listedItem is a discovered call waiting since waitBegin (zero: a row
// with no time at all, filed in the null partition).
func listedItem(t *testing.T, id string, waitBegin time.Time) pipeline.Item {
	t.Helper()
	raw := `{"callId":"` + id + `"`
	if !waitBegin.IsZero() {
		raw += `,"waitBegin":"` + strconv.FormatInt(waitBegin.UnixMilli(), 10) + `"`
	}
	raw += "}"
	rec, err := cms.DecodeListedCall([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	c := discover.Call{Key: extract.Key{CCID: 1, VDN: 25, CallID: id}, Inbound: true, Record: rec, Raw: []byte(raw), FetchedAt: waitBegin}
	return pipeline.Item{Key: c.Key, Inbound: true, Payload: c}
}

// The discovery's Parquet output finds a call in the partition its listing
// files it under, however far back: it reads a partition's committed keys
// when an item first names it, and no other partition.
func TestPartitionedParquetReadsThePartitionsItMeets(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	day := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	committed := []pipeline.Item{
		listedItem(t, "1764151200-25001", day.AddDate(0, 0, -10)), // a partition no item names
		listedItem(t, "1764151200-25002", day.AddDate(0, 0, -4)),  // a chat that waited four days
		listedItem(t, "1764151200-25003", day),
		listedItem(t, "1764151200-25004", time.Time{}), // no time: the null partition
	}
	sink, err := parquet.Open(t.Context(), parquet.Config{Dir: dir, RunID: "first"}, parquet.CallRecord)
	if err != nil {
		t.Fatal(err)
	}
	var rows []transform.CallRecordRow
	for _, it := range committed {
		c := it.Payload.(discover.Call)
		row, _ := transform.ToCallRecordRow(transform.CallRecordInput{Key: c.Key, Record: c.Record, Raw: c.Raw, Inbound: true, FetchedAt: day, RunID: "first"})
		rows = append(rows, row)
	}
	if _, err := (Parquet[transform.CallRecordRow]{sink}).Commit(t.Context(), rows); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(t.Context()); err != nil {
		t.Fatal(err)
	}

	sink, err = parquet.Open(t.Context(), parquet.Config{Dir: dir, RunID: "rerun"}, parquet.CallRecord)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close(context.WithoutCancel(t.Context()))
	out, closeKeys, err := NewPartitionedParquet(sink, dir, ListedPartition, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer closeKeys(t.Context())
	ask := []pipeline.Item{
		committed[1],
		listedItem(t, "1764151200-25005", day.AddDate(0, 0, -4)), // new, in the old partition
		committed[2],
		listedItem(t, "1764151200-25006", day.AddDate(0, 0, -20)), // new, a partition never written
		committed[3],
	}
	held, err := out.(pipeline.Holder).Holds(t.Context(), ask)
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{true, false, true, false, true}; !slices.Equal(held, want) {
		t.Errorf("held %v, want %v", held, want)
	}
	p := out.(*partitionedResume[transform.CallRecordRow])
	var read []string
	for part := range p.read {
		read = append(read, part)
	}
	slices.Sort(read)
	want := []string{"call_date=2026-11-11", "call_date=2026-11-27", "call_date=2026-12-01", "call_date=__HIVE_DEFAULT_PARTITION__"}
	if !slices.Equal(read, want) || p.keys.Len() != 3 {
		t.Errorf("partitions read %v holding %d keys; want %v holding 3 (not the partition of 2026-11-21)", read, p.keys.Len(), want)
	}
	if _, err := out.(pipeline.Holder).Holds(t.Context(), []pipeline.Item{{Key: committed[0].Key}}); err == nil {
		t.Error("an item without its listing: no error")
	}
}
