package push

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/winkk/passport/push/fcmtest"
)

// fakeClock is FCMConfig's Now and Sleep: sleeping advances time and is recorded.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_800_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.sleeps = append(c.sleeps, d)
	return nil
}

func (c *fakeClock) slept() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// testConfig is a config for fake with tiny backoffs and a fake clock.
func testConfig(tb testing.TB, fake *fcmtest.Server, clock *fakeClock) FCMConfig {
	tb.Helper()
	return FCMConfig{
		CredentialsFile: fake.CredentialsFile(tb),
		Endpoint:        fake.Endpoint(),
		SendTimeout:     5 * time.Second,
		MaxAttempts:     3,
		Backoff:         100 * time.Millisecond,
		MaxBackoff:      10 * time.Second,
		QuotaBackoff:    time.Second,
		Now:             clock.Now,
		Sleep:           clock.Sleep,
	}
}

// mustFCM builds an FCM sender with exact (unjittered) backoffs.
func mustFCM(tb testing.TB, cfg FCMConfig, opts ...Option) *FCM {
	tb.Helper()
	f, err := NewFCM(context.Background(), cfg, opts...)
	if err != nil {
		tb.Fatalf("NewFCM: %v", err)
	}
	f.jitter = func(d time.Duration) time.Duration { return d }
	return f
}

// mustWriteJSON writes v as a credentials file and returns its path.
func mustWriteJSON(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	p := filepath.Join(tb.TempDir(), "credentials.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

func testMessage(token string) Message {
	return Message{
		Token:       token,
		ChallengeID: "ch_7Qm2xkP4",
		Title:       "Sign-in request",
		Body:        "Open Passport to review a sign-in",
		TTL:         5 * time.Minute,
	}
}
