package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	rs "github.com/cmsetl/cms-etl/internal/recordspec"
)

// TestGeneratedFilesAreFresh fails when a declaration changed without
// `go generate ./internal/recordspec`, or a generated file was edited.
func TestGeneratedFilesAreFresh(t *testing.T) {
	t.Parallel()
	files, err := generate()
	if err != nil {
		t.Fatal(err)
	}
	for rel, want := range files {
		got, err := os.ReadFile(filepath.Join("..", "..", filepath.FromSlash(rel)))
		if err != nil {
			t.Fatalf("%s: %v (run go generate ./internal/recordspec)", rel, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: run go generate ./internal/recordspec", rel)
		}
		if !bytes.HasPrefix(got, []byte(header)) {
			t.Errorf("%s lacks the generated-code header", rel)
		}
	}
}

// TestValidateRefusesBadDeclarations: a declaration the generator cannot
// honour is refused with the column named, before any file is written.
func TestValidateRefusesBadDeclarations(t *testing.T) {
	t.Parallel()
	base := func() rs.Record {
		r := rs.BasicCallInfo
		r.Columns = append([]rs.Column(nil), r.Columns...)
		r.Fields = append([]rs.Field(nil), r.Fields...)
		return r
	}
	if err := validate(base()); err != nil {
		t.Fatalf("BasicCallInfo refused: %v", err)
	}
	tests := []struct {
		name   string
		change func(*rs.Record)
		want   string
	}{
		{"unknown source field", func(r *rs.Record) { r.Columns[5].Field = "Nope" }, "dsn"},
		{"text field narrowed", func(r *rs.Record) {
			r.Columns = append(r.Columns, rs.Column{Name: "x", Go: "X", Type: rs.Int32, Conv: rs.Narrow, Field: "KeyID"})
		}, "x"},
		{"wrong type", func(r *rs.Record) { r.Columns[5].Type = rs.Int32 }, "dsn"},
		{"key not required", func(r *rs.Record) { r.Columns[0].Required = false }, "cc_id"},
		{"codes without coded", func(r *rs.Record) { r.Columns[5].Codes = "MediaType" }, "dsn"},
		{"duplicate column", func(r *rs.Record) {
			r.Columns = append(r.Columns, rs.Column{Name: "device_type_label", Go: "Y", Type: rs.Int64, Conv: rs.Copy, Field: "DSN"})
		}, "device_type_label"},
		{"duplicate API name", func(r *rs.Record) { r.Fields[1].Aliases = []string{"time"} }, "time"},
		{"partition by text", func(r *rs.Record) { r.PartitionBy = []string{"CallID"} }, "CallID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := base()
			tt.change(&r)
			err := validate(r)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("validate = %v, want an error naming %q", err, tt.want)
			}
		})
	}
}
