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
	RunExcept(t, open, nil)
}

// RunExcept is Run with the subtests named in skip skipped, each with its
// reason (shown by go test -v).
func RunExcept(t *testing.T, open func(t *testing.T) *store.Store, skip map[string]string) {
	runChecks(t, open, skip, nil)
}

// runChecks runs the checks named in only (all when nil) but those in skip.
func runChecks(t *testing.T, open func(t *testing.T) *store.Store, skip map[string]string, only []string) {
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
		{"UpdateRaces", testUpdateRaces},
		{"UpdateConflict", testUpdateConflict},
		{"UpdateCanceledContext", testUpdateCanceledContext},
		{"UpdateAndPublishConcurrentOneWinner", testUpdateAndPublishConcurrentOneWinner},
		{"UpdateAndPublishConcurrentAllApplied", testUpdateAndPublishConcurrentAllApplied},
		{"TakeConcurrentOneWinner", testTakeConcurrentOneWinner},
		{"Change", testChange},
		{"ChangeCap", testChangeCap},
		{"ChangeInterrupted", testChangeInterrupted},
		{"ChangeCapsPerIndex", testChangeCapsPerIndex},
		{"ChangeIndexTTL", testChangeIndexTTL},
		{"ChangeLinger", testChangeLinger},
		{"ChangeRequire", testChangeRequire},
		{"ChangeHits", testChangeHits},
		{"RemoveFromIndexes", testRemoveFromIndexes},
		{"MemoryUsage", testMemoryUsage},
		{"Compressed", testCompressed},
		{"KeysByShard", testKeysByShard},
		{"Stream", testStream},
		{"CreateIndexed", testCreateIndexed},
		{"CreateWith", testCreateWith},
		{"Batch", testBatch},
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
		{"SubscribeShared", testSubscribeShared},
		{"SubscribeSlowReader", testSubscribeSlowReader},
		{"SubscribeCancelDuringPublishStorm", testSubscribeCancelDuringPublishStorm},
		{"PrefixIsolation", func(t *testing.T, s *store.Store) { testPrefixIsolation(t, s, open(t)) }},
	}
	for _, tc := range tests {
		if only != nil && !slices.Contains(only, tc.name) {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			if why, ok := skip[tc.name]; ok {
				t.Skip(why)
			}
			tc.fn(t, open(t))
		})
	}
}

// spreadSuites holds the stores RunSpread opened: their tables are spread tables.
var spreadSuites sync.Map // *store.Store → true

// newTable is the suite's table called name: a spread table (store.NewSpreadTable) under RunSpread, else a
// plain one.
func newTable(s *store.Store, name string) *store.Table[record] {
	if _, ok := spreadSuites.Load(s); ok {
		return store.NewSpreadTable[record](s, name)
	}
	return store.NewTable[record](s, name)
}

// RunSpread runs the table checks of the suite on spread tables (store.NewSpreadTable) of the stores open
// returns, skipping those named in skip. On a Cluster, or a store opened with Options.Spread, that is the
// Cluster layout; elsewhere it is the plain one again.
func RunSpread(t *testing.T, open func(t *testing.T) *store.Store, skip map[string]string) {
	runChecks(t, func(t *testing.T) *store.Store {
		s := open(t)
		spreadSuites.Store(s, true)
		t.Cleanup(func() { spreadSuites.Delete(s) })
		return s
	}, skip, spreadChecks)
}

// spreadChecks are the checks RunSpread runs.
var spreadChecks = []string{
	"TableCRUD", "TTL", "Expiry", "UpdateKeepsTTL", "UpdateFnErrorAborts", "UpdateConcurrentOneWinner",
	"UpdateConcurrentAllApplied", "UpdateConflict", "TakeConcurrentOneWinner", "Change", "ChangeCap",
	"ChangeInterrupted",
	"ChangeCapsPerIndex", "ChangeIndexTTL", "ChangeLinger", "ChangeRequire", "RemoveFromIndexes", "MemoryUsage", "Compressed", "KeysByShard",
	"CreateIndexed", "CreateWith", "Batch", "Index",
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

func mustCreate(tb testing.TB, tbl *store.Table[record], id string, v record, ttl time.Duration, indexes ...string) {
	tb.Helper()
	if err := tbl.Create(context.Background(), id, v, ttl, indexes...); err != nil {
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
	tbl := newTable(s, "crud")
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
		other := newTable(s, "crud2")
		if _, err := other.Get(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("other table Get(a) = %v, want ErrNotFound", err)
		}
	})
	t.Run("DecodeError", func(t *testing.T) {
		strs := store.NewTable[string](s, "crud")
		if tbl.Spread() {
			strs = store.NewSpreadTable[string](s, "crud")
		}
		if _, err := strs.Get(ctx, "a"); err == nil || errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get of a record into the wrong type = %v, want a decode error", err)
		}
	})
}

func testTTL(t *testing.T, s *store.Store) {
	tbl := newTable(s, "ttl")
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
	tbl := newTable(s, "expiry")
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
	if list, err := tbl.List(ctx); tbl.Spread() { // a spread table keeps no set of its ids
		if !errors.Is(err, store.ErrUnsupported) {
			t.Fatalf("List of a spread table = %v, %v; want ErrUnsupported", list, err)
		}
	} else if err != nil || len(list) != 1 || list[0].State != "pending" {
		t.Fatalf("List after expiry = %+v, %v; want only the persistent record", list, err)
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
	tbl := newTable(s, "keepttl")
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
	tbl := newTable(s, "abort")
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
	tbl := newTable(s, "race")
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
	mustOneWinner(t, errs, tbl, "c")
}

func testUpdateConcurrentAllApplied(t *testing.T, s *store.Store) {
	ctx := testCtx(t)
	tbl := newTable(s, "counter")
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

// updateOp is Update or UpdateAndPublish (publishing on updateChannel).
type updateOp struct {
	name string
	do   func(ctx context.Context, tbl *store.Table[record], id string, fn func(record) (record, error), msg string) (record, error)
	// publishes reports whether a successful call publishes msg.
	publishes bool
}

const updateChannel = "changes"

var updateOps = []updateOp{
	{"Update", func(ctx context.Context, tbl *store.Table[record], id string, fn func(record) (record, error), _ string) (record, error) {
		return tbl.Update(ctx, id, fn)
	}, false},
	{"UpdateAndPublish", func(ctx context.Context, tbl *store.Table[record], id string, fn func(record) (record, error), msg string) (record, error) {
		return tbl.UpdateAndPublish(ctx, id, fn, updateChannel, msg)
	}, true},
}

// mustSubscribe subscribes to channel until the test ends.
func mustSubscribe(tb testing.TB, s *store.Store, channel string) <-chan string {
	tb.Helper()
	ch, cancel, err := s.Subscribe(context.Background(), channel)
	if err != nil {
		tb.Fatalf("Subscribe(%s): %v", channel, err)
	}
	tb.Cleanup(cancel)
	return ch
}

// drainUntilMarker publishes a unique marker on channel and returns every
// message ch received before it. The server handles commands one at a time
// and a subscriber gets messages in that order, so after the calls that could
// publish have returned, this is exactly what they published.
func drainUntilMarker(t *testing.T, s *store.Store, channel string, ch <-chan string) []string {
	t.Helper()
	marker := "marker:" + t.Name()
	if err := s.Publish(context.Background(), channel, marker); err != nil {
		t.Fatalf("Publish marker: %v", err)
	}
	var got []string
	for {
		m := recv(t, ch)
		if m == marker {
			return got
		}
		got = append(got, m)
	}
}

// testUpdateRaces interferes with the record between Update's read and its
// write (from inside fn's first call, through another connection of the
// pool) and checks that the write never lands on a record that is gone, that
// a replaced record is updated afresh, and that UpdateAndPublish publishes
// exactly when the write lands.
func testUpdateRaces(t *testing.T, s *store.Store) {
	ctx := testCtx(t)
	tbl := newTable(s, "races")
	sub := mustSubscribe(t, s, updateChannel)
	approve := func(r record) record { r.State, r.N = "approved", r.N+1; return r }
	tests := []struct {
		name   string
		create bool          // create the record {pending} first
		ttl    time.Duration // of the created record
		// first runs inside fn's first call, before fn returns.
		first     func(t *testing.T, id string)
		fnErr     error
		wantErr   error
		wantCalls int
		want      *record       // stored afterwards; nil = absent
		wantTTL   time.Duration // about; 0 = no expiry (only if want != nil)
	}{
		{name: "Missing", wantErr: store.ErrNotFound, wantCalls: 0},
		{name: "FnError", create: true, fnErr: errNotPending, wantErr: errNotPending, wantCalls: 1,
			want: &record{State: "pending"}},
		{name: "DeletedBeforeWrite", create: true, ttl: time.Hour, wantErr: store.ErrNotFound, wantCalls: 1,
			first: func(t *testing.T, id string) {
				if err := tbl.Delete(ctx, id); err != nil {
					t.Fatalf("Delete: %v", err)
				}
			}},
		{name: "TakenBeforeWrite", create: true, wantErr: store.ErrNotFound, wantCalls: 1,
			first: func(t *testing.T, id string) {
				if _, err := tbl.Take(ctx, id); err != nil {
					t.Fatalf("Take: %v", err)
				}
			}},
		{name: "ExpiredBeforeWrite", create: true, ttl: 100 * time.Millisecond, wantErr: store.ErrNotFound, wantCalls: 1,
			first: func(t *testing.T, id string) {
				waitFor(t, "record to expire", func() bool {
					_, err := tbl.Get(ctx, id)
					return errors.Is(err, store.ErrNotFound)
				})
			}},
		{name: "ReplacedBeforeWrite", create: true, ttl: time.Minute, wantCalls: 2,
			first: func(t *testing.T, id string) {
				mustPut(t, tbl, id, record{State: "pending", N: 10}, time.Hour)
			},
			want: &record{State: "approved", N: 11}, wantTTL: time.Hour},
		{name: "RecreatedBeforeWrite", create: true, ttl: time.Hour, wantCalls: 2,
			first: func(t *testing.T, id string) {
				if err := tbl.Delete(ctx, id); err != nil {
					t.Fatalf("Delete: %v", err)
				}
				mustCreate(t, tbl, id, record{State: "pending", N: 5}, 0)
			},
			want: &record{State: "approved", N: 6}},
		{name: "RewrittenWithSameBytes", create: true, ttl: time.Hour, wantCalls: 1,
			first: func(t *testing.T, id string) {
				mustPut(t, tbl, id, record{State: "pending"}, time.Hour)
			},
			want: &record{State: "approved", N: 1}, wantTTL: time.Hour},
		{name: "Undisturbed", create: true, ttl: time.Hour, wantCalls: 1,
			want: &record{State: "approved", N: 1}, wantTTL: time.Hour},
	}
	for _, op := range updateOps {
		for _, tc := range tests {
			t.Run(op.name+"/"+tc.name, func(t *testing.T) {
				id := op.name + "-" + tc.name
				if tc.create {
					mustCreate(t, tbl, id, record{State: "pending"}, tc.ttl)
				}
				calls := 0
				got, err := op.do(ctx, tbl, id, func(r record) (record, error) {
					calls++
					if calls == 1 && tc.first != nil {
						tc.first(t, id)
					}
					if tc.fnErr != nil {
						return r, tc.fnErr
					}
					return approve(r), nil
				}, id)
				if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
					t.Fatalf("%s = %+v, %v; want error %v", op.name, got, err, tc.wantErr)
				}
				if calls != tc.wantCalls {
					t.Fatalf("fn ran %d times, want %d", calls, tc.wantCalls)
				}
				stored, gerr := tbl.Get(ctx, id)
				switch {
				case tc.want == nil && !errors.Is(gerr, store.ErrNotFound):
					t.Fatalf("record is %+v, %v; want it absent (never resurrected)", stored, gerr)
				case tc.want != nil && (gerr != nil || stored != *tc.want):
					t.Fatalf("stored %+v, %v; want %+v", stored, gerr, *tc.want)
				}
				if err == nil && tc.want != nil && got != *tc.want {
					t.Fatalf("%s returned %+v, stored %+v", op.name, got, *tc.want)
				}
				if tc.want != nil {
					d := mustTTL(t, tbl, id)
					if (tc.wantTTL == 0 && d != 0) || (tc.wantTTL != 0 && (d <= tc.wantTTL-time.Minute || d > tc.wantTTL)) {
						t.Fatalf("TTL = %v, want about %v", d, tc.wantTTL)
					}
				}
				var want []string
				if op.publishes && err == nil {
					want = []string{id}
				}
				if msgs := drainUntilMarker(t, s, updateChannel, sub); !slices.Equal(msgs, want) {
					t.Fatalf("published %q, want %q", msgs, want)
				}
			})
		}
	}
}

// testUpdateConflict makes every write lose (fn changes the record each
// time it runs): Update gives up with ErrConflict, having written nothing of
// its own and published nothing.
func testUpdateConflict(t *testing.T, s *store.Store) {
	ctx := testCtx(t)
	tbl := newTable(s, "conflict")
	sub := mustSubscribe(t, s, updateChannel)
	for _, op := range updateOps {
		t.Run(op.name, func(t *testing.T) {
			mustCreate(t, tbl, op.name, record{State: "pending"}, time.Hour)
			calls := 0
			_, err := op.do(ctx, tbl, op.name, func(r record) (record, error) {
				calls++
				mustPut(t, tbl, op.name, record{State: "pending", N: calls}, time.Hour)
				r.State = "approved"
				return r, nil
			}, "lost")
			if !errors.Is(err, store.ErrConflict) {
				t.Fatalf("%s = %v, want ErrConflict", op.name, err)
			}
			if calls < 2 {
				t.Fatalf("fn ran %d times before ErrConflict, want retries", calls)
			}
			if got := mustGet(t, tbl, op.name); got != (record{State: "pending", N: calls}) {
				t.Fatalf("stored %+v, want the last concurrent write {pending %d}", got, calls)
			}
			if msgs := drainUntilMarker(t, s, updateChannel, sub); len(msgs) != 0 {
				t.Fatalf("published %q after a conflict", msgs)
			}
		})
	}
}

func testUpdateCanceledContext(t *testing.T, s *store.Store) {
	tbl := newTable(s, "canceled")
	mustCreate(t, tbl, "a", record{State: "pending"}, 0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, op := range updateOps {
		t.Run(op.name, func(t *testing.T) {
			_, err := op.do(ctx, tbl, "a", func(r record) (record, error) {
				r.State = "approved"
				return r, nil
			}, "x")
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("%s with a canceled context = %v, want context.Canceled", op.name, err)
			}
			if got := mustGet(t, tbl, "a"); got.State != "pending" {
				t.Fatalf("canceled %s wrote %+v", op.name, got)
			}
		})
	}
}

func testUpdateAndPublishConcurrentOneWinner(t *testing.T, s *store.Store) {
	ctx := testCtx(t)
	tbl := newTable(s, "pubrace")
	sub := mustSubscribe(t, s, updateChannel)
	mustCreate(t, tbl, "c", record{State: "pending"}, time.Hour)
	errs := make([]error, concurrency)
	runConcurrently(concurrency, func(i int) {
		_, errs[i] = tbl.UpdateAndPublish(ctx, "c", func(r record) (record, error) {
			if r.State != "pending" {
				return r, errNotPending
			}
			r.State, r.Winner = "approved", i
			return r, nil
		}, updateChannel, fmt.Sprint("won by ", i))
	})
	winner := mustOneWinner(t, errs, tbl, "c")
	if msgs, want := drainUntilMarker(t, s, updateChannel, sub), []string{fmt.Sprint("won by ", winner)}; !slices.Equal(msgs, want) {
		t.Fatalf("published %q, want %q", msgs, want)
	}
}

func testUpdateAndPublishConcurrentAllApplied(t *testing.T, s *store.Store) {
	ctx := testCtx(t)
	tbl := newTable(s, "pubcounter")
	sub := mustSubscribe(t, s, updateChannel)
	mustCreate(t, tbl, "n", record{}, 0)
	errs := make([]error, concurrency)
	runConcurrently(concurrency, func(i int) {
		_, errs[i] = tbl.UpdateAndPublish(ctx, "n", func(r record) (record, error) {
			r.N++
			return r, nil
		}, updateChannel, fmt.Sprint(i))
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("goroutine %d: %v", i, err)
		}
	}
	if got := mustGet(t, tbl, "n"); got.N != concurrency {
		t.Fatalf("N = %d, want %d (lost updates)", got.N, concurrency)
	}
	msgs := drainUntilMarker(t, s, updateChannel, sub)
	slices.Sort(msgs)
	want := make([]string, concurrency)
	for i := range want {
		want[i] = fmt.Sprint(i)
	}
	slices.Sort(want)
	if !slices.Equal(msgs, want) {
		t.Fatalf("published %q, want one message per goroutine %q", msgs, want)
	}
}

func testTakeConcurrentOneWinner(t *testing.T, s *store.Store) {
	ctx := testCtx(t)
	tbl := newTable(s, "take")
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
	if ids, err := tbl.IDs(ctx); !tbl.Spread() && (err != nil || len(ids) != 0) {
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
	tbl := newTable(s, "list")
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
		many := newTable(s, "many")
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
		// Stale ids in sets too large to load in one go are dropped too: the
		// table's id set gets ids of expired records, the index ids of
		// deleted ones.
		for i := range n {
			if err := many.AddToIndex(ctx, "all", fmt.Sprint(i)); err != nil {
				t.Fatal(err)
			}
		}
		const gone = 3
		for i := range gone {
			mustPut(t, many, fmt.Sprint("short", i), record{N: -1}, 200*time.Millisecond)
		}
		waitFor(t, "records to expire", func() bool {
			for i := range gone {
				if _, err := many.Get(ctx, fmt.Sprint("short", i)); !errors.Is(err, store.ErrNotFound) {
					return false
				}
			}
			return true
		})
		for i := range gone {
			if err := many.Delete(ctx, fmt.Sprint(i)); err != nil {
				t.Fatal(err)
			}
		}
		if ids, err := many.IDs(ctx); err != nil || len(ids) != n {
			t.Fatalf("IDs = %d, %v; want %d (%d of them stale)", len(ids), err, n, gone)
		}
		if ids, err := many.IndexIDs(ctx, "all"); err != nil || len(ids) != n {
			t.Fatalf("IndexIDs = %d, %v; want %d (%d of them stale)", len(ids), err, n, gone)
		}
		for _, tc := range []struct {
			name string
			list func() ([]record, error)
			ids  func() ([]string, error)
		}{
			{"List", func() ([]record, error) { return many.List(ctx) }, func() ([]string, error) { return many.IDs(ctx) }},
			{"ListIndex", func() ([]record, error) { return many.ListIndex(ctx, "all") }, func() ([]string, error) { return many.IndexIDs(ctx, "all") }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				l, err := tc.list()
				if err != nil || len(l) != n-gone {
					t.Fatalf("%s = %d records, %v; want %d", tc.name, len(l), err, n-gone)
				}
				for _, r := range l {
					if r.N < gone { // deleted or expired
						t.Fatalf("%s returned deleted record %+v", tc.name, r)
					}
				}
				if ids, err := tc.ids(); err != nil || len(ids) != n-gone {
					t.Fatalf("ids after %s = %d, %v; want %d (stale ids dropped)", tc.name, len(ids), err, n-gone)
				}
			})
		}
	})
}

func testIndex(t *testing.T, s *store.Store) {
	ctx := testCtx(t)
	tbl := newTable(s, "devices")
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
	t.Run("Unhit", func(t *testing.T) {
		_, before, _ := s.Count(ctx, "ip")
		if err := s.Unhit(ctx, "ip"); err != nil {
			t.Fatal(err)
		}
		n, after, err := s.Count(ctx, "ip")
		if err != nil || n != 4 || after <= 0 || after > before {
			t.Fatalf("after Unhit: %d, %v, %v; want 4 in the same window", n, after, err)
		}
		if err := s.Unhit(ctx, "never-hit"); err != nil {
			t.Fatal(err)
		}
		if n, d, err := s.Count(ctx, "never-hit"); err != nil || n != 0 || d != 0 {
			t.Fatalf("Unhit of a counter never hit left %d, %v, %v; want nothing", n, d, err)
		}
	})
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
	t.Run("HitAll", func(t *testing.T) {
		keys := []string{"push:{ada} 10.0.0.1", "push:{ada} "}    // one hash tag: one Cluster slot
		if _, _, err := s.Hit(ctx, keys[1], window); err != nil { // the user's counter has a hit already
			t.Fatal(err)
		}
		for want := int64(1); want <= 3; want++ {
			hits, err := s.HitAll(ctx, window, keys...)
			if err != nil || len(hits) != 2 {
				t.Fatalf("HitAll = %v, %v", hits, err)
			}
			if hits[0].Count != want || hits[1].Count != want+1 {
				t.Fatalf("HitAll %d: counts %d, %d; want %d, %d", want, hits[0].Count, hits[1].Count, want, want+1)
			}
			for i, h := range hits {
				if h.ResetIn <= 0 || h.ResetIn > window {
					t.Fatalf("HitAll %d: %s resets in %v", want, keys[i], h.ResetIn)
				}
			}
		}
		if n, _, err := s.Count(ctx, keys[0]); err != nil || n != 3 {
			t.Fatalf("Count after HitAll = %d, %v; want 3, as Hit counts", n, err)
		}
		if _, err := s.HitAll(ctx, 0, keys...); err == nil {
			t.Fatal("HitAll with zero window succeeded")
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
			WaitClosed(t, ch)
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

// testSubscribeShared covers subscribers that share channels: each gets one
// copy of a message even if it named the channel twice, and one leaving
// does not unsubscribe the others.
func testSubscribeShared(t *testing.T, s *store.Store) {
	ctx := testCtx(t)
	a := mustSubscribeAll(t, s, "x", "x", "y")
	b, cancelB, err := s.Subscribe(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	c := mustSubscribeAll(t, s, "y")
	mustPublish(t, s, "x", "1")
	mustPublish(t, s, "y", "2")
	mustPublish(t, s, "x", "3")
	tests := []struct {
		name string
		ch   <-chan string
		want []string
	}{
		{"DuplicateChannelOnce", a, []string{"1", "2", "3"}},
		{"OneChannel", b, []string{"1", "3"}},
		{"OtherChannel", c, []string{"2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, want := range tc.want {
				if got := recv(t, tc.ch); got != want {
					t.Fatalf("received %q, want %q", got, want)
				}
			}
		})
	}
	t.Run("OthersStayAfterCancel", func(t *testing.T) {
		cancelB()
		WaitClosed(t, b)
		mustPublish(t, s, "x", "4")
		mustPublish(t, s, "y", "5")
		for _, want := range []string{"4", "5"} {
			if got := recv(t, a); got != want {
				t.Fatalf("received %q, want %q", got, want)
			}
		}
		if got := recv(t, c); got != "5" {
			t.Fatalf("received %q, want 5", got)
		}
	})
}

// mustSubscribeAll subscribes to channels until the test ends.
func mustSubscribeAll(tb testing.TB, s *store.Store, channels ...string) <-chan string {
	tb.Helper()
	ch, cancel, err := s.Subscribe(context.Background(), channels...)
	if err != nil {
		tb.Fatalf("Subscribe(%q): %v", channels, err)
	}
	tb.Cleanup(cancel)
	return ch
}

func mustPublish(tb testing.TB, s *store.Store, channel, msg string) {
	tb.Helper()
	if err := s.Publish(context.Background(), channel, msg); err != nil {
		tb.Fatalf("Publish(%q, %q): %v", channel, msg, err)
	}
}

// testSubscribeSlowReader: a subscriber that does not read does not hold up
// another one; it gets messages in order, some dropped once it falls
// behind, and still a message after the next Publish once it reads again.
func testSubscribeSlowReader(t *testing.T, s *store.Store) {
	const n = 200
	slow := mustSubscribeAll(t, s, "busy")
	fast := mustSubscribeAll(t, s, "busy")
	// In lockstep with fast, so that only slow falls behind.
	for i := range n {
		mustPublish(t, s, "busy", fmt.Sprint(i))
		if got := recv(t, fast); got != fmt.Sprint(i) {
			t.Fatalf("fast subscriber received %q, want %d", got, i)
		}
	}
	// Messages are handed to all subscribers before the next one is: once
	// fast has the second "end", slow was given the first (or dropped it).
	mustPublish(t, s, "busy", "end")
	mustPublish(t, s, "busy", "end")
	for range 2 {
		if got := recv(t, fast); got != "end" {
			t.Fatalf("fast subscriber received %q, want end", got)
		}
	}
	var got []string
drain:
	for {
		select {
		case m := <-slow:
			got = append(got, m)
		default:
			break drain
		}
	}
	if len(got) == 0 {
		t.Fatal("slow subscriber received nothing")
	}
	last := -1
	for _, m := range got {
		if m == "end" {
			last = n
			continue
		}
		var i int
		if _, err := fmt.Sscan(m, &i); err != nil || i <= last {
			t.Fatalf("slow subscriber received %q out of order (after %d): %q", m, last, got)
		}
		last = i
	}
	if got[0] != "0" {
		t.Fatalf("slow subscriber's first message is %q, want 0", got[0])
	}
	mustPublish(t, s, "busy", "again")
	for {
		if m := recv(t, slow); m == "again" {
			break
		}
	}
}

// testSubscribeCancelDuringPublishStorm has 50 goroutines subscribe, read
// one message and cancel, 5 times each, while two goroutines publish without
// pause and one subscriber never reads: nothing deadlocks and the channel
// still works afterwards.
func testSubscribeCancelDuringPublishStorm(t *testing.T, s *store.Store) {
	ctx := testCtx(t)
	idle, cancelIdle, err := s.Subscribe(ctx, "storm")
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var pubs sync.WaitGroup
	pubErrs := make([]error, 2)
	for p := range pubErrs {
		pubs.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := s.Publish(ctx, "storm", fmt.Sprint(p, "-", i)); err != nil {
					pubErrs[p] = err
					return
				}
			}
		})
	}
	const subscribers, rounds = 50, 5
	errs := make([]error, subscribers)
	done := make(chan struct{})
	go func() {
		defer close(done)
		runConcurrently(subscribers, func(i int) {
			for range rounds {
				ch, cancel, err := s.Subscribe(ctx, "storm")
				if err != nil {
					errs[i] = err
					return
				}
				if _, ok := <-ch; !ok {
					errs[i] = errors.New("channel closed before any message")
				}
				cancel()
				for range ch { // closed by cancel: ends
				}
			}
		})
		cancelIdle()
		for range idle {
		}
	}()
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	select {
	case <-done:
	case <-timeout.C:
		t.Fatal("subscribers did not finish within 30s (deadlock?)")
	}
	close(stop)
	pubs.Wait()
	for i, err := range append(errs, pubErrs...) {
		if err != nil {
			t.Fatalf("goroutine %d: %v", i, err)
		}
	}
	after := mustSubscribeAll(t, s, "storm")
	mustPublish(t, s, "storm", "calm")
	for {
		if m := recv(t, after); m == "calm" {
			break
		}
	}
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
	tbl := newTable(s, "sweep")
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

// mustOneWinner checks that exactly one of errs is nil, that every other is errNotPending, and that record
// id was approved by the winner, whose index it returns.
func mustOneWinner(t *testing.T, errs []error, tbl *store.Table[record], id string) int {
	t.Helper()
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
	if got := mustGet(t, tbl, id); got.State != "approved" || got.Winner != winner {
		t.Fatalf("stored %+v, want approved by %d", got, winner)
	}
	return winner
}
