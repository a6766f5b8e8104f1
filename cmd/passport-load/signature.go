package main

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"runtime"
	"slices"
	"time"
)

// The yardstick of the IdP's cost: an RSA-2048 signature, timed in this process.

// signatureSamples is how many RSA signatures are timed before the logins.
const signatureSamples = 300

// signatureEvery is how often one more signature is timed while the logins run.
const signatureEvery = 100 * time.Millisecond

// signatureTime is the median time of one RSA signature.
type signatureTime struct {
	// CPU is the CPU time the signing thread used (0 where the system cannot tell): the measure to hold the
	// IdP's CPU seconds against, which waiting for a CPU does not inflate (other guests sharing the cores
	// still slow it, as they slow the IdP).
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
	hasCPU     bool // whether threads' CPU time can be told here
}

func newSignatureTimer() (*signatureTimer, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("signature timing: %w", err)
	}
	_, hasCPU := threadCPU()
	return &signatureTimer{key: key, hasCPU: hasCPU, signedInfo: []byte(`<ds:SignedInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/></ds:SignedInfo>`)}, nil
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
	return t.medians(samples), nil
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
				out <- result{st: t.medians(samples)}
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
func (t *signatureTimer) medians(samples []signatureSample) signatureTime {
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
	if t.hasCPU {
		st.CPU = median(cpu)
	}
	return st
}
