package csvsource

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// From a pipe whose writer produces rows as calls start, Open returns after
// the header and Next returns each row as it arrives, without waiting for
// more input or its end.
func TestPipeRowsComeAsTheyAreWritten(t *testing.T) {
	t.Parallel()
	fifo := filepath.Join(t.TempDir(), "calls")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	rows := make(chan string)
	go func() {
		w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			t.Error(err)
			return
		}
		defer w.Close()
		for line := range rows {
			if _, err := w.WriteString(line); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	opened := make(chan *Reader, 1)
	go func() {
		r, err := Open(Config{Path: fifo})
		if err != nil {
			t.Error(err)
		}
		opened <- r
	}()
	rows <- "ccId,vdn,callId\n"
	var r *Reader
	select {
	case r = <-opened:
	case <-time.After(5 * time.Second):
		t.Fatal("Open waits for more than the header")
	}
	if r == nil {
		return
	}
	defer r.Close()
	for i, id := range []string{"1700000000-1", "1700000001-2"} {
		rows <- "1,2," + id + "\n"
		got := make(chan Item, 1)
		go func() {
			it, err := r.Next()
			if err != nil {
				t.Error(err)
			}
			got <- it
		}()
		select {
		case it := <-got:
			if it.Err != nil || it.Key.CallID != id {
				t.Fatalf("row %d: %+v", i, it)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("row %d not returned while the pipe stays open", i)
		}
	}
	close(rows)
}
