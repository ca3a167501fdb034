package transform

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/extract/cms"
)

// TestFinishedCallRowsGolden converts CDR objects (querycalldetailbyid) and
// listed calls (querycalls) to rows: direction, codes and labels, epoch-ms
// strings, local date-times in the tenant's zone, unknown and unparsable
// values reported.
func TestFinishedCallRowsGolden(t *testing.T) {
	t.Parallel()
	inputs, err := filepath.Glob(filepath.Join("testdata", "finished", "*.input.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) < 4 {
		t.Fatalf("found %d inputs, want at least 4", len(inputs))
	}
	for _, path := range inputs {
		name := strings.TrimSuffix(filepath.Base(path), ".input.json")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var in struct {
				Record  string          `json:"record"`
				Key     extract.Key     `json:"key"`
				Inbound bool            `json:"inbound"`
				Both    bool            `json:"bothDirections"`
				Zone    string          `json:"zone"`
				At      time.Time       `json:"fetchedAt"`
				RunID   string          `json:"runId"`
				Object  json.RawMessage `json:"object"`
			}
			if err := json.Unmarshal(data, &in); err != nil {
				t.Fatal(err)
			}
			var zone *time.Location
			if in.Zone != "" {
				if zone, err = time.LoadLocation(in.Zone); err != nil {
					t.Fatal(err)
				}
			}
			var out struct {
				Row      any       `json:"row"`
				Unknown  []Unknown `json:"unknown"`
				Problems []string  `json:"problems"`
			}
			switch in.Record {
			case "detail":
				rec, err := cms.DecodeCallDetail(in.Object)
				if err != nil {
					t.Fatal(err)
				}
				out.Row, out.Unknown = ToDetailRow(DetailInput{Key: in.Key, Record: rec, Raw: in.Object,
					Inbound: in.Inbound, Zone: zone, FetchedAt: in.At, RunID: in.RunID})
				out.Problems = rec.Problems
			case "listed":
				rec, err := cms.DecodeListedCall(in.Object)
				if err != nil {
					t.Fatal(err)
				}
				out.Row, out.Unknown = ToCallRecordRow(CallRecordInput{Key: in.Key, Record: rec, Raw: in.Object,
					Inbound: in.Inbound, BothDirections: in.Both, FetchedAt: in.At, RunID: in.RunID})
				out.Problems = rec.Problems
			default:
				t.Fatalf("record %q", in.Record)
			}
			got, err := json.MarshalIndent(out, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			goldenPath := strings.TrimSuffix(path, ".input.json") + ".golden.json"
			if *update {
				if err := os.WriteFile(goldenPath, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(goldenPath)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs:\n%s", goldenPath, got)
			}
		})
	}
}
