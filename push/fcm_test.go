package push

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/winkk/passport/push/fcmtest"
)

func TestFCMSendMessageShape(t *testing.T) {
	fake := fcmtest.New(t)
	clock := newFakeClock()
	f := mustFCM(t, testConfig(t, fake, clock))

	m := testMessage("device-token-1")
	m.TTL = 90*time.Second + 700*time.Millisecond // FCM TTLs are whole seconds: 90s
	if err := f.Send(context.Background(), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if err := f.Send(context.Background(), m); err != nil {
		t.Fatalf("second Send: %v", err)
	}
	if got := fake.TokenFetches(); got != 1 {
		t.Errorf("access token fetched %d times, want 1 (cached)", got)
	}

	got := fake.Received()[0]
	msg := got.Message
	if msg.Token != "device-token-1" {
		t.Errorf("token = %q", msg.Token)
	}
	wantData := map[string]string{"challenge_id": m.ChallengeID, "type": "login_challenge"}
	if !mapsEqual(msg.Data, wantData) {
		t.Errorf("data = %v, want exactly %v", msg.Data, wantData)
	}
	if msg.Notification["title"] != m.Title || msg.Notification["body"] != m.Body || len(msg.Notification) != 2 {
		t.Errorf("notification = %v, want only the generic title and body", msg.Notification)
	}
	if msg.Android.Priority != "high" || msg.Android.TTL != "90s" {
		t.Errorf("android priority %q ttl %q, want high 90s", msg.Android.Priority, msg.Android.TTL)
	}
	wantExpiry := strconv.FormatInt(clock.Now().Add(m.TTL).Unix(), 10)
	for k, want := range map[string]string{
		"apns-priority": "10", "apns-push-type": "alert", "apns-expiration": wantExpiry, "apns-collapse-id": m.ChallengeID,
	} {
		if v := msg.APNS.Headers[k]; v != want {
			t.Errorf("apns header %s = %q, want %q", k, v, want)
		}
	}
	alert, _ := msg.APNS.Payload.Aps["alert"].(map[string]any)
	if alert["title"] != m.Title || alert["body"] != m.Body {
		t.Errorf("aps alert = %v", msg.APNS.Payload.Aps["alert"])
	}
	// Nothing but the challenge ID and the generic alert may travel: walk every string in the body.
	allowed := []string{"device-token-1", m.ChallengeID, "login_challenge", m.Title, m.Body, "high", "90s",
		"10", "alert", wantExpiry, "default"}
	for _, s := range jsonStrings(got.Raw) {
		if !slices.Contains(allowed, s) {
			t.Errorf("unexpected value %q in the FCM body", s)
		}
	}
}

func TestFCMSendErrors(t *testing.T) {
	tests := []struct {
		name         string
		replies      []fcmtest.Reply
		wantIs       error // nil: must match none of the sentinels
		wantAttempts int
		wantSleeps   []time.Duration
		wantOutcome  string
	}{
		{"unregistered token", []fcmtest.Reply{fcmtest.Fail(404, fcmtest.BodyUnregistered)}, ErrTokenDead, 1, nil, OutcomeTokenDead},
		{"invalid token", []fcmtest.Reply{fcmtest.Fail(400, fcmtest.BodyInvalidToken)}, ErrTokenDead, 1, nil, OutcomeTokenDead},
		{"invalid token field violation", []fcmtest.Reply{fcmtest.Fail(400, fcmtest.BodyInvalidTokenField)}, ErrTokenDead, 1, nil, OutcomeTokenDead},
		{"sender id mismatch", []fcmtest.Reply{fcmtest.Fail(403, fcmtest.BodySenderMismatch)}, ErrTokenDead, 1, nil, OutcomeTokenDead},
		{"invalid argument not about the token", []fcmtest.Reply{fcmtest.Fail(400, fcmtest.BodyInvalidTTL)}, nil, 1, nil, OutcomeError},
		{"not found without fcm error is not a dead token", []fcmtest.Reply{fcmtest.Fail(404, fcmtest.BodyNotFoundNoFCM)}, nil, 1, nil, OutcomeError},
		{"third party auth error", []fcmtest.Reply{fcmtest.Fail(401, fcmtest.BodyThirdPartyAuth)}, nil, 1, nil, OutcomeError},
		{"quota honours retry-after", []fcmtest.Reply{fcmtest.Fail(429, fcmtest.BodyQuota, "Retry-After", "7")}, ErrQuota, 3,
			[]time.Duration{7 * time.Second, 7 * time.Second}, OutcomeQuota},
		{"quota retry-after as http date", []fcmtest.Reply{fcmtest.Fail(429, fcmtest.BodyQuota, "Retry-After",
			newFakeClock().Now().Add(9*time.Second).UTC().Format(http.TimeFormat))}, ErrQuota, 3,
			[]time.Duration{9 * time.Second, 2 * time.Second}, OutcomeQuota}, // the date has passed: back off
		{"quota without fcm error backs off", []fcmtest.Reply{fcmtest.Fail(429, fcmtest.BodyRateLimitNoFCM)}, ErrQuota, 3,
			[]time.Duration{time.Second, 2 * time.Second}, OutcomeQuota},
		{"unavailable", []fcmtest.Reply{fcmtest.Fail(503, fcmtest.BodyUnavailable)}, ErrUnavailable, 3,
			[]time.Duration{100 * time.Millisecond, 200 * time.Millisecond}, OutcomeUnavailable},
		{"unavailable honours retry-after", []fcmtest.Reply{fcmtest.Fail(503, fcmtest.BodyUnavailable, "Retry-After", "4")}, ErrUnavailable, 3,
			[]time.Duration{4 * time.Second, 4 * time.Second}, OutcomeUnavailable},
		{"internal", []fcmtest.Reply{fcmtest.Fail(500, fcmtest.BodyInternal)}, ErrUnavailable, 3,
			[]time.Duration{100 * time.Millisecond, 200 * time.Millisecond}, OutcomeUnavailable},
		{"bad gateway html", []fcmtest.Reply{fcmtest.Fail(502, fcmtest.BodyBadGatewayHTML, "Content-Type", "text/html")}, ErrUnavailable, 3,
			[]time.Duration{100 * time.Millisecond, 200 * time.Millisecond}, OutcomeUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := fcmtest.New(t)
			fake.Script(fcmtest.Sequence(tt.replies...))
			clock := newFakeClock()
			reg := prometheus.NewRegistry()
			f := mustFCM(t, testConfig(t, fake, clock), WithMetrics(NewMetrics(reg)))

			err := f.Send(context.Background(), testMessage("device-token-1"))
			if err == nil {
				t.Fatal("Send succeeded, want an error")
			}
			for _, s := range []error{ErrTokenDead, ErrQuota, ErrUnavailable, ErrExpired, ErrInvalidMessage} {
				if errors.Is(err, s) != (s == tt.wantIs) {
					t.Errorf("errors.Is(%v, %v) = %v", err, s, !(s == tt.wantIs))
				}
			}
			if got := fake.Attempts(); got != tt.wantAttempts {
				t.Errorf("FCM saw %d attempts, want %d", got, tt.wantAttempts)
			}
			if got := clock.slept(); !slices.Equal(got, tt.wantSleeps) {
				t.Errorf("slept %v, want %v", got, tt.wantSleeps)
			}
			if got := mustCounter(t, reg, tt.wantOutcome); got != 1 {
				t.Errorf("passport_push_total{outcome=%q} = %v, want 1", tt.wantOutcome, got)
			}
		})
	}
}

func TestFCMRetryThenSuccess(t *testing.T) {
	tests := []struct {
		name       string
		replies    []fcmtest.Reply
		wantSleeps []time.Duration
	}{
		{"unavailable", []fcmtest.Reply{fcmtest.Fail(503, fcmtest.BodyUnavailable), fcmtest.OK}, []time.Duration{100 * time.Millisecond}},
		{"internal twice", []fcmtest.Reply{fcmtest.Fail(500, fcmtest.BodyInternal), fcmtest.Fail(500, fcmtest.BodyInternal), fcmtest.OK},
			[]time.Duration{100 * time.Millisecond, 200 * time.Millisecond}},
		{"quota with retry-after", []fcmtest.Reply{fcmtest.Fail(429, fcmtest.BodyQuota, "Retry-After", "3"), fcmtest.OK}, []time.Duration{3 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := fcmtest.New(t)
			fake.Script(fcmtest.Sequence(tt.replies...))
			clock := newFakeClock()
			reg := prometheus.NewRegistry()
			f := mustFCM(t, testConfig(t, fake, clock), WithMetrics(NewMetrics(reg)))

			if err := f.Send(context.Background(), testMessage("device-token-1")); err != nil {
				t.Fatalf("Send: %v", err)
			}
			if got, want := fake.Attempts(), len(tt.replies); got != want {
				t.Errorf("FCM saw %d attempts, want %d", got, want)
			}
			if got := clock.slept(); !slices.Equal(got, tt.wantSleeps) {
				t.Errorf("slept %v, want %v", got, tt.wantSleeps)
			}
			if got := mustCounter(t, reg, OutcomeSent); got != 1 {
				t.Errorf("sent = %v, want 1", got)
			}
			if got := mustHistogramCount(t, reg); got != uint64(len(tt.replies)) {
				t.Errorf("latency observations = %d, want one per attempt (%d)", got, len(tt.replies))
			}
		})
	}
}

// TestFCMRetryAfterIsJittered: FCM's Retry-After is a floor the jitter adds to, so pushes throttled together
// do not all come back at the same instant.
func TestFCMRetryAfterIsJittered(t *testing.T) {
	fake := fcmtest.New(t)
	fake.Script(fcmtest.Sequence(fcmtest.Fail(429, fcmtest.BodyQuota, "Retry-After", "2"), fcmtest.OK))
	clock := newFakeClock()
	f := mustFCM(t, testConfig(t, fake, clock))
	f.jitter = func(d time.Duration) time.Duration { return d + d/8 }
	if err := f.Send(context.Background(), testMessage("device-token-1")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got, want := clock.slept(), []time.Duration{2*time.Second + 250*time.Millisecond}; !slices.Equal(got, want) {
		t.Errorf("slept %v, want %v (Retry-After plus jitter)", got, want)
	}
	// A Retry-After that fits before the push expires is retried even when the jitter would not fit.
	fake2 := fcmtest.New(t)
	fake2.Script(fcmtest.Sequence(fcmtest.Fail(429, fcmtest.BodyQuota, "Retry-After", "50"), fcmtest.OK))
	clock2 := newFakeClock()
	f2 := mustFCM(t, testConfig(t, fake2, clock2))
	f2.jitter = func(d time.Duration) time.Duration { return d + d/4 } // 62.5 s: past the minute the push lives
	m := testMessage("device-token-1")
	m.TTL = time.Minute
	if err := f2.Send(context.Background(), m); err != nil {
		t.Fatalf("a retry that fits before expiry was given up: %v", err)
	}
	if got := clock2.slept(); !slices.Equal(got, []time.Duration{50 * time.Second}) {
		t.Errorf("slept %v, want the Retry-After itself (50s): the jittered wait would pass the expiry", got)
	}
	for range 1000 {
		if d := upJitter(2 * time.Second); d < 2*time.Second || d > 2500*time.Millisecond {
			t.Fatalf("upJitter(2s) = %v, want within [2s, 2.5s]", d)
		}
	}
}

func TestFCMAttemptDeadline(t *testing.T) {
	fake := fcmtest.New(t)
	fake.Script(fcmtest.Sequence(fcmtest.Reply{Hang: true}))
	clock := newFakeClock()
	cfg := testConfig(t, fake, clock)
	cfg.SendTimeout = 50 * time.Millisecond
	cfg.MaxAttempts = 2
	f := mustFCM(t, cfg)

	err := f.Send(context.Background(), testMessage("device-token-1"))
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send = %v, want ErrUnavailable wrapping context.DeadlineExceeded", err)
	}
	if got := fake.Attempts(); got != 2 {
		t.Errorf("FCM saw %d attempts, want 2 (each cut by SendTimeout)", got)
	}
	for range 2 { // both hanging requests were abandoned by the client
		<-fake.Aborted()
	}
}

func TestFCMRetriesStopAtTTL(t *testing.T) {
	fake := fcmtest.New(t)
	fake.Script(fcmtest.Sequence(fcmtest.Fail(503, fcmtest.BodyUnavailable)))
	clock := newFakeClock()
	cfg := testConfig(t, fake, clock)
	cfg.Backoff, cfg.MaxAttempts = time.Second, 10
	f := mustFCM(t, cfg)

	m := testMessage("device-token-1")
	m.TTL = 3 * time.Second
	err := f.Send(context.Background(), m)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "expiry") {
		t.Fatalf("Send = %v, want ErrUnavailable because of the expiry", err)
	}
	// t=0 fails, wait 1s; t=1s fails, and a 2s wait would reach the expiry at t=3s.
	if got := fake.Attempts(); got != 2 {
		t.Errorf("FCM saw %d attempts, want 2", got)
	}
	if got := clock.slept(); !slices.Equal(got, []time.Duration{time.Second}) {
		t.Errorf("slept %v, want [1s]", got)
	}
	ttls := []string{}
	for _, s := range fake.Received() {
		ttls = append(ttls, s.Message.Android.TTL)
	}
	if !slices.Equal(ttls, []string{"3s", "2s"}) {
		t.Errorf("android ttl per attempt = %v, want the remaining life [3s 2s]", ttls)
	}
}

func TestFCMContextBoundsRetries(t *testing.T) {
	t.Run("deadline nearer than the next retry", func(t *testing.T) {
		fake := fcmtest.New(t)
		fake.Script(fcmtest.Sequence(fcmtest.Fail(503, fcmtest.BodyUnavailable)))
		clock := newFakeClock()
		cfg := testConfig(t, fake, clock)
		cfg.Backoff, cfg.MaxBackoff = 10*time.Minute, 10*time.Minute
		f := mustFCM(t, cfg)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()

		m := testMessage("device-token-1")
		m.TTL = time.Hour
		err := f.Send(ctx, m)
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "context deadline") {
			t.Fatalf("Send = %v, want ErrUnavailable because of the context deadline", err)
		}
		if got := fake.Attempts(); got != 1 {
			t.Errorf("FCM saw %d attempts, want 1", got)
		}
		if got := clock.slept(); len(got) != 0 {
			t.Errorf("slept %v, want no sleep", got)
		}
	})
	t.Run("cancelled while waiting to retry", func(t *testing.T) {
		fake := fcmtest.New(t)
		fake.Script(fcmtest.Sequence(fcmtest.Fail(503, fcmtest.BodyUnavailable)))
		cfg := testConfig(t, fake, newFakeClock())
		cfg.Now, cfg.Sleep = nil, nil // real timer: the wait below is an hour unless cancelled
		cfg.Backoff, cfg.MaxBackoff = time.Hour, time.Hour
		f := mustFCM(t, cfg)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		fake.OnSend(func(fcmtest.Message) { cancel() })

		m := testMessage("device-token-1")
		m.TTL = 2 * time.Hour
		err := f.Send(ctx, m)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Send = %v, want context.Canceled", err)
		}
		if got := fake.Attempts(); got != 1 {
			t.Errorf("FCM saw %d attempts, want 1", got)
		}
	})
}

func TestFCMTransportFailures(t *testing.T) {
	t.Run("connection refused is retried by us alone", func(t *testing.T) {
		fake := fcmtest.New(t)
		clock := newFakeClock()
		cfg := testConfig(t, fake, clock)
		cfg.Endpoint = "http://" + mustClosedAddr(t) + "/v1"
		f := mustFCM(t, cfg)

		err := f.Send(context.Background(), testMessage("device-token-1"))
		var opErr *net.OpError
		if !errors.Is(err, ErrUnavailable) || !errors.As(err, &opErr) {
			t.Fatalf("Send = %v, want ErrUnavailable wrapping a *net.OpError", err)
		}
		// Without the attempt guard the SDK would sleep 1s+2s+4s inside each attempt.
		if got := clock.slept(); !slices.Equal(got, []time.Duration{100 * time.Millisecond, 200 * time.Millisecond}) {
			t.Errorf("slept %v, want our two backoffs only", got)
		}
	})
	t.Run("dropped connections: one per attempt", func(t *testing.T) {
		fake := fcmtest.New(t)
		clock := newFakeClock()
		cfg := testConfig(t, fake, clock)
		addr, accepted := mustDroppingListener(t)
		cfg.Endpoint = "http://" + addr + "/v1"
		f := mustFCM(t, cfg)

		if err := f.Send(context.Background(), testMessage("device-token-1")); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Send = %v, want ErrUnavailable", err)
		}
		// The SDK alone would have tried 5 times per attempt.
		if got := accepted(); got != cfg.MaxAttempts {
			t.Errorf("server accepted %d connections, want %d", got, cfg.MaxAttempts)
		}
	})
	t.Run("token endpoint refuses the service account", func(t *testing.T) {
		fake := fcmtest.New(t)
		fake.ScriptToken(func(int) fcmtest.Reply {
			return fcmtest.Fail(400, `{"error":"invalid_grant","error_description":"Invalid JWT Signature."}`)
		})
		clock := newFakeClock()
		f := mustFCM(t, testConfig(t, fake, clock))

		err := f.Send(context.Background(), testMessage("device-token-1"))
		if err == nil || errors.Is(err, ErrUnavailable) || errors.Is(err, ErrTokenDead) {
			t.Fatalf("Send = %v, want a permanent credentials error", err)
		}
		if !strings.Contains(err.Error(), "invalid_grant") {
			t.Errorf("error %q does not say why", err)
		}
		if fake.Attempts() != 0 || len(clock.slept()) != 0 || fake.TokenFetches() != 1 {
			t.Errorf("sends %d, sleeps %v, token fetches %d: want 0, none, 1",
				fake.Attempts(), clock.slept(), fake.TokenFetches())
		}
	})
}

func TestFCMRejectsUnusableMessages(t *testing.T) {
	fake := fcmtest.New(t)
	reg := prometheus.NewRegistry()
	f := mustFCM(t, testConfig(t, fake, newFakeClock()), WithMetrics(NewMetrics(reg)))
	tests := []struct {
		name   string
		mutate func(*Message)
		want   error
	}{
		{"no token", func(m *Message) { m.Token = "" }, ErrInvalidMessage},
		{"no challenge id", func(m *Message) { m.ChallengeID = "" }, ErrInvalidMessage},
		{"zero ttl", func(m *Message) { m.TTL = 0 }, ErrInvalidMessage},
		{"negative ttl", func(m *Message) { m.TTL = -time.Second }, ErrInvalidMessage},
		{"less than a second left", func(m *Message) { m.TTL = 999 * time.Millisecond }, ErrExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := testMessage("device-token-1")
			tt.mutate(&m)
			if err := f.Send(context.Background(), m); !errors.Is(err, tt.want) {
				t.Errorf("Send = %v, want %v", err, tt.want)
			}
		})
	}
	if got := fake.Attempts(); got != 0 {
		t.Errorf("FCM saw %d attempts, want none", got)
	}
	if got := mustCounter(t, reg, OutcomeError); got != float64(len(tests)) {
		t.Errorf("error outcomes = %v, want %d", got, len(tests))
	}
}

func TestNewFCMRefusesBadConfig(t *testing.T) {
	fake := fcmtest.New(t)
	tests := []struct {
		name string
		cfg  func(t *testing.T) FCMConfig
		want string
	}{
		{"no credentials file", func(*testing.T) FCMConfig { return FCMConfig{} }, "no credentials file"},
		{"missing file", func(t *testing.T) FCMConfig {
			return FCMConfig{CredentialsFile: t.TempDir() + "/nope.json"}
		}, "read credentials"},
		{"not json", func(t *testing.T) FCMConfig {
			return FCMConfig{CredentialsFile: mustWriteJSON(t, "just a string")}
		}, "read credentials"},
		{"user credentials instead of a service account", func(t *testing.T) FCMConfig {
			return FCMConfig{CredentialsFile: mustWriteJSON(t, map[string]string{
				"type": "authorized_user", "client_id": "x", "client_secret": "y", "refresh_token": "z"})}
		}, "read credentials"},
		{"endpoint without a scheme", func(t *testing.T) FCMConfig {
			return FCMConfig{CredentialsFile: fake.CredentialsFile(t), Endpoint: "127.0.0.1:9099/v1"}
		}, "not an http(s) URL"},
		{"no project id anywhere", func(t *testing.T) FCMConfig {
			return FCMConfig{CredentialsFile: fake.CredentialsFileFor(t, "")}
		}, "no project id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := NewFCM(context.Background(), tt.cfg(t))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewFCM = %v, %v; want an error containing %q", f, err, tt.want)
			}
		})
	}
	t.Run("project id from config overrides the file", func(t *testing.T) {
		cfg := testConfig(t, fake, newFakeClock())
		cfg.CredentialsFile = fake.CredentialsFileFor(t, "")
		cfg.ProjectID = fcmtest.ProjectID
		if err := mustFCM(t, cfg).Send(context.Background(), testMessage("t")); err != nil {
			t.Fatalf("Send: %v", err)
		}
	})
}

func TestBackoffGrowsAndCaps(t *testing.T) {
	f := &FCM{cfg: FCMConfig{Backoff: time.Second, MaxBackoff: 5 * time.Second, QuotaBackoff: time.Minute}.withDefaults(),
		jitter: func(d time.Duration) time.Duration { return d }}
	tests := []struct {
		c    class
		n    int
		want time.Duration
	}{
		{classRetry, 1, time.Second}, {classRetry, 2, 2 * time.Second}, {classRetry, 3, 4 * time.Second},
		{classRetry, 4, 5 * time.Second}, {classRetry, 70, 5 * time.Second},
		{classQuota, 1, time.Minute}, {classQuota, 2, time.Minute}, // quota ceiling is max(QuotaBackoff, MaxBackoff)
	}
	for _, tt := range tests {
		if got := f.backoff(tt.c, tt.n); got != tt.want {
			t.Errorf("backoff(%v, %d) = %v, want %v", tt.c, tt.n, got, tt.want)
		}
	}
	for _, d := range []time.Duration{0, time.Nanosecond, time.Second, time.Hour} {
		if j := upJitter(d); j < d || j > d+d/4 {
			t.Errorf("upJitter(%v) = %v, want within [d, 1.25d]", d, j)
		}
	}
}

// mustDroppingListener accepts connections and closes them at once; accepted counts them.
func mustDroppingListener(tb testing.TB) (addr string, accepted func() int) {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var mu sync.Mutex
	n := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			n++
			mu.Unlock()
			c.Close()
		}
	}()
	tb.Cleanup(func() { l.Close(); <-done })
	return l.Addr().String(), func() int {
		mu.Lock()
		defer mu.Unlock()
		return n
	}
}

// mustClosedAddr returns a loopback address nobody listens on.
func mustClosedAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func mustCounter(tb testing.TB, g prometheus.Gatherer, outcome string) float64 {
	tb.Helper()
	mfs, err := g.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "passport_push_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == outcome {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	tb.Fatalf("no passport_push_total{outcome=%q}", outcome)
	return 0
}

func mustHistogramCount(tb testing.TB, g prometheus.Gatherer) uint64 {
	tb.Helper()
	mfs, err := g.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "passport_push_send_duration_seconds" {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	tb.Fatal("no passport_push_send_duration_seconds")
	return 0
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// jsonStrings lists every string value (not key) in a decoded JSON document.
func jsonStrings(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case map[string]any:
		var out []string
		for _, e := range v {
			out = append(out, jsonStrings(e)...)
		}
		return out
	case []any:
		var out []string
		for _, e := range v {
			out = append(out, jsonStrings(e)...)
		}
		return out
	case json.Number, float64, bool, nil:
		return nil
	}
	return nil
}
