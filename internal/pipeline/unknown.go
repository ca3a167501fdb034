package pipeline

import (
	"sort"
	"strconv"
	"sync"
)

// unknownCodes counts codes missing from the code tables, by field and value.
type unknownCodes struct {
	mu sync.Mutex
	m  map[string]map[int64]int64
}

func (u *unknownCodes) add(field string, code int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.m == nil {
		u.m = make(map[string]map[int64]int64)
	}
	if u.m[field] == nil {
		u.m[field] = make(map[int64]int64)
	}
	u.m[field][code]++
}

// UnknownCode is one (field, code) with its count.
type UnknownCode struct {
	Field string `json:"field"`
	Code  int64  `json:"code"`
	Count int64  `json:"count"`
}

func (u *unknownCodes) list() []UnknownCode {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []UnknownCode
	for f, codes := range u.m {
		for c, n := range codes {
			out = append(out, UnknownCode{Field: f, Code: c, Count: n})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Field != out[j].Field {
			return out[i].Field < out[j].Field
		}
		return out[i].Code < out[j].Code
	})
	return out
}

func (u UnknownCode) String() string {
	return u.Field + "=" + strconv.FormatInt(u.Code, 10) + " x" + strconv.FormatInt(u.Count, 10)
}
