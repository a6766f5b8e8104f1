//go:build !(cgo && linux)

package rsasigner

import (
	"crypto"
	"testing"
)

// mustExpectedBackend fails unless s is the Go backend: without cgo there is
// no other.
func mustExpectedBackend(tb testing.TB, s crypto.Signer) {
	tb.Helper()
	if BackendOf(s) != BackendGo || Backend() != "go (built without cgo)" {
		tb.Fatalf("backend %s, process backend %q; want Go", BackendOf(s), Backend())
	}
}

// TestNewReturnsKey checks that without cgo New is the key itself.
func TestNewReturnsKey(t *testing.T) {
	t.Parallel()
	key := mustKey(t)
	if s := New(key); s != crypto.Signer(key) {
		t.Fatalf("New returned %T, want the key", s)
	}
}
