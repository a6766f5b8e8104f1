package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/winkk/passport/store"
	"github.com/winkk/passport/store/storetest"
	"github.com/winkk/passport/store/storetest/redisproc"
)

// TestAliveSkipsPeek: commands one after another take a connection that has just read a reply, and go-redis's
// pool check of it is answered without a peek at the socket; with the window closed every check peeks. On one
// server and on a Cluster, whose node clients dial the connections.
func TestAliveSkipsPeek(t *testing.T) {
	t.Run("server", func(t *testing.T) { aliveSkipsPeek(t, storetest.OpenRedis(t)) })
	t.Run("cluster", func(t *testing.T) {
		aliveSkipsPeek(t, storetest.OpenURL(t, redisproc.StartCluster(t).URL()))
	})
}

func aliveSkipsPeek(t *testing.T, s *store.Store) {
	ctx := context.Background()
	if err := s.Ping(ctx); err != nil { // a connection in the pool, with a reply read
		t.Fatal(err)
	}
	const n = 20
	peeks0, skips0 := store.AliveChecks(s)
	for range n {
		if err := s.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	}
	peeks1, skips1 := store.AliveChecks(s)
	if skips1-skips0 < n-1 || peeks1-peeks0 > 1 {
		t.Errorf("%d commands one after another: %d checks without a peek, %d peeks; want %d and at most 1", n, skips1-skips0, peeks1-peeks0, n)
	}

	store.SetAliveWindow(s, 0)
	for range n {
		if err := s.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if peeks2, skips2 := store.AliveChecks(s); peeks2-peeks1 < n || skips2 != skips1 {
		t.Errorf("window closed, %d commands: %d peeks, %d checks without one; want %d and 0", n, peeks2-peeks1, skips2-skips1, n)
	}
}

// TestAliveKilledConnection: a connection the server closes right after a reply is taken as alive by the pool
// check; the next write on it fails, and go-redis sends it again on a new connection: the caller sees it
// succeed, made once (a create made twice would fail as a duplicate).
func TestAliveKilledConnection(t *testing.T) {
	s := storetest.OpenRedis(t)
	ctx := context.Background()
	tbl := store.NewTable[benchRecord](s, "alive")
	if err := tbl.Create(ctx, "first", benchRecord{}, time.Minute); err != nil {
		t.Fatal(err)
	}
	id, err := store.ClientID(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.KillClient(ctx, storetest.OpenRedis(t), id); err != nil {
		t.Fatal(err)
	}

	_, skips0 := store.AliveChecks(s)
	if err := tbl.Create(ctx, "second", benchRecord{}, time.Minute); err != nil {
		t.Fatalf("a create on a connection the server closed a moment ago: %v", err)
	}
	if _, skips1 := store.AliveChecks(s); skips1 == skips0 {
		t.Fatal("the closed connection was peeked at, not taken as alive: the test shows nothing")
	}
	if _, err := tbl.Get(ctx, "second"); err != nil {
		t.Fatalf("the create was not made: %v", err)
	}
	if now, err := store.ClientID(ctx, s); err != nil || now == id {
		t.Fatalf("the store still uses connection %d (%v), which the server closed", now, err)
	}
}

// BenchmarkAliveRoundTrip: one round trip after another (a GET of a missing key), with go-redis's peek at
// the connection before each and without it (the connection has just read a reply).
func BenchmarkAliveRoundTrip(b *testing.B) {
	for _, bc := range []struct {
		name   string
		window time.Duration
	}{{"peek", 0}, {"alive", time.Second}} {
		b.Run(bc.name, func(b *testing.B) {
			s := storetest.OpenRedis(b)
			store.SetAliveWindow(s, bc.window)
			tbl := store.NewTable[benchRecord](s, "alive")
			ctx := context.Background()
			b.ReportAllocs()
			cpu0, _ := processCPU()
			for b.Loop() {
				if _, err := tbl.Get(ctx, "missing"); err == nil {
					b.Fatal("found a record never written")
				}
			}
			// The wall time per round trip is mostly the wait for the server; this process's CPU is the cost.
			if cpu1, ok := processCPU(); ok {
				b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
			}
		})
	}
}
