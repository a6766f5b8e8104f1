package main

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"io"
	"math"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

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

// addBuckets adds h's buckets to sum, those of the same histogram under other labels (the same bounds).
func addBuckets(sum []bucket, h *dto.Histogram) []bucket {
	bs := h.GetBucket()
	if sum == nil {
		sum = make([]bucket, len(bs)+1)
		for i, b := range bs {
			sum[i].UpperBound = b.GetUpperBound()
		}
		sum[len(bs)].UpperBound = math.Inf(1)
	}
	if len(sum) != len(bs)+1 {
		return sum // other bounds: not one histogram
	}
	for i, b := range bs {
		sum[i].Count += float64(b.GetCumulativeCount())
	}
	sum[len(bs)].Count += float64(h.GetSampleCount())
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

// signatureSamples is how many RSA signatures are timed before the logins.
const signatureSamples = 300

// signatureEvery is how often one more signature is timed while the logins run.
const signatureEvery = 100 * time.Millisecond

// signatureTime is the median time of one RSA signature.
type signatureTime struct {
	// CPU is the CPU time the signing thread used (0 where the system cannot tell): the measure to hold the
	// IdP's CPU seconds against, and one that other work on a shared machine does not inflate.
	CPU time.Duration
	// Wall is the time on the clock.
	Wall time.Duration
	// Samples is how many signatures the medians are of.
	Samples int
}

// signatureTimer times an RSA-2048 PKCS#1 v1.5 SHA-256 signature — what the IdP makes twice for every
// Response — in this process, with a key of its own.
type signatureTimer struct {
	key        *rsa.PrivateKey
	signedInfo []byte
}

func newSignatureTimer() (*signatureTimer, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("signature timing: %w", err)
	}
	return &signatureTimer{key: key, signedInfo: []byte(`<ds:SignedInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/></ds:SignedInfo>`)}, nil
}

// signatureSample is one signature's CPU time (0 where the system cannot tell) and wall-clock time.
type signatureSample struct{ cpu, wall time.Duration }

// one times one signature. The caller has locked its goroutine to its thread, whose CPU time is read.
func (t *signatureTimer) one() (signatureSample, error) {
	c0, _ := threadCPU()
	start := time.Now()
	digest := sha256.Sum256(t.signedInfo)
	if _, err := rsa.SignPKCS1v15(rand.Reader, t.key, crypto.SHA256, digest[:]); err != nil {
		return signatureSample{}, fmt.Errorf("signature timing: %w", err)
	}
	wall := time.Since(start)
	c1, _ := threadCPU()
	return signatureSample{cpu: c1 - c0, wall: wall}, nil
}

// times times n signatures one after another and returns their medians.
func (t *signatureTimer) times(n int) (signatureTime, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	samples := make([]signatureSample, n)
	for i := range samples {
		s, err := t.one()
		if err != nil {
			return signatureTime{}, err
		}
		samples[i] = s
	}
	return medians(samples), nil
}

// during times one signature now and one every interval until stop is called, on a thread of its own, and
// stop returns their medians: the yardstick measured on the machine as loaded as the IdP was while it did
// the work held against it. A shared machine's speed moves from minute to minute (other tenants, clock
// changes); a yardstick timed only before the load can catch another minute than the logins'.
func (t *signatureTimer) during(interval time.Duration) (stop func() (signatureTime, error)) {
	done := make(chan struct{})
	type result struct {
		st  signatureTime
		err error
	}
	out := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		var samples []signatureSample
		for {
			s, err := t.one()
			if err != nil {
				out <- result{err: err}
				return
			}
			samples = append(samples, s)
			select {
			case <-done:
				out <- result{st: medians(samples)}
				return
			case <-tick.C:
			}
		}
	}()
	return func() (signatureTime, error) {
		close(done)
		r := <-out
		return r.st, r.err
	}
}

// medians is the median CPU and wall-clock times of samples (CPU 0 where the system cannot tell it).
func medians(samples []signatureSample) signatureTime {
	cpu := make([]time.Duration, len(samples))
	wall := make([]time.Duration, len(samples))
	for i, s := range samples {
		cpu[i], wall[i] = s.cpu, s.wall
	}
	median := func(d []time.Duration) time.Duration {
		slices.Sort(d)
		return d[len(d)/2]
	}
	st := signatureTime{Wall: median(wall), Samples: len(samples)}
	if _, hasCPU := threadCPU(); hasCPU {
		st.CPU = median(cpu)
	}
	return st
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
