package adapters

import (
	"github.com/cmsetl/cms-etl/extract"
	"github.com/cmsetl/cms-etl/internal/pipeline"
)

// Direction says where an item's direction (pipeline.Item.Inbound) comes
// from, for the queries that send it (querycalldetailbyid's isCallin): the
// input row's own, else Default. The zero value is for queries that do not
// ask one.
type Direction struct {
	// Required: an item with no direction of its own and no Default is
	// rejected, since a guess would ask the wrong pass and get "no data".
	Required bool
	// Default (etl run --direction) applies to items without their own.
	Default *bool
	// Missing is the rejection's reason, naming where a direction could
	// have come from (the input's column and the flag).
	Missing string
}

// Of is the direction of a key whose input row gives own (nil: none): own,
// else Default; nil when neither gives one, with an error when one is
// Required.
func (d Direction) Of(own *bool) (*bool, error) {
	switch {
	case own != nil:
		return own, nil
	case d.Default != nil:
		return d.Default, nil
	case d.Required:
		return nil, &extract.FieldError{Field: "isCallIn", Reason: d.Missing}
	}
	return nil, nil
}

// resolve sets it.Inbound by Of, or rejects it. An item already rejected is
// left alone.
func (d Direction) resolve(it *pipeline.Item, own *bool) {
	if it.Err != nil {
		return
	}
	in, err := d.Of(own)
	switch {
	case err != nil:
		it.Err = err
	case in != nil:
		it.Inbound = *in
	}
}
