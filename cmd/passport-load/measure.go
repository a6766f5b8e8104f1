package main

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
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
)

// idpMetrics are the values of the IdP's metrics at one moment, each summed over its label sets.
type idpMetrics map[string]float64

// scrapeMetrics reads the IdP's Prometheus text exposition at u.
func scrapeMetrics(ctx context.Context, hc *http.Client, u string) (idpMetrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil, fmt.Errorf("metrics: GET %s: HTTP %d", u, resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("metrics: GET %s: %w", u, err)
	}
	out := idpMetrics{}
	for name, f := range fams {
		var sum float64
		for _, m := range f.GetMetric() {
			sum += value(m)
		}
		out[name] = sum
	}
	return out, nil
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

// delta is after[name] - before[name], and whether both had it.
func delta(before, after idpMetrics, name string) (float64, bool) {
	b, ok1 := before[name]
	a, ok2 := after[name]
	return a - b, ok1 && ok2
}

// signatureSamples is how many RSA signatures timeSignature times.
const signatureSamples = 300

// signatureTime is the median time of one RSA signature.
type signatureTime struct {
	// CPU is the CPU time the signing thread used (0 where the system cannot tell): the measure to hold the
	// IdP's CPU seconds against, and one that other work on a shared machine does not inflate.
	CPU time.Duration
	// Wall is the time on the clock.
	Wall time.Duration
}

// timeSignature times an RSA-2048 PKCS#1 v1.5 SHA-256 signature — what the IdP makes twice for every Response —
// in this process, and returns the medians of signatureSamples.
func timeSignature() (signatureTime, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return signatureTime{}, fmt.Errorf("signature timing: %w", err)
	}
	signedInfo := []byte(`<ds:SignedInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/></ds:SignedInfo>`)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	wall := make([]time.Duration, signatureSamples)
	cpu := make([]time.Duration, signatureSamples)
	_, hasCPU := threadCPU()
	for i := range wall {
		c0, _ := threadCPU()
		start := time.Now()
		digest := sha256.Sum256(signedInfo)
		if _, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:]); err != nil {
			return signatureTime{}, fmt.Errorf("signature timing: %w", err)
		}
		wall[i] = time.Since(start)
		c1, _ := threadCPU()
		cpu[i] = c1 - c0
	}
	median := func(d []time.Duration) time.Duration {
		slices.Sort(d)
		return d[len(d)/2]
	}
	st := signatureTime{Wall: median(wall)}
	if hasCPU {
		st.CPU = median(cpu)
	}
	return st, nil
}
