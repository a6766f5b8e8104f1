package main

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/winkk/passport/api/apitest"
	"github.com/winkk/passport/saml"
)

// With --check-after every Response is still checked, after the logins, and the temporary file goes with the run.
func TestCheckAfter(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	s := apitest.Start(t)
	code, rep := loadJSON(t, s, "--logins", "6", "--concurrency", "3", "--check-after")
	if code != exitOK || rep.Logins.Succeeded != 6 || rep.Logins.Failed != 0 || len(rep.Errors) != 0 {
		t.Errorf("exit %d, logins %+v, errors %+v; want 6 succeeded", code, rep.Logins, rep.Errors)
	}
	if c := rep.Check; c == nil || !c.After || c.Responses != 6 || c.Duration <= 0 || c.CPUPerResponse <= 0 {
		t.Errorf("check %+v, want 6 Responses checked after the logins", rep.Check)
	}
	if lt := rep.Latencies[stepLogin]; lt.Count != 6 || rep.Duration <= 0 || rep.Rate <= 0 {
		t.Errorf("latency of the whole login %+v, duration %v, rate %v", lt, rep.Duration, rep.Rate)
	}
	if !strings.Contains(strings.Join(rep.Notes, "\n"), "checked after the logins (--check-after)") {
		t.Errorf("notes %q do not say the Responses were checked after the logins", rep.Notes)
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "*")); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
	assertCleanedUp(t, s, rep.Run)

	// Without the flag the report has no check section: each Response was checked as it arrived.
	code, rep = loadJSON(t, s, "--logins", "2")
	if code != exitOK || rep.Check != nil {
		t.Errorf("without --check-after: exit %d, check %+v", code, rep.Check)
	}
}

// A Response checked after the logins is checked as at the moment it arrived, and one that fails its check fails
// its login, leaving its timings out; real Responses from a real IdP.
func TestCheckKept(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t)
	ctx := context.Background()
	src, err := newSources(ctx, "127.0.0.1", 16)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config{Concurrency: 1, Timeout: 30 * time.Second}
	plain := &http.Client{Timeout: 30 * time.Second}
	fx := newFixture(&adminClient{base: s.URL, token: apitest.AdminToken, http: plain}, "example.com", saml.SignBoth)
	l := &loadRun{cfg: cfg, ui: &ui{w: io.Discard}, fx: fx, plain: plain, phones: &http.Client{Timeout: cfg.Timeout}, pool: newUserPool()}
	if err := fx.createApp(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fx.cleanup(context.Background(), 1) })
	l.r = &runner{fx: fx, sources: src, timeout: cfg.Timeout}
	users, err := l.enroll(ctx, 1, 10)
	if err != nil {
		t.Fatal(err)
	}
	var good []keptLogin
	for range 2 {
		start := time.Now()
		tm, resp, f := l.r.login(ctx, users[0], src.pick())
		if f != nil {
			t.Fatal(f)
		}
		good = append(good, keptLogin{Start: start, End: time.Now(), T: tm, R: resp})
	}
	if f := l.r.verify(good[0].R); f != nil {
		t.Fatalf("a fresh Response fails its check: %v", f)
	}
	// An hour on, the same Response has expired: the clock the check reads is the one it arrived by.
	late := good[0].R
	late.At = late.At.Add(time.Hour)
	if f := l.r.verify(late); f == nil || f.Step != stepVerify {
		t.Errorf("a Response checked as an hour after it arrived: %v, want a failed check", f)
	}

	res := newResults()
	if res.later, err = newLaterChecks(); err != nil {
		t.Fatal(err)
	}
	name := res.later.f.Name()
	tampered := good[1]
	tampered.R.SAMLResponse = tamper(t, tampered.R.SAMLResponse)
	for _, k := range []keptLogin{good[0], tampered} {
		if err := res.keep(k); err != nil {
			t.Fatal(err)
		}
	}
	if res.done() != 2 || res.waitingCheck() != 2 {
		t.Errorf("done %d, waiting for the check %d; want 2 and 2", res.done(), res.waitingCheck())
	}
	n, err := res.checkKept(l.r.verify)
	if err != nil || n != 2 {
		t.Fatalf("checked %d (%v), want 2", n, err)
	}
	var rep Report
	res.fill(&rep)
	if rep.Logins.Succeeded != 1 || rep.Logins.Failed != 1 || len(rep.Errors) != 1 || rep.Errors[0].Step != stepVerify {
		t.Errorf("logins %+v, errors %+v; want the tampered Response's login failed at verify", rep.Logins, rep.Errors)
	}
	if lt := rep.Latencies[stepLogin]; lt.Count != 1 {
		t.Errorf("whole login latencies of %d logins, want only the one whose Response passed", lt.Count)
	}
	if want := good[1].End.Sub(good[0].Start); rep.Duration != want {
		t.Errorf("duration %v, want from the first login's start to the last one's end, %v", rep.Duration, want)
	}
	if err := res.later.close(); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(name); !os.IsNotExist(err) {
		t.Errorf("the file of Responses is still there: %v", err)
	}
}

// tamper changes the user's email where the signed Response first names it (its assertion's NameID).
func tamper(t *testing.T, b64 string) string {
	t.Helper()
	xml, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(xml), "@example.com<", "@examplf.com<", 1)
	if s == string(xml) {
		t.Fatalf("no email to tamper with in %s", xml)
	}
	return base64.StdEncoding.EncodeToString([]byte(s))
}
