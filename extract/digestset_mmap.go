//go:build unix

package extract

import "syscall"

// allocTable maps anonymous memory: zeroed, outside the Go heap, returned to
// the system by freeTable, and only resident once touched.
func allocTable(size int) ([]byte, error) {
	return syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
}

func freeTable(mem []byte) error { return syscall.Munmap(mem) }
