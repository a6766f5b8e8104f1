package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/winkk/passport/api/apitest"
	"github.com/winkk/passport/api/deviceapi"
	"github.com/winkk/passport/store"
	"github.com/winkk/passport/store/storetest"
)

// balancer is a load balancer in front of replicas, without sticky sessions: each new request goes to the
// replica the test points it at (a request already proxied, such as an event stream, stays where it is).
type balancer struct {
	URL    string
	target atomic.Pointer[url.URL]
}

func newBalancer(t *testing.T) *balancer {
	lb := &balancer{}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(lb.target.Load())
			r.Out.Host = r.In.Host // the replicas serve the balancer's public name
		},
		FlushInterval: -1, // event streams flow at once
	}
	ts := httptest.NewServer(proxy)
	t.Cleanup(ts.Close)
	lb.URL = ts.URL
	return lb
}

// to sends the next requests to the replica at direct.
func (lb *balancer) to(t *testing.T, direct string) {
	u, err := url.Parse(direct)
	if err != nil {
		t.Fatal(err)
	}
	lb.target.Store(u)
}

// startReplicas runs two servers on one store (the same Redis and key prefix) behind a balancer; both serve
// the balancer's URL as their public one.
func startReplicas(t *testing.T) (lb *balancer, a, b *apitest.Server) {
	t.Helper()
	lb = newBalancer(t)
	stA := storetest.Open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stB, err := store.Open(ctx, store.Options{URL: redisURLOf(t), Prefix: stA.Prefix(), Spread: stA.Spread()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stB.Close() })
	a = apitest.StartWith(t, stA, apitest.Options{BaseURL: lb.URL})
	b = apitest.StartWith(t, stB, apitest.Options{BaseURL: lb.URL})
	lb.to(t, a.Direct)
	return lb, a, b
}

// redisURLOf is the real Redis the tests use; replicas need one (the embedded store lives in one process).
func redisURLOf(t *testing.T) string {
	t.Helper()
	u, ok := storetest.RedisURL()
	if !ok {
		t.Skip("two replicas need a real Redis: none answers")
	}
	return u
}

// TestReplicasShareLogins: a login parked by replica A and approved through replica B's device API reaches the
// browser waiting on A's event stream at once (by B's pub/sub announcement), and its Response verifies.
func TestReplicasShareLogins(t *testing.T) {
	t.Parallel()
	lb, a, b := startReplicas(t)
	e := envOf(t, a)
	app := e.newApp("Jira", atlassianAudience, acsURL)
	ph := e.enroll(employee)

	br := newBrowser(t)
	waiting := br.identify(br.startLogin(e.sp(app), ""), employee)
	number := waiting.number(t)
	first, events, _ := openStream(t, br.c, waiting.URL) // closed when the test ends
	if first != "state pending" {
		t.Fatalf("first event %q", first)
	}

	lb.to(t, b.Direct) // the phone's requests now reach B; the stream stays on A
	ch := ph.waitChallenge(t)
	approved := time.Now()
	if _, err := ph.AnswerChallenge(context.Background(), ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionApprove, Number: number}); err != nil {
		t.Fatalf("approve through B: %v", err)
	}
	if !strings.Contains(b.Logs.String(), "challenge answered") || strings.Contains(a.Logs.String(), "challenge answered") {
		t.Fatal("the approval was not served by replica B")
	}
	select {
	case ev := <-events:
		if ev != "state approved" {
			t.Fatalf("A's stream sent %q, want state approved", ev)
		}
		// A bound, not a timing: nothing else would tell A's stream within seconds (the login expires in
		// minutes); told well within that, it was told by B's announcement.
		if d := time.Since(approved); d > 2*time.Second {
			t.Errorf("A's stream was told %v after B recorded the approval", d)
		}
		t.Logf("approve through B → A's stream told in %v", time.Since(approved))
	case <-time.After(10 * time.Second):
		t.Fatal("A's stream was not told of the approval made through B")
	}
	// The page waited on A: A measured how soon it was told, from the time B recorded the approval; B had no
	// page to tell.
	const told = `passport_login_told_seconds_count{answer="approved"} 1` + "\n"
	if !strings.Contains(metricsWith(t, a.Direct, told), told) || strings.Contains(string(fetch(t, b.Direct+"/metrics")), "passport_login_told_seconds_count") {
		t.Errorf("want %q on A's /metrics only", told)
	}
	lb.to(t, a.Direct)
	samlResp, _ := samlForm(t, br.get(waiting.URL), acsURL)
	e.bothAccept(t, app, samlResp, employee, []string{br.requestID})
}

// TestReplicaRestartedMidLogin: a login parked by replica A, then A stops (restarted or gone); the browser
// reloads on B, the phone approves through B, and the login completes with a Response that verifies.
func TestReplicaRestartedMidLogin(t *testing.T) {
	t.Parallel()
	lb, a, b := startReplicas(t)
	e := envOf(t, a)
	app := e.newApp("Jira", atlassianAudience, acsURL)
	ph := e.enroll(employee)

	br := newBrowser(t)
	waiting := br.identify(br.startLogin(e.sp(app), ""), employee)
	number := waiting.number(t)

	a.Stop()
	lb.to(t, b.Direct)
	if p := br.get(waiting.URL); p.Status != http.StatusOK || p.number(t) != number {
		t.Fatalf("the login page on B: %d, want the same waiting login:\n%s", p.Status, p.Body)
	}
	ch := ph.waitChallenge(t)
	if _, err := ph.AnswerChallenge(context.Background(), ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionApprove, Number: number}); err != nil {
		t.Fatalf("approve through B: %v", err)
	}
	samlResp, _ := samlForm(t, br.get(waiting.URL), acsURL)
	e.bothAccept(t, app, samlResp, employee, []string{br.requestID})
	if !strings.Contains(b.Logs.String(), "challenge answered") {
		t.Error("the approval was not served by replica B")
	}
}
