package main

import (
	"runtime/debug"
	"runtime/metrics"
	"testing"
)

// gogc is the collector's target as the runtime reports it.
func gogc() uint64 {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestTuneGC: the generator runs its collector at generatorGOGC unless GOGC says otherwise, and then leaves the
// runtime's reading of GOGC as it is.
func TestTuneGC(t *testing.T) {
	orig := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(orig) })

	tuneGC(func(string) string { return "" })
	if now := gogc(); now != generatorGOGC {
		t.Errorf("without GOGC the collector's target is %d, want %d", now, generatorGOGC)
	}

	debug.SetGCPercent(150) // as the runtime would have read GOGC=150
	tuneGC(func(k string) string {
		if k == "GOGC" {
			return "150"
		}
		return ""
	})
	if now := gogc(); now != 150 {
		t.Errorf("with GOGC=150 the collector's target is %d, want it left at 150", now)
	}
}
