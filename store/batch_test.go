package store_test

import (
	"slices"
	"testing"
	"time"

	"github.com/winkk/passport/store"
	"github.com/winkk/passport/store/storetest"
)

// TestBatchAfterScriptFlush: a batch whose scripts the server no longer has
// (after a restart or SCRIPT FLUSH) still gives every operation its result,
// and a counter is hit exactly once. Run on the embedded server only, so the
// flush cannot disturb tests sharing a real one.
func TestBatchAfterScriptFlush(t *testing.T) {
	s := storetest.OpenEmbedded(t)
	ctx := t.Context()
	tbl := store.NewTable[benchRecord](s, "devices")
	for _, id := range []string{"a", "b"} {
		if err := tbl.Create(ctx, id, benchRecord{State: id}, time.Hour, "user:ada"); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.FlushScripts(ctx, s); err != nil {
		t.Fatal(err)
	}
	b := s.Batch(ctx)
	list := tbl.ListIndexIn(b, "user:ada")
	hit := s.HitIn(b, "ip", time.Hour)
	b.Run()
	ds, err := list.Get()
	if err != nil {
		t.Fatal(err)
	}
	var states []string
	for _, d := range ds {
		states = append(states, d.State)
	}
	slices.Sort(states)
	if !slices.Equal(states, []string{"a", "b"}) {
		t.Fatalf("ListIndexIn after a flush = %v", states)
	}
	if h, err := hit.Get(); err != nil || h.Count != 1 {
		t.Fatalf("HitIn after a flush = %+v, %v; want count 1", h, err)
	}
	if n, _, err := s.Count(ctx, "ip"); err != nil || n != 1 {
		t.Fatalf("counter after one batched hit = %d, %v; want 1", n, err)
	}
}
