package main

import (
	"runtime/debug"
	"testing"
)

// TestTuneGC: the generator runs its collector at generatorGOGC unless GOGC says otherwise, and then leaves the
// runtime's reading of GOGC as it is.
func TestTuneGC(t *testing.T) {
	orig := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(orig) })

	if got := tuneGC(func(string) string { return "" }); got != generatorGOGC {
		t.Errorf("tuneGC without GOGC = %d, want %d", got, generatorGOGC)
	}
	if now := debug.SetGCPercent(100); now != generatorGOGC {
		t.Errorf("without GOGC the collector's target is %d, want %d", now, generatorGOGC)
	}

	debug.SetGCPercent(150) // as the runtime would have read GOGC=150
	set := func(k string) string {
		if k == "GOGC" {
			return "150"
		}
		return ""
	}
	if got := tuneGC(set); got != 150 {
		t.Errorf("tuneGC with GOGC=150 = %d, want 150", got)
	}
	if now := debug.SetGCPercent(100); now != 150 {
		t.Errorf("with GOGC=150 the collector's target is %d, want it left at 150", now)
	}
}
