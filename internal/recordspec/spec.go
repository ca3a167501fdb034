// Package recordspec declares, once, every record type the job reads from
// CC-CMS and writes to its outputs: the fields of the API's result object,
// and the output columns computed from them with their types, nullability
// and code tables.
//
// internal/recordgen derives the rest from these declarations: the decoder's
// field switch and record type (extract/cms), the typed row and its
// conversion (transform), the Parquet schema and marshalling (load/parquet)
// and the Postgres value appenders (load/postgres). The generated files are
// checked in, marked "Code generated ... DO NOT EDIT.", and a test fails when
// they are stale. Run `go generate ./internal/recordspec` after changing a
// declaration; the warehouse table itself changes through a new migration.
package recordspec

//go:generate go run ../recordgen

// FieldKind is how a field of the result object is decoded.
type FieldKind int

const (
	// Int fields take JSON numbers and numeric strings holding an integral
	// value within int64; anything else is recorded as a problem.
	Int FieldKind = iota
	// Text fields take strings (trimmed), numbers (kept as written) and
	// booleans.
	Text
)

// Field is one member of the API's result object.
type Field struct {
	API     string   // exact spelling in the result object (case-sensitive)
	Aliases []string // other spellings seen in the wild, decoded into the same field
	Go      string   // field name in the decoded record
	Kind    FieldKind
	Doc     string // what it is, for the generated comment
}

// ColumnType is the type a column has in both outputs.
type ColumnType int

const (
	Int32     ColumnType = iota // Parquet INT32, Postgres integer
	Int64                       // Parquet INT64, Postgres bigint
	String                      // Parquet BYTE_ARRAY UTF8, Postgres text
	Timestamp                   // Parquet INT64 TIMESTAMP_MICROS (UTC), Postgres timestamptz
	Bool                        // Parquet BOOLEAN, Postgres boolean
)

// Conversion says how a column's value is computed.
type Conversion int

const (
	// KeyCCID, KeyVDN and KeyCallID copy the call's key.
	KeyCCID Conversion = iota
	KeyVDN
	KeyCallID
	// CallIDTime reads the call's start from the callId prefix (13 digits
	// epoch ms, 10 digits epoch s).
	CallIDTime
	// Copy takes an Int field as Int64, or a Text field as String (trimmed;
	// empty is NULL).
	Copy
	// Narrow takes an Int field as Int32; a value that does not fit is NULL
	// and reported.
	Narrow
	// Coded is Narrow plus a label column named <column>_label, from the
	// code table Column.Codes; a code missing from the table is labelled
	// "unknown" and reported.
	Coded
	// EpochMillis takes an Int field of epoch milliseconds as a Timestamp;
	// 0 or negative is NULL, after year 9999 NULL and reported.
	EpochMillis
	// LocalTime parses a Text field written "yyyy-MM-dd HH:mm:ss" in the
	// tenant's time zone (the row's Input.Zone) as a Timestamp; text that
	// does not parse is NULL and reported.
	LocalTime
	// Direction is the call's direction as asked (true = inbound): the
	// row's Input.Inbound.
	Direction
	// BothDirections says the call was listed by both directions' passes
	// (querycalls): the row's Input.BothDirections.
	BothDirections
	// FetchedAt is when the answer arrived; RunID the run that fetched it.
	FetchedAt
	RunID
)

// Column is one output column (and one field of the typed row). A Coded
// column also makes its label column, right after it.
type Column struct {
	Name     string // column name in Postgres and Parquet
	Go       string // field name in the row
	Type     ColumnType
	Conv     Conversion
	Field    string // Go name of the source Field (Copy, Narrow, Coded, EpochMillis)
	Codes    string // code table (Coded): transform.<Codes>Label labels it
	Required bool   // NOT NULL; otherwise the row field is a pointer
	Doc      string // what it is, for the generated comment
	// Appended marks a column a later migration added to an existing
	// warehouse table (ALTER TABLE ... ADD COLUMN): PostgreSQL puts it
	// after every column the table had (raw and the maintained ones
	// included), in the order added. In the row and the Parquet files it
	// sits where it is declared. The statements name their columns, so
	// the position only matters to the check of the table.
	Appended bool
}

// Names are the Go identifiers generated for one record type.
type Names struct {
	Record  string // decoded result object (extract/cms)
	Decode  string // decoder function (extract/cms)
	Row     string // typed row (transform)
	Input   string // what a row is made of (transform)
	ToRow   string // conversion function (transform)
	Columns string // ordered column names (transform)
	// Ident is a lower-case stem for unexported identifiers; "" for the
	// first record type, which keeps the short names.
	Ident string
}

// Record is one record type: an API result object and the row made of it.
type Record struct {
	Names Names
	// Table is the warehouse table in schema cms.
	Table string
	// Endpoint is the API path answering with this result object.
	Endpoint string
	Fields   []Field
	Columns  []Column
	// PartitionBy lists Timestamp columns (Go names) in order of
	// preference: the UTC date of the first non-NULL one names the Parquet
	// partition (call_date=YYYY-MM-DD), else Hive's null partition.
	PartitionBy []string
	// StoresRaw adds Raw (the result object as received) to the row; the
	// warehouse stores it in column raw (jsonb) after the row's columns,
	// the Parquet files leave it out.
	StoresRaw bool
	// Maintained lists the warehouse columns, after raw, that the upsert
	// maintains itself (never part of the row).
	Maintained []WarehouseColumn
	// History, when set, keeps in a second warehouse table a row for each
	// answer that changed the record's state (see History).
	History *History
}

// History is a warehouse table the upsert appends to, in its transaction:
// one row for each incoming row whose Changes columns differ from the
// stored row's (a new key included), newer than the stored row. Its
// columns are the key, At (the incoming fetched_at), then Columns, with the
// types of the record's output columns of those names.
type History struct {
	Table   string   // in schema cms
	At      string   // column holding the answer's fetched_at
	Columns []string // output columns copied, in table order
	Changes []string // output columns whose change appends a row
}

// WarehouseColumn is a Postgres-only column the upsert maintains.
type WarehouseColumn struct {
	Name     string
	SQLType  string // as information_schema.columns.data_type reports it
	Required bool
	// OnInsert is the column's value for a new row: an SQL expression over
	// the staged row's columns (e.g. "fetched_at").
	OnInsert string
	// OnUpdate is its value when a newer answer updates the row: an SQL
	// expression over the stored row t and the incoming EXCLUDED; "" keeps
	// the stored value.
	OnUpdate string
}

// Records lists every record type, in generation order.
var Records = []Record{BasicCallInfo, CallDetail, ListedCall}

// Outputs returns the record's output columns in order, with the label
// column of each Coded column right after it: one per Parquet column and per
// warehouse column before raw.
func (r Record) Outputs() []Column {
	var out []Column
	for _, c := range r.Columns {
		out = append(out, c)
		if c.Conv == Coded {
			out = append(out, Column{Name: c.Name + "_label", Go: c.Go + "Label", Type: String, Conv: Copy, Appended: c.Appended,
				Doc: "label of " + c.Name + " from the " + c.Codes + " code table"})
		}
	}
	return out
}
