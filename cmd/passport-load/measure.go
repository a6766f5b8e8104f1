package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The IdP's metrics the run reads.
const (
	metricCPU        = "process_cpu_seconds_total"
	metricRSS        = "process_resident_memory_bytes"
	metricHeap       = "go_memstats_heap_inuse_bytes"
	metricGoroutines = "go_goroutines"
	metricCommands   = "passport_store_commands_total"
	metricRoundTrips = "passport_store_round_trips_total"
	metricTold       = "passport_login_told_seconds"
)

// idpMetrics are the values of the IdP's metrics at one moment, each summed over its label sets, and the
// buckets of its histograms, summed likewise.
type idpMetrics struct {
	values     map[string]float64
	histograms map[string][]bucket
}

// bucket is a histogram's cumulative count of observations up to UpperBound (+Inf for the last).
type bucket struct {
	UpperBound float64
	Count      float64
}

// scrapeMetrics reads the IdP's Prometheus text exposition at u.
func scrapeMetrics(ctx context.Context, hc *http.Client, u string) (idpMetrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return idpMetrics{}, fmt.Errorf("metrics: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return idpMetrics{}, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return idpMetrics{}, fmt.Errorf("metrics: GET %s: HTTP %d", u, resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return idpMetrics{}, fmt.Errorf("metrics: GET %s: %w", u, err)
	}
	return fromFamilies(fams), nil
}

// fromFamilies sums each metric family over its label sets.
func fromFamilies(fams map[string]*dto.MetricFamily) idpMetrics {
	out := idpMetrics{values: map[string]float64{}, histograms: map[string][]bucket{}}
	for name, f := range fams {
		var sum float64
		for _, m := range f.GetMetric() {
			sum += value(m)
			if h := m.GetHistogram(); h != nil {
				out.histograms[name] = addBuckets(out.histograms[name], h)
			}
		}
		out.values[name] = sum
	}
	return out
}

// addBuckets adds h's cumulative buckets to sum, those of the same histogram under other labels (the same
// bounds). The text format carries the +Inf bucket itself; one that lacks it gets it from the sample count.
func addBuckets(sum []bucket, h *dto.Histogram) []bucket {
	bs := make([]bucket, 0, len(h.GetBucket())+1)
	for _, b := range h.GetBucket() {
		bs = append(bs, bucket{UpperBound: b.GetUpperBound(), Count: float64(b.GetCumulativeCount())})
	}
	if len(bs) == 0 || !math.IsInf(bs[len(bs)-1].UpperBound, 1) {
		bs = append(bs, bucket{UpperBound: math.Inf(1), Count: float64(h.GetSampleCount())})
	}
	if sum == nil {
		return bs
	}
	if len(sum) != len(bs) {
		return sum // other bounds: not one histogram
	}
	for i := range sum {
		sum[i].Count += bs[i].Count
	}
	return sum
}

// histogramDelta is the buckets of histogram name after, less those before; nil when either lacks it.
func histogramDelta(before, after idpMetrics, name string) []bucket {
	b, a := before.histograms[name], after.histograms[name]
	if a == nil || (b != nil && len(b) != len(a)) {
		return nil
	}
	d := slices.Clone(a)
	for i := range b {
		d[i].Count -= b[i].Count
	}
	return d
}

// quantile is the q-quantile of the observations in cumulative buckets bs, interpolated linearly within
// its bucket as Prometheus's histogram_quantile does; beyond is true when it lies past the last finite bound
// (which is returned).
func quantile(bs []bucket, q float64) (v float64, beyond bool) {
	if len(bs) == 0 || bs[len(bs)-1].Count == 0 {
		return 0, false
	}
	rank := q * bs[len(bs)-1].Count
	lower, below := 0.0, 0.0
	for i, b := range bs {
		if b.Count >= rank {
			if math.IsInf(b.UpperBound, 1) {
				if i == 0 {
					return 0, true
				}
				return bs[i-1].UpperBound, true
			}
			if b.Count == below {
				return b.UpperBound, false
			}
			return lower + (b.UpperBound-lower)*(rank-below)/(b.Count-below), false
		}
		lower, below = b.UpperBound, b.Count
	}
	return lower, true
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return 0
}

// delta is after's value of name less before's, and whether both had it.
func delta(before, after idpMetrics, name string) (float64, bool) {
	b, ok1 := before.values[name]
	a, ok2 := after.values[name]
	return a - b, ok1 && ok2
}

// parseProcStat reads the aggregate "cpu" line of /proc/stat (user nice system idle iowait irq softirq steal
// ...): the ticks in all (guest time is already in user) and the steal ticks.
func parseProcStat(stat string) (total, steal uint64, ok bool) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, false
	}
	for i, v := range f[1:9] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, 0, false
		}
		total += n
		if i == 7 {
			steal = n
		}
	}
	return total, steal, true
}

// parseCPUInfo names this machine's processor from /proc/cpuinfo, as a run's host is told apart from another
// (the same kind of virtual machine has come up on hosts whose RSA signature differed threefold): its model
// name, its x86 family and model where the file gives them, and how many processors it lists, e.g.
// "AMD EPYC, family 25 model 1, 2 CPUs". It is empty when the file names nothing.
func parseCPUInfo(info string) string {
	var name, family, model string
	cpus := 0
	for line := range strings.Lines(info) {
		key, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		switch strings.TrimSpace(key) {
		case "processor":
			cpus++
		case "model name":
			name = cmp.Or(name, value)
		case "cpu family":
			family = cmp.Or(family, value)
		case "model":
			model = cmp.Or(model, value)
		}
	}
	var parts []string
	if name != "" {
		parts = append(parts, name)
	}
	if family != "" && model != "" {
		parts = append(parts, "family "+family+" model "+model)
	}
	if len(parts) == 0 {
		return ""
	}
	switch {
	case cpus == 1:
		parts = append(parts, "1 CPU")
	case cpus > 1:
		parts = append(parts, strconv.Itoa(cpus)+" CPUs")
	}
	return strings.Join(parts, ", ")
}

// stealMeter measures the share of this machine's CPU time the hypervisor gave to other guests.
type stealMeter struct {
	total, steal uint64
	ok           bool
}

func startSteal() stealMeter {
	t, s, ok := machineCPU()
	return stealMeter{total: t, steal: s, ok: ok}
}

// percent is the stolen share since start, in percent; ok is false where it cannot be told.
func (m stealMeter) percent() (float64, bool) {
	t, s, ok := machineCPU()
	if !ok || !m.ok || t <= m.total {
		return 0, false
	}
	return 100 * float64(s-m.steal) / float64(t-m.total), true
}
