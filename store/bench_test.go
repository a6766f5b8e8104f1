package store_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/winkk/passport/store"
	"github.com/winkk/passport/store/storetest"
)

type benchRecord struct {
	State string `json:"state"`
	N     int    `json:"n"`
}

func benchBackends(b *testing.B, fn func(b *testing.B, s *store.Store)) {
	b.Run("embedded", func(b *testing.B) { fn(b, storetest.OpenEmbedded(b)) })
	b.Run("redis", func(b *testing.B) { fn(b, storetest.OpenRedis(b)) })
}

// benchOp runs op in a benchmark loop on both backends after setup and one
// warm-up call (which loads the scripts), and reports the round trips and
// commands per op next to ns/op.
func benchOp(b *testing.B, setup func(b *testing.B, s *store.Store), op func(ctx context.Context, s *store.Store, i int) error) {
	benchBackends(b, func(b *testing.B, s *store.Store) {
		ctx := context.Background()
		rt := store.CountRoundTrips(s)
		if setup != nil {
			setup(b, s)
		}
		if err := op(ctx, s, -1); err != nil {
			b.Fatal(err)
		}
		rt.Reset()
		i := 0
		for b.Loop() {
			if err := op(ctx, s, i); err != nil {
				b.Fatal(err)
			}
			i++
		}
		b.ReportMetric(float64(rt.RoundTrips())/float64(b.N), "rtt/op")
		b.ReportMetric(float64(rt.Commands())/float64(b.N), "cmds/op")
	})
}

func benchTable(s *store.Store) *store.Table[benchRecord] {
	return store.NewTable[benchRecord](s, "bench")
}

func mustBenchPut(b *testing.B, s *store.Store, id string) {
	b.Helper()
	if err := benchTable(s).Put(context.Background(), id, benchRecord{State: "pending"}, time.Hour); err != nil {
		b.Fatal(err)
	}
}

func incr(r benchRecord) (benchRecord, error) {
	r.N++
	return r, nil
}

func BenchmarkTableGet(b *testing.B) {
	benchOp(b, func(b *testing.B, s *store.Store) { mustBenchPut(b, s, "x") },
		func(ctx context.Context, s *store.Store, _ int) error {
			_, err := benchTable(s).Get(ctx, "x")
			return err
		})
}

func BenchmarkUpdate(b *testing.B) {
	benchOp(b, func(b *testing.B, s *store.Store) { mustBenchPut(b, s, "x") },
		func(ctx context.Context, s *store.Store, _ int) error {
			_, err := benchTable(s).Update(ctx, "x", incr)
			return err
		})
}

// BenchmarkUpdateThenPublish is the pattern UpdateAndPublish replaces.
func BenchmarkUpdateThenPublish(b *testing.B) {
	benchOp(b, func(b *testing.B, s *store.Store) { mustBenchPut(b, s, "x") },
		func(ctx context.Context, s *store.Store, _ int) error {
			if _, err := benchTable(s).Update(ctx, "x", incr); err != nil {
				return err
			}
			return s.Publish(ctx, "login:x", "changed")
		})
}

func BenchmarkUpdateAndPublish(b *testing.B) {
	benchOp(b, func(b *testing.B, s *store.Store) { mustBenchPut(b, s, "x") },
		func(ctx context.Context, s *store.Store, _ int) error {
			_, err := benchTable(s).UpdateAndPublish(ctx, "x", incr, "login:x", "changed")
			return err
		})
}

// BenchmarkUpdateContended runs Update from 8 goroutines per CPU on one
// record: every lost race costs a retry.
func BenchmarkUpdateContended(b *testing.B) {
	benchBackends(b, func(b *testing.B, s *store.Store) {
		ctx := context.Background()
		mustBenchPut(b, s, "x")
		tbl := benchTable(s)
		rt := store.CountRoundTrips(s)
		b.SetParallelism(8)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := tbl.Update(ctx, "x", incr); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(rt.RoundTrips())/float64(b.N), "rtt/op")
	})
}

func BenchmarkCreate(b *testing.B) {
	benchOp(b, nil, func(ctx context.Context, s *store.Store, i int) error {
		return benchTable(s).Create(ctx, fmt.Sprint("c", i), benchRecord{State: "pending"}, time.Hour)
	})
}

func BenchmarkAddToIndex(b *testing.B) {
	benchOp(b, func(b *testing.B, s *store.Store) { mustBenchPut(b, s, "x") },
		func(ctx context.Context, s *store.Store, _ int) error {
			return benchTable(s).AddToIndex(ctx, "user:alice", "x")
		})
}

// BenchmarkListIndex lists an index of 5 live records and 1 stale id (a
// user's devices); the stale id is re-added before every call.
func BenchmarkListIndex(b *testing.B) {
	benchOp(b, func(b *testing.B, s *store.Store) {
		for i := range 5 {
			id := fmt.Sprint("d", i)
			mustBenchPut(b, s, id)
			if err := benchTable(s).AddToIndex(context.Background(), "user:alice", id); err != nil {
				b.Fatal(err)
			}
		}
	}, func(ctx context.Context, s *store.Store, _ int) error {
		tbl := benchTable(s)
		if err := tbl.AddToIndex(ctx, "user:alice", "gone"); err != nil {
			return err
		}
		l, err := tbl.ListIndex(ctx, "user:alice")
		if err == nil && len(l) != 5 {
			err = fmt.Errorf("ListIndex returned %d records, want 5", len(l))
		}
		return err
	})
}

func BenchmarkClaim(b *testing.B) {
	benchOp(b, nil, func(ctx context.Context, s *store.Store, i int) error {
		if ok, err := s.Claim(ctx, fmt.Sprint("id-", i), time.Minute); err != nil || !ok {
			return fmt.Errorf("Claim = %v, %v", ok, err)
		}
		return nil
	})
}

func BenchmarkHit(b *testing.B) {
	benchOp(b, nil, func(ctx context.Context, s *store.Store, _ int) error {
		_, _, err := s.Hit(ctx, "ip", time.Hour)
		return err
	})
}

// BenchmarkSubscribe subscribes to a channel nobody in the Store listens to
// (one awaited SUBSCRIBE on the shared connection) and cancels (one
// UNSUBSCRIBE, not awaited).
func BenchmarkSubscribe(b *testing.B) {
	benchBackends(b, func(b *testing.B, s *store.Store) {
		ctx := context.Background()
		i := 0
		for b.Loop() {
			_, cancel, err := s.Subscribe(ctx, fmt.Sprint("login:", i))
			if err != nil {
				b.Fatal(err)
			}
			cancel()
			i++
		}
	})
}

// BenchmarkSubscribeJoin subscribes to a channel another subscriber of the
// Store already holds (no round trip) and cancels.
func BenchmarkSubscribeJoin(b *testing.B) {
	benchBackends(b, func(b *testing.B, s *store.Store) {
		ctx := context.Background()
		_, stop, err := s.Subscribe(ctx, "login:x")
		if err != nil {
			b.Fatal(err)
		}
		defer stop()
		for b.Loop() {
			_, cancel, err := s.Subscribe(ctx, "login:x")
			if err != nil {
				b.Fatal(err)
			}
			cancel()
		}
	})
}

// BenchmarkSubscribeParallel is BenchmarkSubscribe from 8 goroutines per
// CPU, each on channels of its own: the SUBSCRIBEs of all of them share the
// one connection.
func BenchmarkSubscribeParallel(b *testing.B) {
	benchBackends(b, func(b *testing.B, s *store.Store) {
		ctx := context.Background()
		var worker atomic.Int64
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			w, i := worker.Add(1), 0
			for pb.Next() {
				_, cancel, err := s.Subscribe(ctx, fmt.Sprint("login:", w, ":", i))
				if err != nil {
					b.Error(err)
					return
				}
				cancel()
				i++
			}
		})
	})
}
