package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/winkk/passport/store"
)

// Run runs the store conformance suite: the same named subtests for every
// backend. open must return a fresh store with its own prefix and cleanup
// (e.g. [OpenEmbedded] or [OpenRedis]).
func Run(t *testing.T, open func(t *testing.T) *store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s *store.Store)
	}{
		{"TableCRUD", testTableCRUD},
		{"TTL", testTTL},
		{"Expiry", testExpiry},
		{"UpdateKeepsTTL", testUpdateKeepsTTL},
		{"UpdateFnErrorAborts", testUpdateFnErrorAborts},
		{"UpdateConcurrentOneWinner", testUpdateConcurrentOneWinner},
		{"UpdateConcurrentAllApplied", testUpdateConcurrentAllApplied},
		{"TakeConcurrentOneWinner", testTakeConcurrentOneWinner},
		{"List", testList},
		{"Index", testIndex},
		{"StaleIDsSweptOnWrite", testStaleIDsSweptOnWrite},
		{"ClaimConcurrentOneWinner", testClaimConcurrentOneWinner},
		{"Values", testValues},
		{"DeleteValueIf", testDeleteValueIf},
		{"Hit", testHit},
		{"HitWindowExpires", testHitWindowExpires},
		{"PubSub", testPubSub},
		{"SubscribeCancel", testSubscribeCancel},
		{"PrefixIsolation", func(t *testing.T, s *store.Store) { testPrefixIsolation(t, s, open(t)) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, open(t))
		})
	}
}

// record is the value type the suite stores.
type record struct {
	State  string `json:"state"`
	Winner int    `json:"winner"`
	N      int    `json:"n"`
}

const concurrency = 50

var errNotPending = errors.New("not pending")

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustCreate(tb testing.TB, tbl *store.Table[record], id string, v record, ttl time.Duration) {
	tb.Helper()
	if err := tbl.Create(context.Background(), id, v, ttl); err != nil {
		tb.Fatalf("Create(%q): %v", id, err)
	}
}

func mustPut(tb testing.TB, tbl *store.Table[record], id string, v record, ttl time.Duration) {
	tb.Helper()
	if err := tbl.Put(context.Background(), id, v, ttl); err != nil {
		tb.Fatalf("Put(%q): %v", id, err)
	}
}

func mustGet(tb testing.TB, tbl *store.Table[record], id string) record {
	tb.Helper()
	v, err := tbl.Get(context.Background(), id)
	if err != nil {
		tb.Fatalf("Get(%q): %v", id, err)
	}
	return v
}

func mustTTL(tb testing.TB, tbl *store.Table[record], id string) time.Duration {
	tb.Helper()
	d, err := tbl.TTL(context.Background(), id)
	if err != nil {
		tb.Fatalf("TTL(%q): %v", id, err)
	}
	return d
}

// waitFor polls cond (every 10ms) until it returns true or the deadline of
// 10s passes, which fails the test. Used only to observe server-side expiry.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			tb.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

// runConcurrently starts n goroutines that call fn(i) at the same moment and
// waits for all of them.
func runConcurrently(n int, fn func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			fn(i)
		})
	}
	close(start)
	wg.Wait()
}

func testTableCRUD(t *testing.T, s *store.Store) {
	ctx := testCtx(t)
	tbl := store.NewTable[record](s, "crud")
	mustCreate(t, tbl, "a", record{State: "pending"}, 0)

	notFound := []struct {
		name string
		op   func() error
	}{
		{"Get", func() error { _, err := tbl.Get(ctx, "missing"); return err }},
		{"Delete", func() error { return tbl.Delete(ctx, "missing") }},
		{"Take", func() error { _, err := tbl.Take(ctx, "missing"); return err }},
		{"TTL", func() error { _, err := tbl.TTL(ctx, "missing"); return err }},
		{"Update", func() error {
			_, err := tbl.Update(ctx, "missing", func(r record) (record, error) {
				t.Error("Update fn called for a missing record")
				return r, nil
			})
			return err
		}},
	}
	for _, tc := range notFound {
		t.Run("NotFound/"+tc.name, func(t *testing.T) {
			if err := tc.op(); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("%s(missing) = %v, want ErrNotFound", tc.name, err)
			}
		})
	}

	t.Run("CreateExisting", func(t *testing.T) {
		err := tbl.Create(ctx, "a", record{State: "other"}, 0)
		if !errors.Is(err, store.ErrAlreadyExists) {
			t.Fatalf("Create(existing) = %v, want ErrAlreadyExists", err)
		}
		if got := mustGet(t, tbl, "a"); got.State != "pending" {
			t.Fatalf("failed Create overwrote the record: %+v", got)
		}
	})
	t.Run("NegativeTTL", func(t *testing.T) {
		if err := tbl.Create(ctx, "neg", record{}, -time.Second); err == nil {
			t.Fatal("Create with negative ttl succeeded")
		}
		if err := tbl.Put(ctx, "neg", record{}, -time.Second); err == nil {
			t.Fatal("Put with negative ttl succeeded")
		}
	})
	t.Run("GetRoundTrip", func(t *testing.T) {
		if got, want := mustGet(t, tbl, "a"), (record{State: "pending"}); got != want {
			t.Fatalf("Get = %+v, want %+v", got, want)
		}
	})
	t.Run("PutReplaces", func(t *testing.T) {
		mustPut(t, tbl, "a", record{State: "approved", N: 2}, 0)
		if got := mustGet(t, tbl, "a"); got.State != "approved" || got.N != 2 {
			t.Fatalf("Get after Put = %+v", got)
		}
	})
	t.Run("PutCreates", func(t *testing.T) {
		mustPut(t, tbl, "b", record{State: "new"}, 0)
		if got := mustGet(t, tbl, "b"); got.State != "new" {
			t.Fatalf("Get after Put = %+v", got)
		}
	})
	t.Run("Delete", func(t *testing.T) {
		if err := tbl.Delete(ctx, "b"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, err := tbl.Get(ctx, "b"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get after Delete = %v, want ErrNotFound", err)
		}
		if err := tbl.Delete(ctx, "b"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second Delete = %v, want ErrNotFound", err)
		}
		// The id is free again.
		mustCreate(t, tbl, "b", record{State: "again"}, 0)
	})
	t.Run("Take", func(t *testing.T) {
		got, err := tbl.Take(ctx, "b")
		if err != nil || got.State != "again" {
			t.Fatalf("Take = %+v, %v", got, err)
		}
		if _, err := tbl.Get(ctx, "b"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get after Take = %v, want ErrNotFound", err)
		}
	})
	t.Run("TablesAreSeparate", func(t *testing.T) {
		other := store.NewTable[record](s, "crud2")
		if _, err := other.Get(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("other table Get(a) = %v, want ErrNotFound", err)
		}
	})
	t.Run("DecodeError", func(t *testing.T) {
		strs := store.NewTable[string](s, "crud")
		if _, err := strs.Get(ctx, "a"); err == nil || errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get of a record into the wrong type = %v, want a decode error", err)
		}
	})
}

func testTTL(t *testing.T, s *store.Store) {
	tbl := store.NewTable[record](s, "ttl")
	tests := []struct {
		name     string
		ttl      time.Duration
		wantZero bool
	}{
		{"NoExpiry", 0, true},
		{"OneMinute", time.Minute, false},
		{"SubMillisecondRoundsUp", time.Microsecond, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mustCreate(t, tbl, tc.name, record{}, tc.ttl)
			d, err := tbl.TTL(context.Background(), tc.name)
			if tc.ttl == time.Microsecond {
				// May already have expired; either outcome is fine, an error other than not found is not.
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("TTL: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("TTL: %v", err)
			}
			if tc.wantZero && d != 0 {
				t.Fatalf("TTL = %v, want 0 (no expiry)", d)
			}
			if !tc.wantZero && (d <= 0 || d > tc.ttl) {
				t.Fatalf("TTL = %v, want in (0, %v]", d, tc.ttl)
			}
		})
	}
	t.Run("PutWithoutTTLRemovesExpiry", func(t *testing.T) {
		mustPut(t, tbl, "p", record{}, time.Minute)
		mustPut(t, tbl, "p", record{}, 0)
		if d := mustTTL(t, tbl, "p"); d != 0 {
			t.Fatalf("TTL after Put(ttl=0) = %v, want 0", d)
		}
	})
}

func testExpiry(t *testing.T, s *store.Store) {
	ctx := testCtx(t)
	tbl := store.NewTable[record](s, "expiry")
	mustCreate(t, tbl, "short", record{State: "pending"}, 200*time.Millisecond)
	mustCreate(t, tbl, "long", record{State: "pending"}, 0)
	if err := tbl.AddToIndex(ctx, "u", "short"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "record to expire", func() bool {
		_, err := tbl.Get(ctx, "short")
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get: %v", err)
		}
		return errors.Is(err, store.ErrNotFound)
	})
	if _, err := tbl.Update(ctx, "short", func(r record) (record, error) { return r, nil }); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Update of expired record = %v, want ErrNotFound", err)
	}
	if err := tbl.Create(ctx, "short", record{State: "reborn"}, time.Minute); err != nil {
		t.Fatalf("Create after expiry: %v", err)
	}
	if err := tbl.Delete(ctx, "short"); err != nil {
		t.Fatal(err)
	}
	list, err := tbl.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].State != "pending" {
		t.Fatalf("List after expiry = %+v, want only the persistent record", list)
	}
	if l, err := tbl.ListIndex(ctx, "u"); err != nil || len(l) != 0 {
		t.Fatalf("ListIndex after expiry = %+v, %v; want empty", l, err)
	}
	if ids, err := tbl.IndexIDs(ctx, "u"); err != nil || len(ids) != 0 {
		t.Fatalf("IndexIDs after expiry = %v, %v; want the stale id dropped", ids, err)
	}
}

func testUpdateKeepsTTL(t *testing.T, s *store.Store) {
	ctx := testCtx(t)
	tbl := store.NewTable[record](s, "keepttl")
	tests := []struct {
		name string
		ttl  time.Duration
	}{
		{"NoExpiry", 0},
		{"Expiring", time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mustCreate(t, tbl, tc.name, record{State: "pending"}, tc.ttl)
			got, err := tbl.Update(ctx, tc.name, func(r record) (record, error) {
				r.State, r.N = "approved", r.N+1
				return r, nil
			})
			if err != nil {
				t.Fatalf("Update: %v", err)
			}
			if got.State != "approved" || got.N != 1 {
				t.Fatalf("Update returned %+v", got)
			}
			if stored := mustGet(t, tbl, tc.name); stored != got {
				t.Fatalf("stored %+v, Update returned %+v", stored, got)
			}
			d := mustTTL(t, tbl, tc.name)
			if tc.ttl == 0 && d != 0 {
				t.Fatalf("TTL after Update = %v, want 0 (no expiry)", d)
			}
			if tc.ttl != 0 && (d <= tc.ttl-time.Minute || d > tc.ttl) {
				t.Fatalf("TTL after Update = %v, want about %v", d, tc.ttl)
			}
		})
	}
}

func testUpdateFnErrorAborts(t *testing.T, s *store.Store) {
	ctx := testCtx(t)
	tbl := store.NewTable[record](s, "abort")
	mustCreate(t, tbl, "a", record{State: "denied"}, 0)
	wrapped := fmt.Errorf("check: %w", errNotPending)
	_, err := tbl.Update(ctx, "a", func(r record) (record, error) {
		r.State = "approved"
		return r, wrapped
	})
	if !errors.Is(err, errNotPending) {
		t.Fatalf("Update = %v, want the fn's error", err)
	}
	if got := mustGet(t, tbl, "a"); got.State != "denied" {
		t.Fatalf("failed Update wrote %+v", got)
	}
}

func testUpdateConcurrentOneWinner(t *testing.T, s *store.Store) {
	ctx := testCtx(t)
	tbl := store.NewTable[record](s, "race")
	mustCreate(t, tbl, "c", record{State: "pending"}, time.Hour)
	errs := make([]error, concurrency)
	runConcurrently(concurrency, func(i int) {
		_, errs[i] = tbl.Update(ctx, "c", func(r record) (record, error) {
			if r.State != "pending" {
				return r, errNotPending
			}
			r.State, r.Winner = "approved", i
			return r, nil
		})
	})
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("goroutines %d and %d both won", winner, i)
			}
			winner = i
		case !errors.Is(err, errNotPending):
			t.Errorf("goroutine %d: %v, want errNotPending", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no goroutine won")
	}
	if got := mustGet(t, tbl, "c"); got.State != "approved" || got.Winner != winner {
		t.Fatalf("stored %+v, want approved by %d", got, winner)
	}
}

func testUpdateConcurrentAllApplied(t *testing.T, s *store.Store) {
	ctx := testCtx(t)
	tbl := store.NewTable[record](s, "counter")
	mustCreate(t, tbl, "n", record{}, 0)
	errs := make([]error, concurrency)
	runConcurrently(concurrency, func(i int) {
		_, errs[i] = tbl.Update(ctx, "n", func(r record) (record, error) {
			r.N++
			return r, nil
		})
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("goroutine %d: %v", i, err)
		}
	}
	if got := mustGet(t, tbl, "n"); got.N != concurrency {
		t.Fatalf("N = %d, want %d (lost updates)", got.N, concurrency)
	}
}

func testTakeConcurrentOneWinner(t *testing.T, s *store.Store) {
	ctx := testCtx(t)
	tbl := store.NewTable[record](s, "take")
	mustCreate(t, tbl, "once", record{State: "pending", N: 7}, time.Hour)
	got := make([]record, concurrency)
	errs := make([]error, concurrency)
	runConcurrently(concurrency, func(i int) {
		got[i], errs[i] = tbl.Take(ctx, "once")
	})
	winners := 0
	for i, err := range errs {
		switch {
		case err == nil:
			winners++
			if got[i].N != 7 {
				t.Errorf("goroutine %d took %+v", i, got[i])
			}
		case !errors.Is(err, store.ErrNotFound):
			t.Errorf("goroutine %d: %v, want ErrNotFound", i, err)
		}
	}
	if winners != 1 {
		t.Fatalf("%d goroutines took the record, want exactly 1", winners)
	}
	if ids, err := tbl.IDs(ctx); err != nil || len(ids) != 0 {
		t.Fatalf("IDs after Take = %v, %v; want empty", ids, err)
	}
}

func states(rs []record) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.State
	}
	slices.Sort(out)
	return out
}

func testList(t *testing.T, s *store.Store) {
	ctx := testCtx(t)
	tbl := store.NewTable[record](s, "list")
	t.Run("Empty", func(t *testing.T) {
		l, err := tbl.List(ctx)
		if err != nil || len(l) != 0 {
			t.Fatalf("List of empty table = %+v, %v", l, err)
		}
	})
	for _, id := range []string{"a", "b", "c", "d"} {
		mustPut(t, tbl, id, record{State: id}, 0)
	}
	mustCreate(t, tbl, "e", record{State: "e"}, time.Hour)
	if err := tbl.Delete(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := tbl.Take(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	l, err := tbl.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := states(l), []string{"a", "d", "e"}; !slices.Equal(got, want) {
		t.Fatalf("List = %v, want %v", got, want)
	}
	t.Run("Many", func(t *testing.T) {
		many := store.NewTable[record](s, "many")
		const n = 600 // more than one MGET batch
		for i := range n {
			mustPut(t, many, fmt.Sprint(i), record{N: i}, 0)
		}
		l, err := many.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(l) != n {
			t.Fatalf("List returned %d records, want %d", len(l), n)
		}
	})
}

func testIndex(t *testing.T, s *store.Store) {
	ctx := testCtx(t)
	tbl := store.NewTable[record](s, "devices")
	for _, id := range []string{"d1", "d2", "d3", "d4"} {
		mustPut(t, tbl, id, record{State: id}, 0)
	}
	add := []struct{ index, id string }{
		{"alice", "d1"}, {"alice", "d2"}, {"alice", "d3"}, {"alice", "ghost"}, {"alice", "d1"}, {"bob", "d4"},
	}
	for _, a := range add {
		if err := tbl.AddToIndex(ctx, a.index, a.id); err != nil {
			t.Fatalf("AddToIndex(%s, %s): %v", a.index, a.id, err)
		}
	}
	list := func(t *testing.T, index string) []string {
		t.Helper()
		l, err := tbl.ListIndex(ctx, index)
		if err != nil {
			t.Fatalf("ListIndex(%s): %v", index, err)
		}
		return states(l)
	}
	ids := func(t *testing.T, index string) []string {
		t.Helper()
		l, err := tbl.IndexIDs(ctx, index)
		if err != nil {
			t.Fatalf("IndexIDs(%s): %v", index, err)
		}
		slices.Sort(l)
		return l
	}
	steps := []struct {
		name   string
		do     func() error
		index  string
		want   []string // ListIndex
		wantID []string // IndexIDs afterwards
	}{
		{"StaleIDDropped", nil, "alice", []string{"d1", "d2", "d3"}, []string{"d1", "d2", "d3"}},
		{"OtherIndex", nil, "bob", []string{"d4"}, []string{"d4"}},
		{"UnknownIndex", nil, "carol", []string{}, []string{}},
		{"Remove", func() error { return tbl.RemoveFromIndex(ctx, "alice", "d2") }, "alice", []string{"d1", "d3"}, []string{"d1", "d3"}},
		{"RemoveAbsent", func() error { return tbl.RemoveFromIndex(ctx, "alice", "nope") }, "alice", []string{"d1", "d3"}, []string{"d1", "d3"}},
		{"DeletedRecordDropped", func() error { return tbl.Delete(ctx, "d3") }, "alice", []string{"d1"}, []string{"d1"}},
		{"RemovedRecordStillInTable", nil, "bob", []string{"d4"}, []string{"d4"}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.do != nil {
				if err := st.do(); err != nil {
					t.Fatal(err)
				}
			}
			if got := list(t, st.index); !slices.Equal(got, st.want) {
				t.Fatalf("ListIndex(%s) = %v, want %v", st.index, got, st.want)
			}
			if got := ids(t, st.index); !slices.Equal(got, st.wantID) {
				t.Fatalf("IndexIDs(%s) = %v, want %v", st.index, got, st.wantID)
			}
		})
	}
	if _, err := tbl.Get(ctx, "d2"); err != nil {
		t.Fatalf("RemoveFromIndex deleted the record: %v", err)
	}
}

func testClaimConcurrentOneWinner(t *testing.T, s *store.Store) {
	ctx := testCtx(t)
	won := make([]bool, concurrency)
	errs := make([]error, concurrency)
	runConcurrently(concurrency, func(i int) {
		won[i], errs[i] = s.Claim(ctx, "request-id-1", time.Hour)
	})
	winners := 0
	for i := range concurrency {
		if errs[i] != nil {
			t.Errorf("goroutine %d: %v", i, errs[i])
		}
		if won[i] {
			winners++
		}
	}
	if winners != 1 {
		t.Fatalf("%d claims succeeded, want exactly 1", winners)
	}
	tests := []struct {
		name string
		key  string
		want bool
	}{
		{"AgainFails", "request-id-1", false},
		{"OtherKeySucceeds", "request-id-2", true},
		{"OtherKeyAgainFails", "request-id-2", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Claim(ctx, tc.key, time.Hour)
			if err != nil || got != tc.want {
				t.Fatalf("Claim(%s) = %v, %v; want %v", tc.key, got, err, tc.want)
			}
		})
	}
	t.Run("ExpiredClaimIsFree", func(t *testing.T) {
		if ok, err := s.Claim(ctx, "short", 100*time.Millisecond); err != nil || !ok {
			t.Fatalf("Claim = %v, %v", ok, err)
		}
		waitFor(t, "claim to expire", func() bool {
			ok, err := s.Claim(ctx, "short", time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		})
	})
}

func testValues(t *testing.T, s *store.Store) {
	ctx := testCtx(t)
	if _, err := s.GetValue(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetValue(missing) = %v, want ErrNotFound", err)
	}
	steps := []struct {
		name    string
		do      func() (bool, error)
		wantOK  bool
		wantVal string // "" = absent
	}{
		{"SetIfAbsentNew", func() (bool, error) { return s.SetIfAbsent(ctx, "k", "v1", time.Hour) }, true, "v1"},
		{"SetIfAbsentTaken", func() (bool, error) { return s.SetIfAbsent(ctx, "k", "v2", time.Hour) }, false, "v1"},
		{"SetValueReplaces", func() (bool, error) { return true, s.SetValue(ctx, "k", "v3", 0) }, true, "v3"},
		{"DeleteValue", func() (bool, error) { return true, s.DeleteValue(ctx, "k") }, true, ""},
		{"DeleteValueAbsent", func() (bool, error) { return true, s.DeleteValue(ctx, "k") }, true, ""},
		{"SetIfAbsentAfterDelete", func() (bool, error) { return s.SetIfAbsent(ctx, "k", "v4", 0) }, true, "v4"},
		{"ClaimIsNotAValueOfAnotherKey", func() (bool, error) { return s.Claim(ctx, "k2", time.Hour) }, true, "v4"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			ok, err := st.do()
			if err != nil || ok != st.wantOK {
				t.Fatalf("= %v, %v; want %v", ok, err, st.wantOK)
			}
			v, err := s.GetValue(ctx, "k")
			switch {
			case st.wantVal == "" && !errors.Is(err, store.ErrNotFound):
				t.Fatalf("GetValue = %q, %v; want ErrNotFound", v, err)
			case st.wantVal != "" && (err != nil || v != st.wantVal):
				t.Fatalf("GetValue = %q, %v; want %q", v, err, st.wantVal)
			}
		})
	}
	t.Run("NegativeTTL", func(t *testing.T) {
		if err := s.SetValue(ctx, "neg", "x", -time.Second); err == nil {
			t.Fatal("SetValue with negative ttl succeeded")
		}
	})
	t.Run("ValueExpires", func(t *testing.T) {
		if err := s.SetValue(ctx, "e", "x", 100*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "value to expire", func() bool {
			_, err := s.GetValue(ctx, "e")
			return errors.Is(err, store.ErrNotFound)
		})
	})
}

func testDeleteValueIf(t *testing.T, s *store.Store) {
	ctx := testCtx(t)
	if err := s.SetValue(ctx, "session", "token-a", time.Hour); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name      string
		key, want string
		deleted   bool
		remaining string // "" = absent afterwards
	}{
		{"WrongValueKeeps", "session", "token-b", false, "token-a"},
		{"EmptyExpectedKeeps", "session", "", false, "token-a"},
		{"MissingKey", "other", "token-a", false, "token-a"},
		{"RightValueDeletes", "session", "token-a", true, ""},
		{"AlreadyDeleted", "session", "token-a", false, ""},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			ok, err := s.DeleteValueIf(ctx, st.key, st.want)
			if err != nil || ok != st.deleted {
				t.Fatalf("DeleteValueIf(%s, %s) = %v, %v; want %v", st.key, st.want, ok, err, st.deleted)
			}
			v, err := s.GetValue(ctx, "session")
			if st.remaining == "" {
				if !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("GetValue = %q, %v; want ErrNotFound", v, err)
				}
			} else if err != nil || v != st.remaining {
				t.Fatalf("GetValue = %q, %v; want %q", v, err, st.remaining)
			}
		})
	}
}

func testHit(t *testing.T, s *store.Store) {
	ctx := testCtx(t)
	if n, d, err := s.Count(ctx, "ip"); err != nil || n != 0 || d != 0 {
		t.Fatalf("Count before any hit = %d, %v, %v; want 0, 0, nil", n, d, err)
	}
	if _, _, err := s.Hit(ctx, "ip", 0); err == nil {
		t.Fatal("Hit with zero window succeeded")
	}
	const window = time.Hour
	prev := window
	for want := int64(1); want <= 5; want++ {
		n, reset, err := s.Hit(ctx, "ip", window)
		if err != nil {
			t.Fatal(err)
		}
		if n != want {
			t.Fatalf("hit %d: count = %d", want, n)
		}
		if reset <= 0 || reset > prev {
			t.Fatalf("hit %d: resetIn = %v, want in (0, %v]: the window must not be extended", want, reset, prev)
		}
		prev = reset
	}
	n, reset, err := s.Count(ctx, "ip")
	if err != nil || n != 5 || reset <= 0 || reset > window {
		t.Fatalf("Count = %d, %v, %v; want 5 and a time in the window", n, reset, err)
	}
	if n, _, _ := s.Count(ctx, "ip"); n != 5 {
		t.Fatalf("Count incremented the counter: %d", n)
	}
	t.Run("Concurrent", func(t *testing.T) {
		counts := make([]int64, concurrency)
		runConcurrently(concurrency, func(i int) {
			var err error
			counts[i], _, err = s.Hit(ctx, "burst", window)
			if err != nil {
				t.Errorf("goroutine %d: %v", i, err)
			}
		})
		slices.Sort(counts)
		for i, c := range counts {
			if c != int64(i+1) {
				t.Fatalf("counts = %v, want 1..%d each once", counts, concurrency)
			}
		}
	})
	t.Run("Reset", func(t *testing.T) {
		if err := s.ResetCount(ctx, "ip"); err != nil {
			t.Fatal(err)
		}
		if n, _, err := s.Hit(ctx, "ip", window); err != nil || n != 1 {
			t.Fatalf("Hit after reset = %d, %v; want 1", n, err)
		}
	})
}

func testHitWindowExpires(t *testing.T, s *store.Store) {
	ctx := testCtx(t)
	for range 3 {
		if _, _, err := s.Hit(ctx, "login", 150*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "window to close", func() bool {
		n, _, err := s.Count(ctx, "login")
		if err != nil {
			t.Fatal(err)
		}
		return n == 0
	})
	if n, reset, err := s.Hit(ctx, "login", time.Hour); err != nil || n != 1 || reset <= 0 {
		t.Fatalf("Hit in a new window = %d, %v, %v; want 1 and a fresh window", n, reset, err)
	}
}

// recv returns the next message on ch, failing t if none arrives in 10s or ch
// is closed.
func recv(t *testing.T, ch <-chan string) string {
	t.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatal("subscription channel closed")
		}
		return m
	case <-timeout.C:
		t.Fatal("no message within 10s")
	}
	return ""
}

// waitClosed fails t unless ch is closed (after draining) within 10s.
func waitClosed(t *testing.T, ch <-chan string) {
	t.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timeout.C:
			t.Fatal("subscription channel not closed within 10s")
		}
	}
}

func testPubSub(t *testing.T, s *store.Store) {
	ctx := testCtx(t)
	if _, _, err := s.Subscribe(ctx); err == nil {
		t.Fatal("Subscribe with no channels succeeded")
	}
	ch, cancel, err := s.Subscribe(ctx, "login:1", "login:2")
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	// Published right after Subscribe returns: must not be missed.
	pubs := []struct{ channel, msg string }{
		{"login:1", "approved"},
		{"login:3", "not subscribed"},
		{"login:2", "denied"},
		{"login:1", ""},
	}
	for _, p := range pubs {
		if err := s.Publish(ctx, p.channel, p.msg); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"approved", "denied", ""} {
		if got := recv(t, ch); got != want {
			t.Fatalf("received %q, want %q", got, want)
		}
	}
	t.Run("Fanout", func(t *testing.T) {
		ch2, cancel2, err := s.Subscribe(ctx, "login:1")
		if err != nil {
			t.Fatal(err)
		}
		defer cancel2()
		if err := s.Publish(ctx, "login:1", "both"); err != nil {
			t.Fatal(err)
		}
		for i, c := range []<-chan string{ch, ch2} {
			if got := recv(t, c); got != "both" {
				t.Fatalf("subscriber %d received %q", i, got)
			}
		}
	})
	t.Run("PublishWithoutSubscribers", func(t *testing.T) {
		if err := s.Publish(ctx, "nobody", "x"); err != nil {
			t.Fatalf("Publish to an empty channel: %v", err)
		}
	})
}

func testSubscribeCancel(t *testing.T, s *store.Store) {
	tests := []struct {
		name string
		stop func(cancelSub, cancelCtx func())
	}{
		{"CancelFunc", func(cancelSub, _ func()) { cancelSub() }},
		{"CancelFuncTwice", func(cancelSub, _ func()) { cancelSub(); cancelSub() }},
		{"ContextDone", func(_, cancelCtx func()) { cancelCtx() }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancelCtx := context.WithCancel(testCtx(t))
			defer cancelCtx()
			ch, cancel, err := s.Subscribe(ctx, "c")
			if err != nil {
				t.Fatal(err)
			}
			defer cancel()
			tc.stop(cancel, cancelCtx)
			waitClosed(t, ch)
			if err := s.Publish(context.Background(), "c", "after"); err != nil {
				t.Fatalf("Publish after cancel: %v", err)
			}
		})
	}
	t.Run("CanceledContext", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, _, err := s.Subscribe(ctx, "c"); err == nil {
			t.Fatal("Subscribe with a canceled context succeeded")
		}
	})
}

func testPrefixIsolation(t *testing.T, a, b *store.Store) {
	ctx := testCtx(t)
	ta, tb := store.NewTable[record](a, "iso"), store.NewTable[record](b, "iso")
	mustCreate(t, ta, "x", record{State: "a"}, 0)
	if _, err := tb.Get(ctx, "x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("other prefix sees the record: %v", err)
	}
	mustCreate(t, tb, "x", record{State: "b"}, 0)
	if got := mustGet(t, ta, "x"); got.State != "a" {
		t.Fatalf("record overwritten across prefixes: %+v", got)
	}
	if ok, err := a.Claim(ctx, "once", time.Hour); err != nil || !ok {
		t.Fatalf("Claim on a = %v, %v", ok, err)
	}
	if ok, err := b.Claim(ctx, "once", time.Hour); err != nil || !ok {
		t.Fatalf("Claim on b = %v, %v; prefixes must not share claims", ok, err)
	}
	ch, cancel, err := b.Subscribe(ctx, "sig")
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	if err := a.Publish(ctx, "sig", "from a"); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, "sig", "from b"); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, ch); got != "from b" {
		t.Fatalf("subscriber on b received %q; channels leak across prefixes", got)
	}
}

// testStaleIDsSweptOnWrite checks that id sets of expiring records stay
// bounded without anyone calling List/ListIndex: writes sample the set and
// drop ids whose record is gone.
func testStaleIDsSweptOnWrite(t *testing.T, s *store.Store) {
	ctx := testCtx(t)
	tbl := store.NewTable[record](s, "sweep")
	const stale, live = 100, 300
	for i := range stale {
		id := fmt.Sprint("old", i)
		mustCreate(t, tbl, id, record{}, 100*time.Millisecond)
		if err := tbl.AddToIndex(ctx, "u", id); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "records to expire", func() bool {
		for i := range stale {
			if _, err := tbl.Get(ctx, fmt.Sprint("old", i)); !errors.Is(err, store.ErrNotFound) {
				return false
			}
		}
		return true
	})
	for i := range live {
		id := fmt.Sprint("new", i)
		if i%2 == 0 {
			mustCreate(t, tbl, id, record{}, 0)
		} else {
			mustPut(t, tbl, id, record{}, 0)
		}
		if err := tbl.AddToIndex(ctx, "u", id); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		ids  func() ([]string, error)
	}{
		{"TableIDs", func() ([]string, error) { return tbl.IDs(ctx) }},
		{"IndexIDs", func() ([]string, error) { return tbl.IndexIDs(ctx, "u") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ids, err := tc.ids()
			if err != nil {
				t.Fatal(err)
			}
			if len(ids) < live || len(ids) >= live+stale {
				t.Fatalf("%d ids after %d writes over %d expired records, want in [%d, %d)", len(ids), live, stale, live, live+stale)
			}
			for _, id := range ids {
				if _, err := tbl.Get(ctx, id); err != nil && !errors.Is(err, store.ErrNotFound) {
					t.Fatal(err)
				}
			}
		})
	}
	if l, err := tbl.List(ctx); err != nil || len(l) != live {
		t.Fatalf("List = %d records, %v; want %d", len(l), err, live)
	}
}
