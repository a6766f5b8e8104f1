// Package storetest opens throwaway stores for tests and holds the store
// conformance suite ([Run]) that every backend must pass.
//
// Backend selection for [Open]: if PASSPORT_TEST_REDIS_URL is set, that server
// is used and failing to reach it fails the test (never a silent fallback);
// otherwise a Redis at 127.0.0.1:6379 is used if it answers PING within
// 200ms; otherwise the embedded store. Every store gets a unique key prefix and
// its keys are deleted when the test ends.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/winkk/passport/store"
)

// EnvRedisURL names the environment variable that forces tests onto a given
// Redis server.
const EnvRedisURL = "PASSPORT_TEST_REDIS_URL"

// EnvSpread, when set to 1, opens every store of OpenURL (and Open, OpenRedis) with
// store.Options.Spread: the whole suite then runs the Cluster layout of the spread tables (logins,
// sessions) against one server. .ci/run runs the packages that use them that way once more.
const EnvSpread = "PASSPORT_TEST_STORE_SPREAD"

// LocalRedisURL is probed when EnvRedisURL is unset.
const LocalRedisURL = "redis://127.0.0.1:6379/0"

// localProbeTimeout bounds the probe of LocalRedisURL.
const localProbeTimeout = 200 * time.Millisecond

var (
	probeOnce sync.Once
	probeOK   bool
)

// RedisURL returns the URL of the real Redis server tests should use and
// whether there is one. If EnvRedisURL is set it is returned as is (ok=true):
// a failure to connect to it is then the caller's test failure. Otherwise
// LocalRedisURL is returned if it answers PING within 200ms (probed once per
// process).
func RedisURL() (string, bool) {
	if u := os.Getenv(EnvRedisURL); u != "" {
		return u, true
	}
	probeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), localProbeTimeout)
		defer cancel()
		s, err := store.Open(ctx, store.Options{URL: LocalRedisURL})
		if err != nil {
			return
		}
		_ = s.Close()
		probeOK = true
	})
	return LocalRedisURL, probeOK
}

// Open returns a store for tb following the package's selection rule (env
// URL, must work → local Redis if it answers → embedded), with a unique prefix
// and cleanup registered.
func Open(tb testing.TB) *store.Store {
	tb.Helper()
	if u, ok := RedisURL(); ok {
		return OpenURL(tb, u)
	}
	return OpenEmbedded(tb)
}

// OpenRedis returns a store on the real Redis server chosen by [RedisURL], or
// skips tb (with a log line) when there is none.
func OpenRedis(tb testing.TB) *store.Store {
	tb.Helper()
	u, ok := RedisURL()
	if !ok {
		tb.Skipf("storetest: no Redis: %s unset and %s does not answer PING", EnvRedisURL, LocalRedisURL)
	}
	return OpenURL(tb, u)
}

// OpenEmbedded returns a fresh embedded store, closed at cleanup.
func OpenEmbedded(tb testing.TB) *store.Store {
	tb.Helper()
	return OpenURL(tb, "")
}

// OpenURL opens the store at url ("" = embedded) with a unique prefix; failure
// fails tb. At cleanup every key under the prefix is deleted and the store
// closed.
func OpenURL(tb testing.TB, url string) *store.Store {
	tb.Helper()
	return openOptions(tb, store.Options{URL: url, Spread: os.Getenv(EnvSpread) == "1"})
}

// OpenSpread is OpenURL with the Cluster layout of spread tables on any server (store.Options.Spread).
func OpenSpread(tb testing.TB, url string) *store.Store {
	tb.Helper()
	return openOptions(tb, store.Options{URL: url, Spread: true})
}

// openOptions opens the store o describes under a unique prefix, purged and closed when tb ends.
func openOptions(tb testing.TB, o store.Options) *store.Store {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	o.Prefix = UniquePrefix(tb)
	s, err := store.Open(ctx, o)
	if err != nil {
		tb.Fatalf("storetest: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if !s.Embedded() { // closing the embedded store discards its data anyway
			if _, err := s.Purge(ctx); err != nil {
				tb.Errorf("storetest: cleanup: %v", err)
			}
		}
		if err := s.Close(); err != nil {
			tb.Errorf("storetest: cleanup: %v", err)
		}
	})
	return s
}

// UniquePrefix returns "test:<test name>:<random>:", with characters that are
// special to Redis globs or hash tags replaced.
func UniquePrefix(tb testing.TB) string {
	tb.Helper()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		tb.Fatalf("storetest: random prefix: %v", err)
	}
	name := strings.Map(func(r rune) rune {
		switch r {
		case '{', '}', '*', '?', '[', ']', '\\', ' ':
			return '_'
		}
		return r
	}, tb.Name())
	return "test:" + name + ":" + hex.EncodeToString(b[:]) + ":"
}

// Backend is one kind of store the suites run against.
type Backend struct {
	Name string
	Open func(t *testing.T) *store.Store
}

// Backends are the real Redis server chosen by RedisURL (skipped with a log line when there is none) and the
// embedded store.
func Backends() []Backend {
	return []Backend{
		{"redis", func(t *testing.T) *store.Store { return OpenRedis(t) }},
		{"embedded", func(t *testing.T) *store.Store { return OpenEmbedded(t) }},
	}
}

// WaitClosed fails tb unless ch is closed (after draining it) within 10s.
func WaitClosed(tb testing.TB, ch <-chan string) {
	tb.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timeout.C:
			tb.Fatal("subscription channel not closed within 10s")
		}
	}
}
