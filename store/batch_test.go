package store_test

import (
	"errors"
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

// TestCreateIn: a create queued in a batch runs in its place among the batch's
// operations (a read queued after it sees the record, one queued before does
// not), fails as Create fails, and after a script flush still creates, once,
// reporting that it ran after the batch. A table whose batches are not in
// order refuses it.
func TestCreateIn(t *testing.T) {
	for _, s := range []*store.Store{storetest.Open(t), storetest.OpenEmbedded(t)} {
		ctx := t.Context()
		tbl := store.NewTable[benchRecord](s, "sessions")
		other := store.NewTable[benchRecord](s, "devices")
		if !tbl.InOrder() {
			t.Fatalf("%s: a table on one server, not spread, is not InOrder", s.Describe())
		}
		if err := other.Create(ctx, "d", benchRecord{State: "device"}, time.Hour); err != nil {
			t.Fatal(err)
		}
		b := s.Batch(ctx)
		before := tbl.GetIn(b, "s1")
		created := tbl.CreateIn(b, "s1", benchRecord{State: "one"}, time.Hour, store.Effects{AddTo: []string{"user:ada"}, Cap: 1})
		after := tbl.GetIn(b, "s1")
		dev := other.GetIn(b, "d")
		again := tbl.CreateIn(b, "s1", benchRecord{State: "two"}, time.Hour, store.Effects{})
		full := tbl.CreateIn(b, "s2", benchRecord{State: "two"}, time.Hour, store.Effects{AddTo: []string{"user:ada"}, Cap: 1})
		b.Run()
		if _, err := before.Get(); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: read queued before the create: %v, want not found", s.Describe(), err)
		}
		if inPlace, err := created.Get(); err != nil || !inPlace {
			t.Errorf("%s: create: in place %v, %v", s.Describe(), inPlace, err)
		}
		if r, err := after.Get(); err != nil || r.State != "one" {
			t.Errorf("%s: read queued after the create: %+v, %v", s.Describe(), r, err)
		}
		if r, err := dev.Get(); err != nil || r.State != "device" {
			t.Errorf("%s: the other table's read: %+v, %v", s.Describe(), r, err)
		}
		if _, err := again.Get(); !errors.Is(err, store.ErrAlreadyExists) {
			t.Errorf("%s: second create of one id: %v, want ErrAlreadyExists", s.Describe(), err)
		}
		if _, err := full.Get(); !errors.Is(err, store.ErrIndexFull) {
			t.Errorf("%s: create into a full index: %v, want ErrIndexFull", s.Describe(), err)
		}
		if ids, err := tbl.IndexIDs(ctx, "user:ada"); err != nil || !slices.Equal(ids, []string{"s1"}) {
			t.Errorf("%s: index after the batch: %v, %v", s.Describe(), ids, err)
		}
	}

	// After a flush the create runs once the batch has run: created, once, and said to be out of its place.
	s := storetest.OpenEmbedded(t) // a flush cannot disturb tests sharing a real server
	ctx := t.Context()
	tbl := store.NewTable[benchRecord](s, "sessions")
	if err := tbl.Create(ctx, "warm", benchRecord{}, time.Hour); err != nil { // loads the script
		t.Fatal(err)
	}
	if err := store.FlushScripts(ctx, s); err != nil {
		t.Fatal(err)
	}
	b := s.Batch(ctx)
	created := tbl.CreateIn(b, "s1", benchRecord{State: "one"}, time.Hour, store.Effects{AddTo: []string{"user:ada"}})
	after := tbl.GetIn(b, "s1")
	b.Run()
	if inPlace, err := created.Get(); err != nil || inPlace {
		t.Errorf("create after a script flush: in place %v, %v; want created after the batch", inPlace, err)
	}
	if _, err := after.Get(); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("read queued after a create whose script was flushed: %v, want not found (it ran later)", err)
	}
	if r, err := tbl.Get(ctx, "s1"); err != nil || r.State != "one" {
		t.Errorf("record after the batch: %+v, %v", r, err)
	}

	// Spread records (a Cluster's layout) are not in order: refused, nothing written.
	if url, ok := storetest.RedisURL(); ok {
		ss := storetest.OpenSpread(t, url)
		sp := store.NewSpreadTable[benchRecord](ss, "sessions")
		if sp.InOrder() {
			t.Error("a spread table is InOrder")
		}
		b := ss.Batch(ctx)
		res := sp.CreateIn(b, "s1", benchRecord{}, time.Hour, store.Effects{})
		b.Run()
		if _, err := res.Get(); err == nil {
			t.Error("CreateIn on a spread table succeeded")
		}
		if _, err := sp.Get(ctx, "s1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("record after a refused CreateIn: %v, want not found", err)
		}
	}
}
