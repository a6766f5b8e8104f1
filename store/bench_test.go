package store_test

import (
	"context"
	"fmt"
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

func BenchmarkTableGet(b *testing.B) {
	benchBackends(b, func(b *testing.B, s *store.Store) {
		ctx := context.Background()
		tbl := store.NewTable[benchRecord](s, "bench")
		if err := tbl.Put(ctx, "x", benchRecord{State: "pending"}, time.Hour); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := tbl.Get(ctx, "x"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkTableUpdate(b *testing.B) {
	benchBackends(b, func(b *testing.B, s *store.Store) {
		ctx := context.Background()
		tbl := store.NewTable[benchRecord](s, "bench")
		if err := tbl.Put(ctx, "x", benchRecord{State: "pending"}, time.Hour); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := tbl.Update(ctx, "x", func(r benchRecord) (benchRecord, error) {
				r.N++
				return r, nil
			}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkClaim(b *testing.B) {
	benchBackends(b, func(b *testing.B, s *store.Store) {
		ctx := context.Background()
		i := 0
		for b.Loop() {
			i++
			if ok, err := s.Claim(ctx, fmt.Sprint("id-", i), time.Minute); err != nil || !ok {
				b.Fatalf("Claim = %v, %v", ok, err)
			}
		}
	})
}
