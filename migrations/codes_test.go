package migrations_test

import (
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/cmsetl/cms-etl/transform"
)

// TestCodeTablesMatchTransform: the warehouse's lookup tables hold exactly
// the codes, labels and descriptions transform writes.
func TestCodeTablesMatchTransform(t *testing.T) {
	t.Parallel()
	conn := migrated(t)
	tests := []struct {
		table string
		want  []transform.Code
	}{
		{"cms.media_type", transform.MediaTypes},
		{"cms.device_type", transform.DeviceTypes},
		{"cms.call_feature", transform.CallFeatures},
		{"cms.enter_reason", transform.EnterReasons},
		{"cms.call_type", transform.CallTypes},
		{"cms.leave_reason", transform.LeaveReasons},
		{"cms.sub_media_type", transform.SubMediaTypes},
		{"cms.release_cause", transform.ReleaseCauses},
	}
	for _, tt := range tests {
		rows, err := conn.Query(t.Context(), "SELECT code, label, coalesce(description, '') FROM "+tt.table+" ORDER BY code")
		if err != nil {
			t.Fatal(err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[transform.Code])
		if err != nil {
			t.Fatal(err)
		}
		want := slices.Clone(tt.want)
		slices.SortFunc(want, func(a, b transform.Code) int { return int(a.Code - b.Code) })
		if !slices.Equal(got, want) {
			for i := range max(len(got), len(want)) {
				var g, w transform.Code
				if i < len(got) {
					g = got[i]
				}
				if i < len(want) {
					w = want[i]
				}
				if g != w {
					t.Errorf("%s row %d: got %+v, want %+v", tt.table, i+1, g, w)
				}
			}
		}
	}
}
