package api_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/winkk/passport/api"
	"github.com/winkk/passport/api/apitest"
	"github.com/winkk/passport/api/deviceapi"
)

// TestMetricsOnlyForLoopback: without a metrics listener, /metrics is served to loopback clients only, the
// client being the one PASSPORT_TRUSTED_PROXIES determines: a public client behind a trusted proxy on the
// same host gets the 404 of an unknown path. With a metrics listener, the main handler serves no /metrics at
// all, and the operations handler serves it (and no profiles unless asked).
func TestMetricsOnlyForLoopback(t *testing.T) {
	t.Parallel()
	e := envOf(t, apitest.StartAPI(t, func(c *api.Config) { c.TrustedProxies = loopbackProxies(t) }))
	get := func(base, path, forwardedFor string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		if forwardedFor != "" {
			req.Header.Set("X-Forwarded-For", forwardedFor)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	st, body := get(e.URL, "/metrics", "")
	if st != http.StatusOK || !strings.Contains(body, "process_cpu_seconds_total") || !strings.Contains(body, "process_resident_memory_bytes") {
		t.Errorf("/metrics from loopback: %d\n%.300s", st, body)
	}
	// A client who forged "127.0.0.1" before the proxy's own entry is still the address the proxy saw.
	for _, xff := range []string{"203.0.113.9", "2001:db8::9", "127.0.0.1, 198.51.100.4"} {
		st, body := get(e.URL, "/metrics", xff)
		if st != http.StatusNotFound || strings.Contains(body, "passport_") || !strings.Contains(body, "There is nothing at this address") {
			t.Errorf("/metrics for client %s through the proxy: %d, want the 404 of an unknown path\n%.300s", xff, st, body)
		}
	}

	sep := envOf(t, apitest.StartAPI(t, func(c *api.Config) { c.MetricsListener = true }))
	if st, _ := get(sep.URL, "/metrics", ""); st != http.StatusNotFound {
		t.Errorf("/metrics on the main handler with a metrics listener, from loopback: %d, want 404", st)
	}
	ops := httptest.NewServer(sep.srv.OpsHandler())
	defer ops.Close()
	if st, body := get(ops.URL, "/metrics", ""); st != http.StatusOK || !strings.Contains(body, "process_cpu_seconds_total") {
		t.Errorf("/metrics on the operations handler: %d", st)
	}
	if st, _ := get(ops.URL, "/debug/pprof/", ""); st != http.StatusNotFound {
		t.Errorf("/debug/pprof/ without Pprof: %d, want 404", st)
	}
}

// TestLoginToldMetric: passport_login_told_seconds counts, by answer, the pages that were waiting on this
// server's event stream when the phone answered (one approved, one denied). A login answered while no page
// waited is not counted, nor is the answer a stream opened afterwards shows first: neither measures how soon
// the server tells a waiting page.
func TestLoginToldMetric(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.newApp("Jira", atlassianAudience, acsURL)
	ph := e.enroll(employee)
	ctx := context.Background()
	login := func(decision string, watch bool) {
		t.Helper()
		b := newBrowser(t)
		waiting := b.identify(b.startLogin(e.sp(app), ""), employee)
		var events <-chan string
		if watch {
			var first string
			first, events, _ = openStream(t, b.c, waiting.URL)
			if first != "state pending" {
				t.Fatalf("first event %q, want state pending", first)
			}
		}
		ch := ph.waitChallenge(t)
		if _, err := ph.AnswerChallenge(ctx, ch.ID, deviceapi.AnswerRequest{Decision: decision, Number: waiting.number(t)}); err != nil {
			t.Fatalf("%s: %v", decision, err)
		}
		want := "state approved"
		if decision == deviceapi.DecisionDeny {
			want = "state denied"
		}
		if watch {
			wantEvent(t, events, want, "the page waiting")
			return
		}
		if first, _, _ := openStream(t, b.c, waiting.URL); first != want {
			t.Fatalf("a stream opened after the answer first sent %q, want %q", first, want)
		}
	}
	login(deviceapi.DecisionApprove, true)
	login(deviceapi.DecisionDeny, true)
	login(deviceapi.DecisionApprove, false)

	wants := []string{`passport_login_told_seconds_count{answer="approved"} 1` + "\n", `passport_login_told_seconds_count{answer="denied"} 1` + "\n"}
	metrics := metricsWith(t, e.URL, wants...)
	for _, want := range wants {
		if !strings.Contains(metrics, want) {
			t.Errorf("the metrics lack %q", want)
		}
	}
}
