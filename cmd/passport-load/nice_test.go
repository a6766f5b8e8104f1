package main

import (
	"strings"
	"testing"
)

// TestSharedCPUNote: on a shared machine the report says whether the IdP got the CPU first, and how to give
// it to it when it did not.
func TestSharedCPUNote(t *testing.T) {
	n0, n19, n5 := 0, 19, -5
	for _, c := range []struct {
		nice      *int
		want, not string
	}{
		{nil, "run it with nice -n 19", "runs at nice"},
		{&n0, "run it with nice -n 19", "runs at nice"},
		{&n5, "run it with nice -n 19", "runs at nice"},
		{&n19, "runs at nice 19, so the kernel gives the IdP a CPU first", "run it with nice"},
	} {
		got := sharedCPUNote(c.nice)
		if !strings.Contains(got, c.want) || strings.Contains(got, c.not) || !strings.HasPrefix(got, "the IdP and this generator share the machine's CPUs") {
			t.Errorf("sharedCPUNote(%v) = %q, want it to say %q and not %q", c.nice, got, c.want, c.not)
		}
	}
}
