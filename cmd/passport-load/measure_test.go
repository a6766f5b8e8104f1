package main

import (
	"math"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// parseMetrics reads a text exposition as scrapeMetrics does after fetching it.
func parseMetrics(t *testing.T, text string) idpMetrics {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return fromFamilies(fams)
}

// TestToldFromHistogram: the IdP's approve → told histogram is summed over its answers, taken as grown
// between two readings, and its quantiles interpolated within a bucket as histogram_quantile does; one past
// the last finite bound is given as that bound and named.
func TestToldFromHistogram(t *testing.T) {
	t.Parallel()
	const head = "# TYPE passport_login_told_seconds histogram\n"
	before := parseMetrics(t, head+`passport_login_told_seconds_bucket{answer="approved",le="0.01"} 10
passport_login_told_seconds_bucket{answer="approved",le="0.02"} 10
passport_login_told_seconds_bucket{answer="approved",le="+Inf"} 10
passport_login_told_seconds_sum{answer="approved"} 0.05
passport_login_told_seconds_count{answer="approved"} 10
`)
	after := parseMetrics(t, head+`passport_login_told_seconds_bucket{answer="approved",le="0.01"} 60
passport_login_told_seconds_bucket{answer="approved",le="0.02"} 105
passport_login_told_seconds_bucket{answer="approved",le="+Inf"} 110
passport_login_told_seconds_sum{answer="approved"} 1.5
passport_login_told_seconds_count{answer="approved"} 110
passport_login_told_seconds_bucket{answer="denied",le="0.01"} 0
passport_login_told_seconds_bucket{answer="denied",le="0.02"} 0
passport_login_told_seconds_bucket{answer="denied",le="+Inf"} 0
passport_login_told_seconds_sum{answer="denied"} 0
passport_login_told_seconds_count{answer="denied"} 0
`)
	// The two answers' buckets are summed bound by bound, the +Inf bucket once.
	if bs := after.histograms["passport_login_told_seconds"]; len(bs) != 3 || bs[2].Count != 110 || !math.IsInf(bs[2].UpperBound, 1) {
		t.Errorf("summed buckets %+v, want 0.01, 0.02 and one +Inf holding 110", bs)
	}
	// Grown by 100: 50 up to 10 ms, 45 more up to 20 ms, 5 past it.
	got := told(before, after)
	if got == nil || got.Count != 100 {
		t.Fatalf("told: %+v, want 100 observations", got)
	}
	near := func(d, wantMs float64) bool { return math.Abs(d-wantMs) < 1e-6 }
	if ms := float64(got.P50.Nanoseconds()) / 1e6; !near(ms, 10) { // the 50th is the last of the first bucket
		t.Errorf("50th %v, want 10ms", got.P50)
	}
	if ms := float64(got.P90.Nanoseconds()) / 1e6; !near(ms, 10+10*40.0/45) { // 40 of the second bucket's 45
		t.Errorf("90th %v, want %.4fms", got.P90, 10+10*40.0/45)
	}
	if ms := float64(got.P99.Nanoseconds()) / 1e6; !near(ms, 20) || len(got.Beyond) != 1 || got.Beyond[0] != "99th" {
		t.Errorf("99th %v (beyond %v), want the last bound, 20ms, named as beyond", got.P99, got.Beyond)
	}
	if told(before, parseMetrics(t, "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 1\n")) != nil {
		t.Error("an IdP without the histogram gave an approve → told")
	}
	if empty := told(after, after); empty == nil || empty.Count != 0 || empty.P99 != 0 || len(empty.Beyond) != 0 {
		t.Errorf("no observation between the readings: %+v", empty)
	}
}

// TestProcStat: the stolen ticks are the eighth number of /proc/stat's aggregate line, and the total is the
// sum of the first eight (guest time is counted in user already); anything else is not read.
func TestProcStat(t *testing.T) {
	t.Parallel()
	total, steal, ok := parseProcStat("cpu  100 2 30 800 4 5 6 53 7 0\ncpu0 50 1 15 400 2 2 3 27 3 0\nintr 1\n")
	if !ok || total != 1000 || steal != 53 {
		t.Errorf("total %d, steal %d (%v), want 1000 and 53", total, steal, ok)
	}
	for _, bad := range []string{"", "cpu 1 2 3", "cpu0 1 2 3 4 5 6 7 8", "cpu 1 2 3 4 5 6 7 x"} {
		if _, _, ok := parseProcStat(bad); ok {
			t.Errorf("%q was read", bad)
		}
	}
}

// TestCPUInfo: a run names its processor by /proc/cpuinfo's model name, x86 family and model and the count of
// processors listed; a file that names nothing gives nothing.
func TestCPUInfo(t *testing.T) {
	t.Parallel()
	x86 := "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 1\nmodel name\t: AMD EPYC\nflags\t\t: fpu\n\n" +
		"processor\t: 1\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 1\nmodel name\t: AMD EPYC\n"
	arm := "processor\t: 0\nBogoMIPS\t: 50.00\nCPU implementer\t: 0x41\nCPU part\t: 0xd0c\n"
	for _, c := range []struct{ info, want string }{
		{x86, "AMD EPYC, family 25 model 1, 2 CPUs"},
		{"model name\t: Some CPU\n", "Some CPU"},
		{"processor\t: 0\nmodel name\t: Some CPU\n", "Some CPU, 1 CPU"},
		{arm, ""},
		{"", ""},
	} {
		if got := parseCPUInfo(c.info); got != c.want {
			t.Errorf("parseCPUInfo(%q) = %q, want %q", c.info, got, c.want)
		}
	}
}
