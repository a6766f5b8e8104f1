package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/winkk/passport/api/apitest"
	"github.com/winkk/passport/authn"
)

// load runs passport-load against s with args and returns its exit status, stdout and stderr.
func load(t *testing.T, s *apitest.Server, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args = append([]string{"--idp", s.URL}, args...)
	getenv := func(k string) string {
		if k == "PASSPORT_ADMIN_TOKEN" {
			return apitest.AdminToken
		}
		return ""
	}
	code := run(ctx, args, getenv, &out, &errOut)
	return code, out.String(), errOut.String()
}

// loadJSON runs passport-load with --json and decodes its report.
func loadJSON(t *testing.T, s *apitest.Server, args ...string) (int, *Report) {
	t.Helper()
	code, out, errOut := load(t, s, append(args, "--json")...)
	var rep Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("passport-load %v: exit %d, report not JSON (%v):\n%s\nstderr: %s", args, code, err, out, errOut)
	}
	if errOut != "" {
		t.Logf("stderr: %s", errOut)
	}
	return code, &rep
}

// metric reads one unlabelled sample, or the sum over one label value, from the server's /metrics.
func metric(t *testing.T, s *apitest.Server, name string) float64 {
	t.Helper()
	m, err := scrapeMetrics(context.Background(), http.DefaultClient, s.URL+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	return m.values[name]
}

// assertCleanedUp fails unless the run left no user and no application behind.
func assertCleanedUp(t *testing.T, s *apitest.Server, run string) {
	t.Helper()
	ctx := context.Background()
	users, err := s.Svc.Users.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		if strings.HasPrefix(u.Email, "load-") {
			t.Errorf("user %s left behind", u.Email)
		}
	}
	apps, err := s.Svc.Apps.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range apps {
		t.Errorf("application %s (%s) left behind", a.ID, a.Name)
	}
	if devs, err := s.Svc.Devices.List(ctx, "load-"+run+"-1@example.com"); err != nil || len(devs) != 0 {
		t.Errorf("devices of the first user: %d left behind (%v)", len(devs), err)
	}
}

func TestLogins(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t)
	successes := metric(t, s, "passport_logins_total")
	code, rep := loadJSON(t, s, "--logins", "6", "--concurrency", "3")
	if code != exitOK {
		t.Errorf("exit %d, want 0; errors %+v", code, rep.Errors)
	}
	if l := rep.Logins; l.Attempted != 6 || l.Succeeded != 6 || l.Failed != 0 || l.Interrupted != 0 || len(rep.Errors) != 0 {
		t.Errorf("logins %+v, errors %+v; want 6 attempted, 6 succeeded, no error", l, rep.Errors)
	}
	if rep.Stopped != "6 logins done" {
		t.Errorf("stopped: %q", rep.Stopped)
	}
	// The IdP agrees: it answered six logins with a Response.
	if got := metric(t, s, "passport_logins_total") - successes; got != 6 {
		t.Errorf("the IdP counted %v successful logins, want 6", got)
	}
	// Each login's browser opened one connection: the event stream's end handed it on to the Response page.
	if c := rep.BrowserConns; c == nil {
		t.Error("the report has no browser connections per login")
	} else if *c != 1 {
		t.Errorf("browser connections per login %v, want 1", *c)
	}
	for _, st := range steps {
		lt, ok := rep.Latencies[st.Key]
		if st.Optional && runtime.GOOS != "linux" {
			if ok {
				t.Errorf("latency of %s: %+v, where this system cannot measure it", st.Label, lt)
			}
			continue
		}
		if lt.Count != 6 || lt.Min <= 0 || lt.P50 < lt.Min || lt.P90 < lt.P50 || lt.P99 < lt.P90 || lt.Max < lt.P99 {
			t.Errorf("latency of %s: %+v, want 6 ordered percentiles", st.Label, lt)
		}
	}
	// The approval left after this generator started timing it, and the kernel received each "approved" before
	// the generator read it, so every percentile of arrived is at most approve's.
	if arrived, told := rep.Latencies[stepArrived], rep.Latencies[stepApprove]; runtime.GOOS == "linux" &&
		(arrived.Min > told.Min || arrived.P50 > told.P50 || arrived.P99 > told.P99 || arrived.Max > told.Max) {
		t.Errorf("approve sent → told arrived %+v, after this generator read it %+v", arrived, told)
	}
	if whole, sso := rep.Latencies[stepLogin], rep.Latencies[stepSSO]; whole.Min < sso.Min {
		t.Errorf("a whole login (%v) took less than its first step (%v)", whole.Min, sso.Min)
	}
	if rep.Rate <= 0 || rep.Throughput != rep.Rate || rep.Duration <= 0 {
		t.Errorf("rate %v, throughput %v, duration %v", rep.Rate, rep.Throughput, rep.Duration)
	}
	c := rep.Cost
	switch {
	case c == nil:
		t.Fatal("no IdP cost in the report")
	case c.CPUPerLogin == nil || *c.CPUPerLogin <= 0:
		t.Errorf("CPU per login: %v", c.CPUPerLogin)
	case c.StoreCommandsPerLogin == nil || *c.StoreCommandsPerLogin <= 0 || c.StoreTripsPerLogin == nil || *c.StoreTripsPerLogin <= 0:
		t.Errorf("store per login: %v commands, %v round trips", c.StoreCommandsPerLogin, c.StoreTripsPerLogin)
	case len(c.Missing) != 0:
		t.Errorf("metrics missing: %v", c.Missing)
	}
	if sig := rep.Signature; sig == nil || sig.Median <= 0 || sig.MedianWall <= 0 || sig.Samples != signatureSamples || sig.Ratio <= 0 {
		t.Errorf("signature: %+v", sig)
	} else if want := *c.CPUPerLogin / (2 * sig.Median.Seconds()); sig.Ratio != want {
		t.Errorf("ratio %v, want CPU per login / two signatures = %v", sig.Ratio, want)
	}
	// Linux tells the machine's stolen CPU; a share of it, whatever the hypervisor does meanwhile.
	if runtime.GOOS == "linux" && (rep.Steal == nil || *rep.Steal < 0 || *rep.Steal > 100) {
		t.Errorf("stolen CPU: %v, want a percentage", rep.Steal)
	}
	// It names the processor as /proc/cpuinfo does, where there is one.
	if info, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if want := parseCPUInfo(string(info)); rep.CPU != want {
			t.Errorf("processor %q, want %q", rep.CPU, want)
		}
	}
	// Every login's page waited on its stream when the phone approved: the IdP measured each one.
	if tl := rep.Told; tl == nil || tl.Count != int64(rep.Logins.Succeeded) || tl.P50 <= 0 || tl.P50 > tl.P90 || tl.P90 > tl.P99 {
		t.Errorf("the IdP's approve → told: %+v, want one per login (%d)", tl, rep.Logins.Succeeded)
	}
	// One signature is timed as the logins start, and one more every signatureEvery while they run.
	if d := rep.Signature.During; d == nil || d.Samples < 1 || d.Samples > int(rep.Duration/signatureEvery)+2 || d.Median <= 0 || d.MedianWall <= 0 {
		t.Errorf("signature while the logins ran: %+v (the logins took %v)", d, rep.Duration)
	} else if want := *c.CPUPerLogin / (2 * d.Median.Seconds()); d.Ratio != want {
		t.Errorf("ratio while the logins ran %v, want CPU per login / two of those signatures = %v", d.Ratio, want)
	}
	if !rep.Sources.Loopback || rep.Sources.Count != defaultSourceAddrs {
		t.Errorf("sources: %+v, want the default loopback pool", rep.Sources)
	}
	if rep.Setup.Users < 1 || rep.Setup.Users > 6 {
		t.Errorf("%d users for 6 logins", rep.Setup.Users)
	}
	assertCleanedUp(t, s, rep.Run)
}

// A run bounded by time alone learns its rate in a warm-up and enrolls users enough for it.
func TestDuration(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t)
	code, rep := loadJSON(t, s, "--duration", "1s", "--concurrency", "2")
	if code != exitOK || rep.Logins.Succeeded == 0 || rep.Logins.Failed != 0 {
		t.Errorf("exit %d, logins %+v, errors %+v", code, rep.Logins, rep.Errors)
	}
	// The report's duration runs from the first login's start to the last one's end. The second's clock starts
	// just before the workers do, and a worker stops only when it has ended a login past it, so the logins
	// take the second whole but for the moment the first worker takes to start: 100 ms is room for a machine
	// under load, not a speed bound.
	if rep.Stopped != "--duration reached" || rep.Duration < time.Second-100*time.Millisecond {
		t.Errorf("stopped %q after %v, want the duration reached", rep.Stopped, rep.Duration)
	}
	if len(rep.Notes) == 0 || !strings.HasPrefix(rep.Notes[0], "warm-up: ") {
		t.Errorf("notes %q, want the warm-up's", rep.Notes)
	}
	if rep.Setup.Users < 8 || rep.Setup.Duration <= 0 {
		t.Errorf("%d users set up in %v, want the first batch (4 per worker) at least", rep.Setup.Users, rep.Setup.Duration)
	}
	assertCleanedUp(t, s, rep.Run)
}

func TestTextReport(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t)
	code, out, errOut := load(t, s, "--logins", "2", "--concurrency", "2")
	if code != exitOK || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{
		"Logins        [attempted, succeeded, failed, interrupted]     2, 2, 0, 0\n",
		"  SSO → page ", "  email → number ", "  approve → browser told ", "  told → Response ", "  whole login ",
		"IdP told      [count, 50, 90, 99, from its histogram]         2, ",
		"IdP per login [CPU, store commands, store round trips]",
		"Signature     [RSA-2048 PKCS#1 v1.5 SHA-256, median of 300]   ", " CPU, ", " wall\n",
		"  IdP CPU per login / two signatures",
		"  timed while the logins ran [median of ", "  IdP CPU per login / two of these",
		"Errors        [step: kind, count, example]                    0\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the text report has no %q:\n%s", want, out)
		}
	}
	if arrived := "  approve sent → told arrived "; strings.Contains(out, arrived) != (runtime.GOOS == "linux") {
		t.Errorf("the text report shows %q: %v, want it on Linux only:\n%s", arrived, strings.Contains(out, arrived), out)
	}
	if machine := "Machine       [processor, CPU stolen by the hypervisor]"; runtime.GOOS == "linux" && !strings.Contains(out, machine) {
		t.Errorf("the text report has no %q:\n%s", machine, out)
	}
}

// TestWaiting is not parallel: go_goroutines counts the whole test process, and another test's goroutines
// starting or ending between the two readings moved the count per waiting browser (it read -3.75 once,
// under the race detector).
func TestWaiting(t *testing.T) {
	s := apitest.Start(t)
	code, rep := loadJSON(t, s, "--waiting", "4", "--logins", "0", "--concurrency", "2")
	if code != exitOK {
		t.Errorf("exit %d, want 0", code)
	}
	w := rep.Waiting
	if w == nil {
		t.Fatal("no waiting section in the report")
	}
	if w.Browsers != 4 || w.Waiting != 4 || w.Failed != 0 || len(w.Errors) != 0 {
		t.Errorf("waiting %+v, want 4 browsers all waiting", w)
	}
	if w.RSSBefore <= 0 || w.RSSAfter <= 0 || w.RSSPerBrowser != (w.RSSAfter-w.RSSBefore)/4 {
		t.Errorf("memory: before %v, after %v, per browser %v", w.RSSBefore, w.RSSAfter, w.RSSPerBrowser)
	}
	// Each waiting browser holds a stream open: the server holds no goroutine for it, but here, in the same
	// process, the browser's reader and its connection's goroutines count too.
	if w.GoroutinesPerBrow < 1 {
		t.Errorf("%v goroutines per waiting browser", w.GoroutinesPerBrow)
	}
	if rep.Logins.Attempted != 0 || rep.Cost != nil || rep.Stopped != "no logins (--logins 0)" {
		t.Errorf("a --logins 0 run did logins: %+v, %q", rep.Logins, rep.Stopped)
	}
	// Four waiting browsers share two users, as the IdP lets three sign-ins of a user wait at once.
	if rep.Setup.Users != 2 {
		t.Errorf("%d users for 4 waiting browsers, want 2", rep.Setup.Users)
	}
	assertCleanedUp(t, s, rep.Run)
}

// TestKeepWaiting: with --keep-waiting the waiting browsers stay open while the logins run, and are closed
// at the end.
func TestKeepWaiting(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t)
	code, rep := loadJSON(t, s, "--waiting", "3", "--keep-waiting", "--logins", "3", "--concurrency", "2")
	if code != exitOK || rep.Logins.Succeeded != 3 || rep.Waiting == nil || rep.Waiting.Waiting != 3 {
		t.Fatalf("exit %d, logins %+v, waiting %+v", code, rep.Logins, rep.Waiting)
	}
	found := false
	for _, n := range rep.Notes {
		found = found || strings.Contains(n, "3 browsers kept waiting")
	}
	if !found {
		t.Errorf("no note of the browsers kept waiting: %q", rep.Notes)
	}
	// The server notices closed streams within a second or so.
	for deadline := time.Now().Add(10 * time.Second); s.API.Streams() != 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d streams still open after the run", s.API.Streams())
		}
	}
	assertCleanedUp(t, s, rep.Run)
}

func TestWrongAdminToken(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t)
	code, out, errOut := load(t, s, "--logins", "2", "--admin-token", "not-the-token")
	if code != exitFail {
		t.Errorf("exit %d, want 1", code)
	}
	if out != "" {
		t.Errorf("a report without a run:\n%s", out)
	}
	if !strings.Contains(errOut, "HTTP 401") || !strings.Contains(errOut, "check --admin-token") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("stderr %q, want one line saying the admin token was refused", errOut)
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t)
	for _, args := range [][]string{
		{"--concurrency", "0"},
		{"--logins", "0"},
		{"--duration", "0", "--logins", "-1"},
		{"--idp", "http://127.0.0.1:1/some/path"},
		{"--source-addrs", "-1"},
		{"--redis", "127.0.0.1:6379"},
		{"--redis", "http://127.0.0.1:6379"},
		{"--redis-prefix", "passport:"},
		{"--sign", "nothing"},
		{"stray"},
	} {
		code, out, errOut := load(t, s, args...)
		if code != exitUsage || out != "" || !strings.HasPrefix(errOut, "passport-load: ") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 2 and one line", args, code, out, errOut)
		}
	}
	var out bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, func(string) string { return "" }, &out, io.Discard); code != exitOK || !strings.Contains(out.String(), "--source-addrs N") ||
		!strings.Contains(out.String(), "--redis URL") || !strings.Contains(out.String(), "--redis-prefix P") || !strings.Contains(out.String(), "--sign WHAT") {
		t.Errorf("--help: exit %d:\n%s", code, out.String())
	}
}

// --sign registers the application with that sign, and each Response must carry exactly those signatures:
// with assertion, a signed assertion in an unsigned Response (which the IdP makes with one RSA signature).
func TestSign(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t)
	for _, sign := range []string{"assertion", "response"} {
		code, rep := loadJSON(t, s, "--logins", "3", "--concurrency", "2", "--sign", sign)
		if code != exitOK || rep.Logins.Succeeded != 3 || len(rep.Errors) != 0 {
			t.Errorf("--sign %s: exit %d, logins %+v, errors %+v", sign, code, rep.Logins, rep.Errors)
		}
		if rep.Sign != sign || !slices.ContainsFunc(rep.Notes, func(n string) bool { return strings.Contains(n, "signs the "+sign+" only") }) {
			t.Errorf("--sign %s: report says sign %q, notes %q", sign, rep.Sign, rep.Notes)
		}
		assertCleanedUp(t, s, rep.Run)
	}
}

// The IdP limits email submissions per client address; the run's browsers come from many addresses so the
// limit does not bite, and when it does bite, the failures are counted by step and kind.
func TestPerAddressLimit(t *testing.T) {
	t.Parallel()
	limit := func(c *authn.Config) { c.IdentifyLimit = 3 }
	t.Run("spread", func(t *testing.T) {
		s := apitest.Start(t, limit)
		code, rep := loadJSON(t, s, "--logins", "8", "--concurrency", "2", "--source-addrs", "4")
		if code != exitOK || rep.Logins.Succeeded != 8 || len(rep.Errors) != 0 {
			t.Errorf("exit %d, %+v, errors %+v; want 8 logins over 4 addresses to succeed", code, rep.Logins, rep.Errors)
		}
		assertCleanedUp(t, s, rep.Run)
	})
	t.Run("one address", func(t *testing.T) {
		s := apitest.Start(t, limit)
		code, rep := loadJSON(t, s, "--logins", "5", "--concurrency", "1", "--source-addrs", "1")
		if code != exitFail {
			t.Errorf("exit %d, want 1 when logins failed", code)
		}
		if l := rep.Logins; l.Succeeded != 3 || l.Failed != 2 {
			t.Errorf("logins %+v, want 3 succeeded and 2 refused", l)
		}
		if len(rep.Errors) != 1 || rep.Errors[0].Step != stepEmail || rep.Errors[0].Kind != "HTTP 429" || rep.Errors[0].Count != 2 || !strings.Contains(rep.Errors[0].Example, "Too many attempts") {
			t.Errorf("errors %+v, want 2 × email: HTTP 429 with the page's message", rep.Errors)
		}
		if rep.Latencies[stepLogin].Count != 3 {
			t.Errorf("latencies of %d logins, want the 3 that succeeded", rep.Latencies[stepLogin].Count)
		}
		if !strings.HasPrefix(rep.Sources.Note, "one loopback address") {
			t.Errorf("sources: %q", rep.Sources.Note)
		}
		assertCleanedUp(t, s, rep.Run)
	})
}

// Interrupted (Ctrl-C) in the middle, the run stops, reports what it did, and still deletes what it created.
func TestInterrupted(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t)
	cfg, err := parseConfig([]string{"--idp", s.URL, "--admin-token", apitest.AdminToken, "--duration", "30s", "--concurrency", "2", "--users", "4"}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logins atomic.Int64
	u := &ui{w: io.Discard, tick: func(what string) {
		if what == "logins" && logins.Add(1) == 3 {
			cancel()
		}
	}}
	rep, err := loadTest(ctx, cfg, u)
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Errorf("error %v, want interrupted", err)
	}
	if rep == nil {
		t.Fatal("no report")
	}
	if rep.Stopped != "interrupted" || rep.Logins.Succeeded < 3 || rep.Logins.Failed != 0 {
		t.Errorf("stopped %q, logins %+v, errors %+v; want at least 3 logins, none failed", rep.Stopped, rep.Logins, rep.Errors)
	}
	assertCleanedUp(t, s, rep.Run)
}

func TestAuthnRequestShape(t *testing.T) {
	t.Parallel()
	at := time.Date(2030, 1, 2, 3, 4, 5, 6e6, time.UTC)
	got := authnRequest("_abc", "https://idp.example/saml/x/sso", "https://auth.atlassian.com/login/callback?connection=saml-1&x=<y>", "https://auth.atlassian.com/saml/1", at)
	for _, want := range []string{
		`ID="_abc"`, `IssueInstant="2030-01-02T03:04:05.006Z"`, `Destination="https://idp.example/saml/x/sso"`,
		`AssertionConsumerServiceURL="https://auth.atlassian.com/login/callback?connection=saml-1&amp;x=&lt;y&gt;"`,
		`<saml:Issuer xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">https://auth.atlassian.com/saml/1</saml:Issuer>`,
		`Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("AuthnRequest has no %s:\n%s", want, got)
		}
	}
}

func TestSourceAddresses(t *testing.T) {
	t.Parallel()
	for i, want := range map[int]string{0: "127.100.0.1", 253: "127.100.0.254", 254: "127.100.1.1", 254 * 256: "127.101.0.1", maxSourceAddrs - 1: "127.104.8.16"} {
		if got := sourceAt(i).String(); got != want {
			t.Errorf("source %d: %s, want %s", i, got, want)
		}
	}
	ctx := context.Background()
	for host, want := range map[string]bool{"127.0.0.1": true, "127.8.9.10": true, "::1": false, "localhost": true, "192.0.2.1": false} {
		src, err := newSources(ctx, host, 16)
		if err != nil {
			t.Fatal(err)
		}
		if src.Loopback() != want {
			t.Errorf("%s: loopback pool %v, want %v (%s)", host, src.Loopback(), want, src.Note)
		}
	}
	src, _ := newSources(ctx, "127.0.0.1", 3)
	var got []string
	for range 4 {
		got = append(got, src.pick().String())
	}
	if fmt.Sprint(got) != "[127.100.0.1 127.100.0.2 127.100.0.3 127.100.0.1]" {
		t.Errorf("picked %v, want the pool in turn", got)
	}
}
