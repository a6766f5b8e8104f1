package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/winkk/passport/api"
	"github.com/winkk/passport/api/apitest"
	"github.com/winkk/passport/api/deviceapi"
	"github.com/winkk/passport/saml"
)

// wantEvent waits up to 10 s for the next event of a stream opened with openStream and fails t unless it is
// want; what says what the event follows.
func wantEvent(t *testing.T, events <-chan string, want, what string) {
	t.Helper()
	select {
	case ev := <-events:
		if ev != want {
			t.Fatalf("%s: the stream sent %q, want %q", what, ev, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: the stream sent nothing within 10s, want %q", what, want)
	}
}

// openStream opens the event stream of the login page at loginURL with client c and returns its first event
// ("state pending", ...), the events after it, and a function that closes the stream. It fails unless the
// server answers 200.
func openStream(t *testing.T, c *http.Client, loginURL string) (string, <-chan string, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", loginURL+"/events", nil)
	resp, err := c.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("event stream: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		t.Fatalf("event stream: %d %s", resp.StatusCode, body)
	}
	events := sseEvents(resp.Body)
	first, ok := <-events
	if !ok {
		cancel()
		t.Fatal("the event stream ended before its first event")
	}
	closed := false
	stop := func() {
		if !closed {
			closed = true
			cancel()
			resp.Body.Close()
		}
	}
	t.Cleanup(stop)
	return first, events, stop
}

// sseEvents reads the event stream r and sends each event as "name data" ("state pending"); the channel is
// closed when the stream ends.
func sseEvents(r io.Reader) <-chan string {
	events := make(chan string, 16)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(r)
		event := ""
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "event: "); ok {
				event = v
			} else if v, ok := strings.CutPrefix(line, "data: "); ok {
				events <- event + " " + v
			}
		}
	}()
	return events
}

// refusal is a refused request: its status, error code and message, and Retry-After.
type refusal struct {
	status           int
	code, message    string
	retryAfter, body string
}

// refusedStream opens the event stream of the login page at loginURL with c, expecting a refusal.
func refusedStream(t *testing.T, c *http.Client, loginURL string) refusal {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", loginURL+"/events", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("event stream: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Fatal("the event stream was opened, want it refused")
	}
	body, _ := io.ReadAll(resp.Body)
	var eb struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	_ = json.Unmarshal(body, &eb)
	return refusal{status: resp.StatusCode, code: eb.Error.Code, message: eb.Error.Message, retryAfter: resp.Header.Get("Retry-After"), body: string(body)}
}

// waitStreams waits until the server holds n streams: it notices a closed stream when its handler sees the
// connection end.
func waitStreams(t *testing.T, srv *api.Server, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for srv.Streams() != n {
		if time.Now().After(deadline) {
			t.Fatalf("the server holds %d streams, want %d", srv.Streams(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestEventStreamLimits: a login has at most three event streams open at once and a client address a bounded
// number (here five); past that the stream is refused with 429, a JSON body saying why and Retry-After, while
// other logins and other addresses are served; a closed stream frees its place.
func TestEventStreamLimits(t *testing.T) {
	t.Parallel()
	e := envOf(t, apitest.StartAPI(t, func(c *api.Config) {
		c.Limits.StreamsPerClient = 5
		c.TrustedProxies = loopbackProxies(t)
	}))
	app := e.newApp("Jira", atlassianAudience, acsURL)
	b := newBrowser(t)
	login := b.startLogin(e.sp(app), "").URL

	t.Run("per login", func(t *testing.T) {
		var stops []func()
		for range 3 {
			first, _, stop := openStream(t, b.c, login)
			if first != "state identify" {
				t.Fatalf("first event %q", first)
			}
			stops = append(stops, stop)
		}
		r := refusedStream(t, b.c, login)
		if r.status != http.StatusTooManyRequests || r.code != "rate_limited" || !strings.Contains(r.message, "other tabs") || r.retryAfter == "" {
			t.Errorf("a fourth stream of one login: %+v", r)
		}
		// Another login of the same browser is not affected.
		other := b.startLogin(e.sp(app), "").URL
		_, _, stopOther := openStream(t, b.c, other)
		stopOther()
		// A closed stream frees its place.
		stops[0]()
		waitStreams(t, e.srv, 2)
		_, _, stop := openStream(t, b.c, login)
		for _, stop := range append(stops, stop) {
			stop()
		}
		waitStreams(t, e.srv, 0)
	})

	t.Run("per client address", func(t *testing.T) {
		for range 5 {
			openStream(t, b.c, b.startLogin(e.sp(app), "").URL)
		}
		r := refusedStream(t, b.c, b.startLogin(e.sp(app), "").URL)
		if r.status != http.StatusTooManyRequests || r.code != "rate_limited" || !strings.Contains(r.message, "your network") || r.retryAfter == "" {
			t.Errorf("a sixth stream from one address: %+v", r)
		}
		// Another address (through the trusted proxy) is served.
		other := newBrowser(t)
		other.c.Transport = headerTransport{"X-Forwarded-For", "198.51.100.7"}
		openStream(t, other.c, other.startLogin(e.sp(app), "").URL)
		// The refusals are counted by the bound that refused them.
		metrics := string(fetch(t, e.URL+"/metrics"))
		for _, want := range []string{`passport_streams_refused_total{limit="login"} 1`, `passport_streams_refused_total{limit="client"} 1`, "passport_streams_open 6"} {
			if !strings.Contains(metrics, want) {
				t.Errorf("the metrics lack %q", want)
			}
		}
	})
}

// loopbackProxies trusts the loopback network as a reverse proxy, so a test can speak for other client
// addresses with X-Forwarded-For.
func loopbackProxies(t *testing.T) []*net.IPNet {
	_, n, err := net.ParseCIDR("127.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	return []*net.IPNet{n}
}

// TestStreamCeiling: past the process's ceiling on long-lived requests, event streams and long-polls are
// refused from any address, while /healthz, a new login and ordinary device calls are still served.
func TestStreamCeiling(t *testing.T) {
	t.Parallel()
	e := envOf(t, apitest.StartAPI(t, func(c *api.Config) {
		c.Limits.MaxStreams = 4
		c.TrustedProxies = loopbackProxies(t)
	}))
	app := e.newApp("Jira", atlassianAudience, acsURL)
	ph := e.enroll(employee)
	for i := range 4 {
		b := newBrowser(t)
		b.c.Transport = headerTransport{"X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i+1)}
		openStream(t, b.c, b.startLogin(e.sp(app), "").URL)
	}
	b := newBrowser(t)
	b.c.Transport = headerTransport{"X-Forwarded-For", "203.0.113.50"}
	p := b.startLogin(e.sp(app), "")
	if p.Status != http.StatusOK || !strings.Contains(p.URL, "/login/") {
		t.Fatalf("a new login while the streams are full: %d %s", p.Status, p.URL)
	}
	r := refusedStream(t, b.c, p.URL)
	if r.status != http.StatusTooManyRequests || !strings.Contains(r.message, "as many waiting connections as it can") {
		t.Errorf("a stream past the ceiling: %+v", r)
	}
	ctx := context.Background()
	if _, err := ph.WaitForChallenge(ctx, time.Second); apiCode(err) != "429 rate_limited" {
		t.Errorf("a long-poll past the ceiling: %s", apiCode(err))
	}
	if _, err := ph.ListChallenges(ctx); err != nil {
		t.Errorf("an ordinary device call past the ceiling: %v", err)
	}
	if resp, err := http.Get(e.URL + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz past the ceiling: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
}

// TestLongPollsPerDevice: a device has at most three long-polls waiting at once; a fourth is refused with 429
// at once, and the three are answered when a challenge arrives.
func TestLongPollsPerDevice(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.newApp("Jira", atlassianAudience, acsURL)
	ph := e.enroll(employee)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	type result struct {
		ch  *deviceapi.Challenge
		err error
	}
	results := make(chan result, 3)
	for range 3 {
		go func() {
			ch, err := ph.WaitForChallenge(ctx, deviceapi.MaxWait)
			results <- result{ch, err}
		}()
	}
	for e.srv.Waiting() != 3 {
		time.Sleep(10 * time.Millisecond)
	}
	fourth, cancelFourth := context.WithTimeout(ctx, 5*time.Second)
	defer cancelFourth()
	if _, err := ph.WaitForChallenge(fourth, deviceapi.MaxWait); apiCode(err) != "429 rate_limited" || !strings.Contains(err.Error(), "long-polls") {
		t.Fatalf("a fourth long-poll of one device: %v", err)
	}
	b := newBrowser(t)
	b.identify(b.startLogin(e.sp(app), ""), employee)
	for range 3 {
		r := <-results
		if r.err != nil || r.ch == nil || r.ch.Email != employee {
			t.Errorf("a waiting long-poll: %+v %v", r.ch, r.err)
		}
	}
	waitStreams(t, e.srv, 0)
	if _, err := ph.WaitForChallenge(ctx, time.Second); err != nil {
		t.Errorf("a long-poll once the others answered: %v", err)
	}
}

// TestHeaderLimit: request headers past what the largest Redirect-binding request needs are answered 431 by
// the HTTP server, before any handler runs; a Redirect-binding request at the SAML layer's own limits still
// reaches the SAML layer.
func TestHeaderLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.newApp("Jira", atlassianAudience, acsURL)
	for _, size := range []int{100 << 10, 1 << 20} {
		req, _ := http.NewRequest("GET", e.URL+"/healthz", nil)
		req.Header.Set("X-Padding", strings.Repeat("a", size))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%d-byte header: %v", size, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("%d-byte header: %d, want 431", size, resp.StatusCode)
		}
	}
	// As large as the Redirect binding is allowed: the SAML layer refuses this one, the header limit does not.
	q := "SAMLRequest=" + strings.Repeat("A", saml.MaxEncodedSize) + "&RelayState=" + strings.Repeat("r", saml.MaxRelayStateSize) +
		"&SigAlg=http%3A%2F%2Fwww.w3.org%2F2001%2F04%2Fxmldsig-more%23rsa-sha256&Signature=" + strings.Repeat("S", 344)
	req, _ := http.NewRequest("GET", app.SSOURL+"?"+q, nil)
	req.Header.Set("User-Agent", strings.Repeat("u", 512))
	req.Header.Set("Cookie", "passport_session="+strings.Repeat("c", 64))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusRequestHeaderFieldsTooLarge || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a Redirect-binding request at the SAML limits: %d, want the SAML layer's 400", resp.StatusCode)
	}
}

// TestStalledReaderIsDisconnected: a client that pipelines requests and never reads the answers is
// disconnected once a write to it has waited WriteTimeout (here half a second, a minute at most in
// production), instead of holding a connection and a goroutine for ever.
func TestStalledReaderIsDisconnected(t *testing.T) {
	t.Parallel()
	e := envOf(t, apitest.StartAPI(t, func(c *api.Config) { c.Limits.WriteTimeout = 500 * time.Millisecond }))
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The OpenAPI document is a large answer: the socket buffers fill after a few hundred of them.
	request := []byte("GET /api/v1/openapi.yaml HTTP/1.1\r\nHost: passport\r\n\r\n")
	start := time.Now()
	for sent := 0; ; sent++ {
		if time.Since(start) > 60*time.Second {
			t.Fatalf("still connected after %d requests and %v without reading", sent, time.Since(start).Round(time.Second))
		}
		conn.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
		_, err := conn.Write(request)
		if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			continue // the server is still reading, or its buffers are full: send on
		}
		t.Logf("disconnected after %d requests, %v after the first (%v)", sent, time.Since(start).Round(time.Millisecond), err)
		return
	}
}

// TestStreamsOutliveWriteTimeout: the write timeout counts from each write on a stream and a long-poll, not
// from the request: a stream that is read keeps going past it, and a long-poll longer than it is answered.
func TestStreamsOutliveWriteTimeout(t *testing.T) {
	t.Parallel()
	const writeTimeout = 300 * time.Millisecond
	e := envOf(t, apitest.StartAPI(t, func(c *api.Config) { c.Limits.WriteTimeout = writeTimeout }))
	app := e.newApp("Jira", atlassianAudience, acsURL)
	ph := e.enroll(employee)
	ctx := context.Background()
	// A long-poll of three write timeouts with nothing to wait for ends with 204.
	if ch, err := ph.WaitForChallenge(ctx, 3*writeTimeout); !errors.Is(err, deviceapi.ErrNoChallenge) {
		t.Fatalf("a long-poll longer than the write timeout: %+v %v, want no challenge (204)", ch, err)
	}
	b := newBrowser(t)
	waiting := b.identify(b.startLogin(e.sp(app), ""), employee)
	number := waiting.number(t)
	first, events, _ := openStream(t, b.c, waiting.URL)
	if first != "state pending" {
		t.Fatalf("first event %q", first)
	}
	ch := ph.waitChallenge(t)
	// Let the stream's request grow older than the write timeout; no event is due before the phone answers.
	<-time.After(3 * writeTimeout)
	if _, err := ph.AnswerChallenge(ctx, ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionApprove, Number: number}); err != nil {
		t.Fatalf("approve: %v", err)
	}
	wantEvent(t, events, "state approved", "the approval")
}

// TestWaitingStreamsHoldNoGoroutine: a browser waiting on its login's event stream holds no goroutine of the
// server (the connection is taken over and served by the stream hub), is told of a change at once, and is
// forgotten soon after it closes its connection. Not parallel: it counts the process's goroutines.
func TestWaitingStreamsHoldNoGoroutine(t *testing.T) {
	const n = 200
	e := envOf(t, apitest.StartAPI(t, func(c *api.Config) {
		c.Limits.StreamsPerLogin = n
		c.Limits.StreamsPerClient = n
	}))
	app := e.newApp("Jira", atlassianAudience, acsURL)
	e.enroll(employee)
	b := newBrowser(t)
	login := b.startLogin(e.sp(app), "").URL
	u, _ := url.Parse(login)
	var cookie string
	for _, ck := range b.c.Jar.Cookies(u) {
		if ck.Name == "passport_login" {
			cookie = ck.Value
		}
	}
	// Raw connections: an http.Client would hold goroutines of its own for each.
	open := func() (net.Conn, *bufio.Reader) {
		conn, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "GET %s/events HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\nCookie: passport_login=%s\r\n\r\n", u.Path, u.Host, cookie)
		return conn, bufio.NewReader(conn)
	}
	// next returns the data of the next event on r.
	next := func(r *bufio.Reader) string {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("event stream: %v", err)
			}
			if v, ok := strings.CutPrefix(line, "data: "); ok {
				return strings.TrimSpace(v)
			}
		}
	}
	runtime.GC()
	before := runtime.NumGoroutine()
	conns := make([]net.Conn, n)
	readers := make([]*bufio.Reader, n)
	for i := range conns {
		conns[i], readers[i] = open()
		if got := next(readers[i]); got != "identify" {
			t.Fatalf("stream %d: first state %q", i, got)
		}
	}
	waitStreams(t, e.srv, n)
	if grew := runtime.NumGoroutine() - before; grew > n/10 {
		t.Errorf("%d waiting streams: the process has %d more goroutines", n, grew)
	}
	// Every stream is told when the login moves on.
	b.identify(b.get(login), employee)
	for i, r := range readers {
		if got := next(r); got != "pending" {
			t.Fatalf("stream %d: state %q after the email, want pending", i, got)
		}
	}
	for _, c := range conns {
		c.Close()
	}
	waitStreams(t, e.srv, 0)
}

// TestStreamOfAnotherBrowser: the event stream of a login is refused to a browser that did not start it
// (403) and for a login that does not exist (404), as the page is, and a refused stream holds nothing: after
// twenty refusals (a login takes a few streams at most) its own browser still opens its stream and hears
// the approval.
func TestStreamOfAnotherBrowser(t *testing.T) {
	t.Parallel()
	e, ph, b, waiting := jiraLogin(t)
	status := func(c *http.Client, u string) int {
		t.Helper()
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	stranger := newBrowser(t)
	for range 20 {
		if got := status(stranger.c, waiting.URL+"/events"); got != http.StatusForbidden {
			t.Fatalf("another browser's event stream: %d, want 403", got)
		}
	}
	gone := e.URL + "/login/" + strings.Repeat("a", 26) + "/events"
	if got := status(b.c, gone); got != http.StatusNotFound {
		t.Fatalf("the event stream of a login that does not exist: %d, want 404", got)
	}
	first, events, stop := openStream(t, b.c, waiting.URL)
	defer stop()
	if first != "state pending" {
		t.Fatalf("the login's own browser: first event %q, want state pending", first)
	}
	if _, err := ph.ApproveByNumber(t.Context(), waiting.number(t)); err != nil {
		t.Fatal(err)
	}
	wantEvent(t, events, "state approved", "the approval")
}
