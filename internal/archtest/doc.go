// Package archtest holds the test that keeps ARCHITECTURE.md's import rules
// true. It has no code of its own.
package archtest
