package parquet_test

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	pgo "github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/deprecated"

	pqsink "github.com/cmsetl/cms-etl/load/parquet"
	"github.com/cmsetl/cms-etl/transform"
)

const testRunID = "20261124T031500Z-ab12cd"

func ptr[T any](v T) *T { return &v }

var (
	fetchedAt = time.Date(2026, 11, 24, 3, 15, 0, 123456000, time.UTC)
	startedAt = time.Date(2026, 11, 23, 22, 59, 58, 0, time.UTC)
	// entered in UTC+8: 2026-11-24 07:00 local is 2026-11-23 23:00 UTC.
	enteredAt = time.Date(2026, 11, 24, 7, 0, 1, 250000000, time.FixedZone("CST", 8*3600))
)

// fullRow has every field set, each to a distinct value.
func fullRow(callID string) transform.Row {
	return transform.Row{
		CCID:             7,
		VDN:              42,
		CallID:           callID,
		CallStartedAt:    ptr(startedAt),
		EnteredAt:        ptr(enteredAt),
		DSN:              ptr(int64(1001)),
		Handle:           ptr(int64(1002)),
		Server:           ptr(int64(1003)),
		KeyID:            ptr("key-1"),
		CallingNum:       ptr("13800000001"),
		CalledNum:        ptr("95555"),
		MID:              ptr(int64(1004)),
		TrunkNo:          ptr(int64(1005)),
		Priority:         ptr(int32(3)),
		DeviceType:       ptr(int32(2)),
		DeviceTypeLabel:  ptr("agent"),
		DeviceNo:         ptr(int64(1006)),
		CallSkill:        ptr("skill, \"quoted\" \u4e2d\u6587"),
		PartyNum:         ptr(int32(4)),
		CallFeature:      ptr(int32(5)),
		CallFeatureLabel: ptr("inbound"),
		OrigCalledNum:    ptr("95556"),
		MediaType:        ptr(int32(6)),
		MediaTypeLabel:   ptr("voice"),
		Place:            ptr(int32(8)),
		WaitSeconds:      ptr(int64(9)),
		TalkSeconds:      ptr(int64(1 << 40)),
		LogonSeconds:     ptr(int64(-11)),
		ServiceType:      ptr(int32(12)),
		CallInCause:      ptr(int32(13)),
		EnterReason:      ptr(int32(14)),
		EnterReasonLabel: ptr("transfer"),
		MediaBillType:    ptr(""),
		FetchedAt:        fetchedAt,
		RunID:            testRunID,
		Raw:              []byte(`{"must":"not be written"}`),
	}
}

// fullRowValues is fullRow as read back: one entry per transform.Columns.
func fullRowValues(callID string) []any {
	return []any{
		int32(7), int32(42), callID, startedAt.UnixMicro(), enteredAt.UnixMicro(),
		int64(1001), int64(1002), int64(1003), "key-1", "13800000001", "95555",
		int64(1004), int64(1005), int32(3), int32(2), "agent", int64(1006),
		"skill, \"quoted\" \u4e2d\u6587", int32(4), int32(5), "inbound", "95556",
		int32(6), "voice", int32(8), int64(9), int64(1 << 40), int64(-11),
		int32(12), int32(13), int32(14), "transfer", "",
		fetchedAt.UnixMicro(), testRunID,
	}
}

// nullRow has only the required fields set.
func nullRow(callID string) transform.Row {
	return transform.Row{CCID: 65535, VDN: 5000, CallID: callID, FetchedAt: fetchedAt, RunID: testRunID}
}

func nullRowValues(callID string) []any {
	v := make([]any, len(transform.Columns))
	v[0], v[1], v[2] = int32(65535), int32(5000), callID
	v[len(v)-2], v[len(v)-1] = fetchedAt.UnixMicro(), testRunID
	return v
}

// rowAt returns a null row whose partition is decided by entered (nil: none).
func rowAt(callID string, entered *time.Time) transform.Row {
	r := nullRow(callID)
	r.EnteredAt = entered
	return r
}

func openSink(t testing.TB, dir string, mod ...func(*pqsink.Config)) *pqsink.Sink[transform.Row] {
	t.Helper()
	cfg := pqsink.Config{Dir: dir, RunID: testRunID}
	for _, m := range mod {
		m(&cfg)
	}
	s, err := pqsink.Open(t.Context(), cfg, pqsink.CallInfo)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(t.Context()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// openParquet opens path with the independent parquet-go reader.
func openParquet(t *testing.T, path string) *pgo.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	pf, err := pgo.OpenFile(f, st.Size())
	if err != nil {
		t.Fatalf("parquet-go cannot open %s: %v", path, err)
	}
	return pf
}

// readValues returns every row of f as Go values in column order: int32,
// int64, string, or nil for null.
func readValues(t *testing.T, f *pgo.File) [][]any {
	t.Helper()
	var out [][]any
	for _, rg := range f.RowGroups() {
		rows := rg.Rows()
		buf := make([]pgo.Row, 64)
		for {
			n, err := rows.ReadRows(buf)
			for _, r := range buf[:n] {
				vals := make([]any, len(r))
				for i, v := range r {
					if v.Column() != i {
						t.Fatalf("value %d belongs to column %d", i, v.Column())
					}
					switch {
					case v.IsNull():
						vals[i] = nil
					case v.Kind() == pgo.Int32:
						vals[i] = v.Int32()
					case v.Kind() == pgo.Int64:
						vals[i] = v.Int64()
					case v.Kind() == pgo.ByteArray:
						vals[i] = string(v.ByteArray())
					case v.Kind() == pgo.Boolean:
						vals[i] = v.Boolean()
					default:
						t.Fatalf("column %d: unexpected kind %v", i, v.Kind())
					}
				}
				out = append(out, vals)
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("read rows: %v", err)
			}
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// describeSchema renders the file's schema elements as the footer stores
// them, plus the codec of every column chunk: the golden-file view of "what
// an independent reader sees".
func describeSchema(f *pgo.File) string {
	md := f.Metadata()
	var b strings.Builder
	for _, el := range md.Schema[1:] {
		typ, _ := el.Type.Get()
		rep, _ := el.RepetitionType.Get()
		conv := "-"
		if ct, ok := el.ConvertedType.Get(); ok {
			switch ct {
			case deprecated.UTF8:
				conv = "UTF8"
			case deprecated.TimestampMicros:
				conv = "TIMESTAMP_MICROS"
			default:
				conv = fmt.Sprint(int32(ct))
			}
		}
		logical := el.LogicalType.String()
		if logical == "" {
			logical = "-"
		}
		fmt.Fprintf(&b, "%-20s %-10s %-8s converted=%-16s logical=%s\n", el.Name, typ, rep, conv, logical)
	}
	codecs := map[string]bool{}
	for _, rg := range md.RowGroups {
		for _, c := range rg.Columns {
			codecs[c.MetaData.Codec.String()] = true
		}
	}
	var names []string
	for c := range codecs {
		names = append(names, c)
	}
	slices.Sort(names)
	fmt.Fprintf(&b, "codecs: %s\n", strings.Join(names, ","))
	return b.String()
}

func columnNames(f *pgo.File) []string {
	var names []string
	for _, fl := range f.Schema().Fields() {
		names = append(names, fl.Name())
	}
	return names
}

// listFiles returns the paths under dir relative to it, sorted, skipping the
// lock file.
func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || d.Name() == ".etl.lock" || d.Name() == ".etl-dataset" {
			return nil
		}
		rel, err := filepath.Rel(dir, path)
		out = append(out, filepath.ToSlash(rel))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}
