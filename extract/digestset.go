package extract

import (
	"encoding/binary"
	"fmt"
	"iter"
	"math/bits"
	"os"
	"unsafe"
)

// DigestSet is a set of key digests for the sets that grow with the input
// (the keys seen in a file, the keys of a file already committed). A Go map
// costs about 40 bytes a key and the garbage collector's headroom doubles
// that; here a key costs its 16 bytes in a slot of an open-addressing table
// kept outside the Go heap, at 64-80% fill. The table is split into shards
// that grow one at a time by a quarter, so growing never holds two copies
// of the whole set. Not safe for concurrent use; the zero value is not
// usable; Close returns the memory.
type DigestSet struct {
	shards  [numShards]shard
	n       int
	hasZero bool // the zero digest marks free slots, so it is kept apart
}

type shard struct {
	mem   []byte
	slots []Digest // views mem
	n     int
}

const (
	numShards = 64
	// A shard grows when an insert would fill more than maxFill/10 of it,
	// by growth/4: linear probing stays short and little is left empty.
	maxFill = 8
	growth  = 5
)

var slotSize = int(unsafe.Sizeof(Digest{}))

// NewDigestSet returns an empty set sized for about hint digests.
func NewDigestSet(hint int) (*DigestSet, error) {
	s := &DigestSet{}
	per := hint/numShards*10/maxFill + 1
	for i := range s.shards {
		if err := s.shards[i].alloc(per); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// alloc gives the shard a fresh table of at least n slots, rounded up to
// whole pages, which the mapping uses anyway.
func (sh *shard) alloc(n int) error {
	page := os.Getpagesize()
	size := (n*slotSize + page - 1) / page * page
	mem, err := allocTable(size)
	if err != nil {
		return fmt.Errorf("allocate digest table of %d bytes: %w", size, err)
	}
	sh.mem = mem
	sh.slots = unsafe.Slice((*Digest)(unsafe.Pointer(unsafe.SliceData(mem))), size/slotSize)
	return nil
}

// Len is the number of digests in the set.
func (s *DigestSet) Len() int { return s.n }

// Has reports whether d is in the set.
func (s *DigestSet) Has(d Digest) bool {
	if d == (Digest{}) {
		return s.hasZero
	}
	_, found := s.shardOf(d).find(d)
	return found
}

// Add puts d in the set and reports whether it was new. It fails only when
// memory for a larger table cannot be had.
func (s *DigestSet) Add(d Digest) (bool, error) {
	if d == (Digest{}) {
		added := !s.hasZero
		if added {
			s.hasZero = true
			s.n++
		}
		return added, nil
	}
	sh := s.shardOf(d)
	i, found := sh.find(d)
	if found {
		return false, nil
	}
	if (sh.n+1)*10 > len(sh.slots)*maxFill {
		if err := sh.grow(); err != nil {
			return false, err
		}
		i, _ = sh.find(d)
	}
	sh.slots[i] = d
	sh.n++
	s.n++
	return true, nil
}

// A digest is already a uniform hash: byte 8 picks the shard and the first
// eight bytes the slot within it.
func (s *DigestSet) shardOf(d Digest) *shard { return &s.shards[d[8]%numShards] }

// find returns d's slot, or the free slot where it belongs.
func (sh *shard) find(d Digest) (int, bool) {
	hi, _ := bits.Mul64(binary.LittleEndian.Uint64(d[:8]), uint64(len(sh.slots)))
	i := int(hi)
	for {
		switch sh.slots[i] {
		case d:
			return i, true
		case Digest{}:
			return i, false
		}
		if i++; i == len(sh.slots) {
			i = 0
		}
	}
}

func (sh *shard) grow() error {
	old := *sh
	if err := sh.alloc(len(old.slots) * growth / 4); err != nil {
		*sh = old
		return err
	}
	for _, d := range old.slots {
		if d != (Digest{}) {
			i, _ := sh.find(d)
			sh.slots[i] = d
		}
	}
	// The new table is complete; failing to unmap the old one only leaks it.
	_ = freeTable(old.mem)
	return nil
}

// All yields every digest in the set, in no particular order. The set must
// not change during the iteration.
func (s *DigestSet) All() iter.Seq[Digest] {
	return func(yield func(Digest) bool) {
		if s.hasZero && !yield(Digest{}) {
			return
		}
		for i := range s.shards {
			for _, d := range s.shards[i].slots {
				if d != (Digest{}) && !yield(d) {
					return
				}
			}
		}
	}
}

// Close returns the set's memory. The set is empty and unusable afterwards.
func (s *DigestSet) Close() error {
	if s == nil {
		return nil
	}
	var first error
	for i := range s.shards {
		if mem := s.shards[i].mem; mem != nil {
			if err := freeTable(mem); err != nil && first == nil {
				first = err
			}
		}
	}
	*s = DigestSet{}
	return first
}

// String keeps formatting from dumping the table.
func (s *DigestSet) String() string { return fmt.Sprintf("DigestSet(%d digests)", s.Len()) }

// MemoryBytes is the size of the set's tables.
func (s *DigestSet) MemoryBytes() int {
	var n int
	for i := range s.shards {
		n += len(s.shards[i].mem)
	}
	return n
}
