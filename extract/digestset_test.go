package extract

import (
	"math/rand/v2"
	"strconv"
	"testing"
)

func TestDigestSetMatchesMap(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 100, 5000, 50_000, 300_000} {
		t.Run("", func(t *testing.T) {
			t.Parallel()
			s, err := NewDigestSet(n / 4) // undersized: the table must grow
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			rng := rand.New(rand.NewPCG(uint64(n), 7))
			want := map[Digest]bool{}
			random := func() Digest {
				var d Digest
				for i := range d {
					d[i] = byte(rng.UintN(256))
				}
				// Collide on the slot-picking bytes now and then.
				if rng.UintN(4) == 0 {
					copy(d[:8], []byte{1, 2, 3, 4, 5, 6, 7, 8})
				}
				return d
			}
			for range n {
				d := random()
				added, err := s.Add(d)
				if err != nil {
					t.Fatal(err)
				}
				if added == want[d] {
					t.Fatalf("Add(%x) = %v, already present %v", d, added, want[d])
				}
				want[d] = true
				if again, _ := s.Add(d); again {
					t.Fatalf("second Add(%x) reported new", d)
				}
			}
			if s.Len() != len(want) {
				t.Fatalf("Len = %d, want %d", s.Len(), len(want))
			}
			for d := range want {
				if !s.Has(d) {
					t.Fatalf("Has(%x) = false after Add", d)
				}
			}
			for range 1000 {
				if d := random(); s.Has(d) != want[d] {
					t.Fatalf("Has(%x) = %v, want %v", d, !want[d], want[d])
				}
			}
		})
	}
}

func TestDigestSetZeroDigest(t *testing.T) {
	t.Parallel()
	s, err := NewDigestSet(0)
	if err != nil {
		t.Fatal(err)
	}
	if s.Has(Digest{}) {
		t.Fatal("empty set has the zero digest")
	}
	if added, _ := s.Add(Digest{}); !added {
		t.Fatal("zero digest not added")
	}
	if added, _ := s.Add(Digest{}); added {
		t.Fatal("zero digest added twice")
	}
	if !s.Has(Digest{}) || s.Len() != 1 {
		t.Fatalf("Has = %v, Len = %d", s.Has(Digest{}), s.Len())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func BenchmarkDigestSetAdd(b *testing.B) {
	s, err := NewDigestSet(0)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		k := Key{CCID: 1, VDN: 1, CallID: strconv.Itoa(1_700_000_000_000 + i)}
		if _, err := s.Add(k.Digest()); err != nil {
			b.Fatal(err)
		}
	}
}

func TestDigestSetAll(t *testing.T) {
	t.Parallel()
	s, err := NewDigestSet(0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := map[Digest]bool{{}: true, {1}: true, {2, 3}: true}
	for d := range want {
		if _, err := s.Add(d); err != nil {
			t.Fatal(err)
		}
	}
	got := map[Digest]bool{}
	for d := range s.All() {
		got[d] = true
	}
	if len(got) != len(want) {
		t.Fatalf("All yielded %v, want %v", got, want)
	}
	for d := range want {
		if !got[d] {
			t.Fatalf("All did not yield %x", d)
		}
	}
}
