package main

import (
	"bufio"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"time"
)

// laterChecks keeps the Responses of finished logins until the logins end, for --check-after, in a temporary
// file (about 11 KB a login: a minute at 300 logins/s is about 200 MB), so that a long run does not hold them in
// memory. Checking a Response as the SP does costs this generator about as much CPU as the whole login costs
// the IdP; on a machine the two share, checking them after the IdP's cost is measured keeps that CPU out of the
// IdP's minutes, as it is when the SPs are other machines. Safe for concurrent use.
type laterChecks struct {
	mu  sync.Mutex
	f   *os.File
	w   *bufio.Writer
	enc *gob.Encoder
	err error // the first write that failed: every login kept after it fails too
}

// keptLogin is one finished login whose Response awaits its check.
type keptLogin struct {
	Start, End time.Time
	T          timings
	R          response
}

func newLaterChecks() (*laterChecks, error) {
	f, err := os.CreateTemp("", "passport-load-*.responses")
	if err != nil {
		return nil, fmt.Errorf("--check-after: a file for the Responses: %w", err)
	}
	w := bufio.NewWriterSize(f, 256<<10)
	return &laterChecks{f: f, w: w, enc: gob.NewEncoder(w)}, nil
}

// keep adds k to the file; an error means its Response cannot be checked.
func (c *laterChecks) keep(k keptLogin) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = c.enc.Encode(k)
	}
	if c.err != nil {
		return fmt.Errorf("kept for the check after the logins: %w", c.err)
	}
	return nil
}

// each reads the kept logins back and calls fn for each, on as many goroutines as this machine has CPUs.
func (c *laterChecks) each(fn func(keptLogin)) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.w.Flush(); err != nil {
		return err
	}
	if _, err := c.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	dec := gob.NewDecoder(bufio.NewReaderSize(c.f, 256<<10))
	work := make(chan keptLogin, 64)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for k := range work {
				fn(k)
			}
		})
	}
	var err error
	for {
		var k keptLogin
		if err = dec.Decode(&k); err != nil {
			break
		}
		work <- k
	}
	close(work)
	wg.Wait()
	if errors.Is(err, io.EOF) {
		return nil // every kept login read back
	}
	return err
}

// close removes the file.
func (c *laterChecks) close() error {
	return errors.Join(c.f.Close(), os.Remove(c.f.Name()))
}

// keep records a finished login whose Response waits for checkKept; an error if it could not be kept.
func (r *results) keep(k keptLogin) error {
	if err := r.later.keep(k); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.span(k.Start, k.End)
	r.kept++
	return nil
}

// waitingCheck is how many finished logins wait for checkKept.
func (r *results) waitingCheck() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.kept
}

// checkKept checks the kept Responses with verify and counts their logins, as add would have when they
// finished: a Response that fails its check fails its login, and only those that pass add their timings. It
// returns how many it checked.
func (r *results) checkKept(verify func(response) *failure) (int, error) {
	checked := 0
	err := r.later.each(func(k keptLogin) {
		f := verify(k.R)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.kept--
		checked++
		r.outcome(k.T, f) // a failure leaves the timings out
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil && r.kept == 0 {
		err = nil // what followed the last login kept was a write that failed, and its login failed with it
	}
	if err != nil { // the rest could not be read back: their logins fail, unchecked
		for ; r.kept > 0; r.kept-- {
			r.outcome(nil, &failure{stepVerify, "not checked", "the Response could not be read back: " + err.Error()})
		}
	}
	return checked, err
}
