package storetest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/winkk/passport/store"
)

// roundTrips runs fn and returns how many round trips s made meanwhile (run
// it where nothing else uses s).
func roundTrips(t *testing.T, s *store.Store, fn func()) int64 {
	t.Helper()
	before := s.Stats().RoundTrips
	fn()
	return s.Stats().RoundTrips - before
}

func mustIndexIDs(t *testing.T, tbl *store.Table[record], index string) []string {
	t.Helper()
	ids, err := tbl.IndexIDs(t.Context(), index)
	if err != nil {
		t.Fatalf("IndexIDs(%s): %v", index, err)
	}
	slices.Sort(ids)
	return ids
}

// testChange: Change from a record the caller read writes in one round trip,
// carries its effects (indexes, messages) exactly when the write lands, and
// falls back to the current record when the one it was given is stale.
func testChange(t *testing.T, s *store.Store) {
	ctx := testCtx(t)
	tbl := newTable(s, "change")
	sub := mustSubscribe(t, s, updateChannel)
	also := store.Effects{
		AddTo:      []string{"pending"},
		RemoveFrom: []string{"new"},
		Publish:    []store.Message{{Channel: updateChannel, Payload: "one"}, {Channel: updateChannel, Payload: "two"}},
	}
	approve := func(r record) (record, error) {
		if r.State != "pending" {
			return r, errNotPending
		}
		r.State, r.N = "approved", r.N+1
		return r, nil
	}
	setup := func(t *testing.T, id string) record {
		t.Helper()
		mustCreate(t, tbl, id, record{State: "pending"}, time.Hour)
		if err := tbl.AddToIndex(ctx, "new", id); err != nil {
			t.Fatal(err)
		}
		return mustGet(t, tbl, id)
	}

	t.Run("FromSeenInOneRoundTrip", func(t *testing.T) {
		warm := setup(t, "warm-up") // loads the scripts
		if _, err := tbl.Change(ctx, "warm-up", &warm, approve, store.Effects{AddTo: []string{"warm"}, RemoveFrom: []string{"new"}}); err != nil {
			t.Fatal(err)
		}
		seen := setup(t, "a")
		var got record
		var err error
		// A spread table adds to the index, swaps the record and leaves the other index in three writes.
		want := map[bool]int64{false: 1, true: 3}[tbl.Spread()]
		if n := roundTrips(t, s, func() { got, err = tbl.Change(ctx, "a", &seen, approve, also) }); n != want {
			t.Errorf("Change from an up-to-date record took %d round trips, want %d", n, want)
		}
		if err != nil || got.State != "approved" || got.N != 1 {
			t.Fatalf("Change = %+v, %v", got, err)
		}
		if stored := mustGet(t, tbl, "a"); stored != got {
			t.Fatalf("stored %+v, returned %+v", stored, got)
		}
		if ids := mustIndexIDs(t, tbl, "pending"); !slices.Contains(ids, "a") {
			t.Fatalf("index pending = %v, want a in it", ids)
		}
		if ids := mustIndexIDs(t, tbl, "new"); slices.Contains(ids, "a") {
			t.Fatalf("index new = %v, want a removed", ids)
		}
		if msgs := drainUntilMarker(t, s, updateChannel, sub); !slices.Equal(msgs, []string{"one", "two"}) {
			t.Fatalf("published %q, want one, two", msgs)
		}
		if ttl := mustTTL(t, tbl, "a"); ttl <= 0 || ttl > time.Hour {
			t.Fatalf("TTL after Change = %v, want kept", ttl)
		}
	})
	t.Run("StaleSeenUsesCurrent", func(t *testing.T) {
		seen := setup(t, "b")
		mustPut(t, tbl, "b", record{State: "pending", N: 41}, time.Hour)
		calls := 0
		got, err := tbl.Change(ctx, "b", &seen, func(r record) (record, error) { calls++; return approve(r) }, also)
		if err != nil || got.N != 42 || calls != 2 {
			t.Fatalf("Change from a stale record = %+v, %v after %d calls; want N 42 after 2 calls", got, err, calls)
		}
		if msgs := drainUntilMarker(t, s, updateChannel, sub); !slices.Equal(msgs, []string{"one", "two"}) {
			t.Fatalf("published %q, want one, two exactly once", msgs)
		}
	})
	t.Run("RefusalOfAStaleCopyIsChecked", func(t *testing.T) {
		mustCreate(t, tbl, "f", record{State: "pending"}, time.Hour)
		stale := record{State: "denied"} // what the caller wrongly believes
		got, err := tbl.Change(ctx, "f", &stale, approve, store.Effects{})
		if err != nil || got.State != "approved" {
			t.Fatalf("Change from a stale copy fn refuses = %+v, %v; want approved from the stored record", got, err)
		}
	})
	t.Run("RefusedChangesNothing", func(t *testing.T) {
		seen := setup(t, "c")
		mustPut(t, tbl, "c", record{State: "denied"}, time.Hour)
		if _, err := tbl.Change(ctx, "c", &seen, approve, also); !errors.Is(err, errNotPending) {
			t.Fatalf("Change of a decided record: %v, want errNotPending", err)
		}
		if ids := mustIndexIDs(t, tbl, "pending"); slices.Contains(ids, "c") {
			t.Fatalf("a refused change added to the index: %v", ids)
		}
		if ids := mustIndexIDs(t, tbl, "new"); !slices.Contains(ids, "c") {
			t.Fatalf("a refused change removed from the index: %v", ids)
		}
		if msgs := drainUntilMarker(t, s, updateChannel, sub); len(msgs) != 0 {
			t.Fatalf("a refused change published %q", msgs)
		}
	})
	t.Run("GoneIsNotResurrected", func(t *testing.T) {
		seen := setup(t, "d")
		if err := tbl.Delete(ctx, "d"); err != nil {
			t.Fatal(err)
		}
		if _, err := tbl.Change(ctx, "d", &seen, approve, also); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Change of a deleted record: %v, want ErrNotFound", err)
		}
		if _, err := tbl.Get(ctx, "d"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("the deleted record came back: %v", err)
		}
		if ids := mustIndexIDs(t, tbl, "pending"); slices.Contains(ids, "d") {
			t.Fatalf("a change of a gone record added to the index: %v", ids)
		}
		if msgs := drainUntilMarker(t, s, updateChannel, sub); len(msgs) != 0 {
			t.Fatalf("a change of a gone record published %q", msgs)
		}
	})
	t.Run("AnnounceCarriesTheWrittenRecord", func(t *testing.T) {
		seen := setup(t, "g")
		mustPut(t, tbl, "g", record{State: "pending", N: 6}, time.Hour) // seen is stale: one attempt is lost
		announce := func(v any) []store.Message {
			r := v.(record)
			return []store.Message{{Channel: updateChannel, Payload: fmt.Sprintf("%s %d", r.State, r.N)}}
		}
		if _, err := tbl.Change(ctx, "g", &seen, approve, store.Effects{AddTo: []string{"pending"}, Announce: announce}); err != nil {
			t.Fatal(err)
		}
		if msgs := drainUntilMarker(t, s, updateChannel, sub); !slices.Equal(msgs, []string{"approved 7"}) {
			t.Fatalf("announced %q, want only what was written: approved 7", msgs)
		}
		if _, err := tbl.Change(ctx, "g", nil, approve, store.Effects{Announce: announce}); !errors.Is(err, errNotPending) {
			t.Fatalf("Change of a decided record: %v, want errNotPending", err)
		}
		if msgs := drainUntilMarker(t, s, updateChannel, sub); len(msgs) != 0 {
			t.Fatalf("a refused change announced %q", msgs)
		}
	})
	t.Run("ConcurrentFromOneReadOneWinner", func(t *testing.T) {
		seen := setup(t, "e")
		errs := make([]error, concurrency)
		runConcurrently(concurrency, func(i int) {
			_, errs[i] = tbl.Change(ctx, "e", &seen, func(r record) (record, error) {
				if r.State != "pending" {
					return r, errNotPending
				}
				r.State, r.Winner = "approved", i
				return r, nil
			}, store.Effects{AddTo: []string{"won"}, Publish: []store.Message{{Channel: updateChannel, Payload: "won"}}})
		})
		mustOneWinner(t, errs, tbl, "e")
		// The losers' writes did not land: each takes back only its own addition, never the winner's.
		if ids := mustIndexIDs(t, tbl, "won"); !slices.Equal(ids, []string{"e"}) {
			t.Fatalf("index won = %v after one winner of %d, want [e]", ids, concurrency)
		}
		if msgs := drainUntilMarker(t, s, updateChannel, sub); !slices.Equal(msgs, []string{"won"}) {
			t.Fatalf("published %q, want one message", msgs)
		}
	})
}

// testChangeInterrupted: a change whose write fails once its fn has run (here
// the caller gives up: its context ends) leaves the record as it was. On a
// spread table the write came after the id was added to the index, and the
// store cannot tell whether it reached the server: the entry stays, counted
// against the cap (stricter, never looser), until its IndexTTL passes.
func testChangeInterrupted(t *testing.T, s *store.Store) {
	tbl := newTable(s, "interrupted")
	mustCreate(t, tbl, "a", record{State: "pending"}, time.Hour)
	mustCreate(t, tbl, "b", record{State: "pending"}, time.Hour)
	const ttl = 300 * time.Millisecond
	join := func(ctx context.Context, id string, then func()) error {
		_, err := tbl.Change(ctx, id, nil, func(r record) (record, error) {
			then()
			r.State = "approved"
			return r, nil
		}, store.Effects{AddTo: []string{"open:ada"}, Caps: []int{1}, IndexTTL: ttl})
		return err
	}
	ctx, cancel := context.WithCancel(testCtx(t))
	if err := join(ctx, "a", cancel); err == nil {
		t.Fatal("a change whose context ended before its write succeeded")
	}
	if got := mustGet(t, tbl, "a"); got.State != "pending" {
		t.Fatalf("the interrupted change was written: %+v", got)
	}
	ids := mustIndexIDs(t, tbl, "open:ada")
	if !tbl.Spread() {
		if len(ids) != 0 {
			t.Fatalf("index = %v after a change that was not written, want empty", ids)
		}
		return
	}
	if !slices.Equal(ids, []string{"a"}) {
		t.Fatalf("index = %v after an interrupted change, want [a]: its entry stays until its score passes", ids)
	}
	if err := join(testCtx(t), "b", func() {}); !errors.Is(err, store.ErrIndexFull) {
		t.Fatalf("joining the capped index beside the interrupted entry: %v, want ErrIndexFull", err)
	}
	waitFor(t, "the interrupted entry's IndexTTL to pass", func() bool {
		return join(testCtx(t), "b", func() {}) == nil
	})
	if ids := mustIndexIDs(t, tbl, "open:ada"); !slices.Equal(ids, []string{"b"}) {
		t.Fatalf("index = %v, want [b]", ids)
	}
}

// testChangeCap: of many records changed at once into a capped index, only
// as many as the cap join it; the others change nothing.
func testChangeCap(t *testing.T, s *store.Store) {
	ctx := testCtx(t)
	tbl := newTable(s, "capped")
	sub := mustSubscribe(t, s, updateChannel)
	const capacity = 3
	mustCreate(t, tbl, "already", record{State: "pending"}, time.Hour, "pending")
	ids := make([]string, concurrency)
	for i := range ids {
		ids[i] = fmt.Sprint("r", i)
		mustCreate(t, tbl, ids[i], record{State: "new"}, time.Hour)
	}
	errs := make([]error, concurrency)
	runConcurrently(concurrency, func(i int) {
		_, errs[i] = tbl.Change(ctx, ids[i], nil, func(r record) (record, error) {
			r.State = "pending"
			return r, nil
		}, store.Effects{AddTo: []string{"pending"}, Cap: capacity, Publish: []store.Message{{Channel: updateChannel, Payload: "joined"}}})
	})
	joined := 0
	for i, err := range errs {
		switch {
		case err == nil:
			joined++
			if got := mustGet(t, tbl, ids[i]); got.State != "pending" {
				t.Errorf("%s joined but reads %+v", ids[i], got)
			}
		case errors.Is(err, store.ErrIndexFull):
			if got := mustGet(t, tbl, ids[i]); got.State != "new" {
				t.Errorf("%s was refused but changed to %+v", ids[i], got)
			}
		default:
			t.Errorf("%s: %v", ids[i], err)
		}
	}
	if joined != capacity-1 {
		t.Fatalf("%d records joined an index capped at %d that held 1, want %d", joined, capacity, capacity-1)
	}
	if ids := mustIndexIDs(t, tbl, "pending"); len(ids) != capacity {
		t.Fatalf("index holds %v, want %d ids", ids, capacity)
	}
	if msgs := drainUntilMarker(t, s, updateChannel, sub); len(msgs) != capacity-1 {
		t.Fatalf("published %q, want one message per record that joined", msgs)
	}
	// A record already in the index may change again: it takes no new place.
	if _, err := tbl.Change(ctx, "already", nil, func(r record) (record, error) { r.N++; return r, nil },
		store.Effects{AddTo: []string{"pending"}, Cap: capacity}); err != nil {
		t.Fatalf("changing a member of a full index: %v", err)
	}
}

// testChangeCapsPerIndex: each index of a change has its own cap, and a
// refusal names the index that was full; nothing is written then.
func testChangeCapsPerIndex(t *testing.T, s *store.Store) {
	ctx := testCtx(t)
	tbl := newTable(s, "percap")
	mustCreate(t, tbl, "a", record{State: "pending"}, time.Hour, "all:ada", "net:ada 1")
	mustCreate(t, tbl, "b", record{State: "new"}, time.Hour)
	mustCreate(t, tbl, "c", record{State: "new"}, time.Hour)
	join := func(id string, indexes []string, caps []int) error {
		_, err := tbl.Change(ctx, id, nil, func(r record) (record, error) {
			r.State = "pending"
			return r, nil
		}, store.Effects{AddTo: indexes, Caps: caps})
		return err
	}
	// "net:ada 1" holds one id and is capped at 1; "all:ada" is capped at 10.
	err := join("b", []string{"all:ada", "net:ada 1"}, []int{10, 1})
	var full *store.IndexFullError
	if !errors.Is(err, store.ErrIndexFull) || !errors.As(err, &full) || full.Index != "net:ada 1" {
		t.Fatalf("joining a full net:1: %v, want an IndexFullError naming net:1", err)
	}
	if got := mustGet(t, tbl, "b"); got.State != "new" {
		t.Fatalf("a refused change was written: %+v", got)
	}
	if ids := mustIndexIDs(t, tbl, "all:ada"); !slices.Equal(ids, []string{"a"}) {
		t.Fatalf("a refused change added to another index: all = %v", ids)
	}
	// Another network's index has room; 0 means no cap.
	if err := join("b", []string{"all:ada", "net:ada 2"}, []int{10, 1}); err != nil {
		t.Fatal(err)
	}
	if err := join("c", []string{"all:ada", "net:ada 1"}, []int{0, 0}); err != nil {
		t.Fatalf("uncapped indexes: %v", err)
	}
	if ids := mustIndexIDs(t, tbl, "all:ada"); len(ids) != 3 {
		t.Fatalf("all = %v, want three ids", ids)
	}
	// As many caps as indexes, or the change is refused before anything is sent.
	if err := join("c", []string{"all:ada", "net:ada 1"}, []int{1}); err == nil || errors.Is(err, store.ErrIndexFull) {
		t.Fatalf("one cap for two indexes: %v, want a usage error", err)
	}
}

// testChangeLinger: an id lingers in an index for LingerFor after the change,
// counted under the index's cap, and then leaves it; indexes it leaves at once
// in the same change do; an index it is not in is not joined. On a single
// server an index that holds other ids too loses the id at once.
func testChangeLinger(t *testing.T, s *store.Store) {
	ctx := testCtx(t)
	tbl := newTable(s, "linger")
	for _, id := range []string{"a", "b", "c"} {
		mustCreate(t, tbl, id, record{}, time.Hour)
	}
	change := func(id string, also store.Effects) error {
		_, err := tbl.Change(ctx, id, nil, func(r record) (record, error) { r.N++; return r, nil }, also)
		return err
	}
	number := []string{"number:ada 42"}
	if err := change("a", store.Effects{AddTo: []string{"number:ada 42", "open:ada", "shared:ada"}, Caps: []int{1, 0, 0}, IndexTTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if err := change("c", store.Effects{AddTo: []string{"shared:ada"}}); err != nil {
		t.Fatal(err)
	}
	const linger = 300 * time.Millisecond
	start := time.Now()
	if err := change("a", store.Effects{RemoveFrom: []string{"open:ada"}, Linger: []string{"number:ada 42", "number:ada 7", "shared:ada"}, LingerFor: linger}); err != nil {
		t.Fatal(err)
	}
	err := change("b", store.Effects{AddTo: number, Cap: 1})
	if time.Since(start) < linger { // else the linger may be over: nothing to conclude
		if !errors.Is(err, store.ErrIndexFull) {
			t.Fatalf("joining the capped index the id lingers in: %v, want ErrIndexFull", err)
		}
		if ids := mustIndexIDs(t, tbl, "number:ada 42"); !slices.Equal(ids, []string{"a"}) {
			t.Fatalf("number = %v while a lingers", ids)
		}
		shared := mustIndexIDs(t, tbl, "shared:ada")
		if want := map[bool][]string{true: {"a", "c"}, false: {"c"}}[tbl.Spread()]; !slices.Equal(shared, want) {
			t.Fatalf("shared = %v while a lingers, want %v (spread: %v)", shared, want, tbl.Spread())
		}
	}
	if ids := mustIndexIDs(t, tbl, "open:ada"); len(ids) != 0 {
		t.Fatalf("open = %v: a change that lingers still removes", ids)
	}
	if ids := mustIndexIDs(t, tbl, "number:ada 7"); len(ids) != 0 {
		t.Fatalf("number 7 = %v: lingering joined an index the id was not in", ids)
	}
	deadline := time.Now().Add(10 * time.Second)
	for change("b", store.Effects{AddTo: number, Cap: 1}) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("the capped index is still full 10s after a %v linger", linger)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ids := mustIndexIDs(t, tbl, "number:ada 42"); !slices.Equal(ids, []string{"b"}) {
		t.Fatalf("number = %v after the linger, want b alone", ids)
	}
	if ids := mustIndexIDs(t, tbl, "shared:ada"); !slices.Equal(ids, []string{"c"}) {
		t.Fatalf("shared = %v after the linger, want c alone", ids)
	}
	if err := change("c", store.Effects{Linger: number}); err == nil || errors.Is(err, store.ErrIndexFull) {
		t.Fatalf("a linger without LingerFor: %v, want a usage error", err)
	}
	if err := change("c", store.Effects{RemoveFrom: number, Linger: number, LingerFor: linger}); err == nil || errors.Is(err, store.ErrIndexFull) {
		t.Fatalf("an index both left and lingered in: %v, want a usage error", err)
	}
}

// testChangeIndexTTL: an index added to with IndexTTL expires on its own, its
// expiry is extended by a later add and never shortened.
func testChangeIndexTTL(t *testing.T, s *store.Store) {
	ctx := testCtx(t)
	tbl := newTable(s, "ixttl")
	for _, id := range []string{"a", "b", "c"} {
		mustCreate(t, tbl, id, record{}, time.Hour)
	}
	add := func(id string, ttl time.Duration) {
		t.Helper()
		if _, err := tbl.Change(ctx, id, nil, func(r record) (record, error) { r.N++; return r, nil },
			store.Effects{AddTo: []string{"short"}, IndexTTL: ttl}); err != nil {
			t.Fatal(err)
		}
	}
	add("a", time.Hour)
	add("b", time.Millisecond)         // must not cut the hour short
	add("c", 0)                        // no IndexTTL: the expiry is left alone
	time.Sleep(100 * time.Millisecond) // long past the 1ms asked for by b
	ids := mustIndexIDs(t, tbl, "short")
	if tbl.Spread() {
		// Each entry of a spread table's index counts for its own IndexTTL (for ever without one).
		if !slices.Equal(ids, []string{"a", "c"}) {
			t.Fatalf("short = %v, want a and c: b's entry counted for 1ms", ids)
		}
	} else if len(ids) != 3 {
		t.Fatalf("short = %v, want three ids: a shorter IndexTTL cut the index's life", ids)
	}
	tbl2 := newTable(s, "ixttl2")
	mustCreate(t, tbl2, "x", record{}, time.Hour)
	if _, err := tbl2.Change(ctx, "x", nil, func(r record) (record, error) { r.N++; return r, nil },
		store.Effects{AddTo: []string{"gone"}, IndexTTL: 50 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(mustIndexIDs(t, tbl2, "gone")) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("an index with a 50ms IndexTTL is still there after 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := mustGet(t, tbl2, "x"); got.N != 1 {
		t.Fatalf("the record went with its index: %+v", got)
	}
}

// testRemoveFromIndexes: one call takes an id out of several indexes, in one
// round trip, and leaves the record and other ids alone.
func testRemoveFromIndexes(t *testing.T, s *store.Store) {
	ctx := testCtx(t)
	tbl := newTable(s, "unindex")
	mustCreate(t, tbl, "a", record{State: "x"}, time.Hour, "one", "two", "three")
	mustCreate(t, tbl, "b", record{State: "y"}, time.Hour, "one")
	if err := tbl.RemoveFromIndexes(ctx, "warm-up", "one", "two"); err != nil { // a first pipeline may open a connection
		t.Fatal(err)
	}
	var err error
	if n := roundTrips(t, s, func() { err = tbl.RemoveFromIndexes(ctx, "a", "one", "two", "absent") }); n != 1 {
		t.Errorf("RemoveFromIndexes of three indexes took %d round trips, want 1", n)
	}
	if err != nil {
		t.Fatal(err)
	}
	for ix, want := range map[string][]string{"one": {"b"}, "two": nil, "three": {"a"}} {
		if got := mustIndexIDs(t, tbl, ix); !slices.Equal(got, want) {
			t.Errorf("index %s = %v, want %v", ix, got, want)
		}
	}
	if got := mustGet(t, tbl, "a"); got.State != "x" {
		t.Errorf("the record changed: %+v", got)
	}
	if err := tbl.RemoveFromIndexes(ctx, "a"); err != nil {
		t.Errorf("no indexes: %v", err)
	}
}

// testMemoryUsage: the server's memory for a record grows with it (with what
// does not compress), an absent record is ErrNotFound, and a server that
// cannot tell says so.
func testMemoryUsage(t *testing.T, s *store.Store) {
	ctx := testCtx(t)
	tbl := newTable(s, "sized")
	noise := make([]byte, 2000)
	_, _ = rand.Read(noise)
	mustCreate(t, tbl, "small", record{State: "x"}, time.Hour)
	mustCreate(t, tbl, "large", record{State: base64.StdEncoding.EncodeToString(noise)}, time.Hour)
	small, err := tbl.MemoryUsage(ctx, "small")
	if errors.Is(err, store.ErrUnsupported) {
		if !s.Embedded() {
			t.Fatal("a Redis server reports MEMORY USAGE as unsupported")
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	large, err := tbl.MemoryUsage(ctx, "large")
	if err != nil {
		t.Fatal(err)
	}
	if small <= 0 || large < small+2000 {
		t.Errorf("memory usage: small %d, large %d bytes", small, large)
	}
	if _, err := tbl.MemoryUsage(ctx, "absent"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("absent record: %v, want ErrNotFound", err)
	}
}

// testCompressed: a large record that compresses well is stored in a fraction
// of its size, and reads back whole through every read path (Get, a batch,
// List, ListIndex) and through Update and Change, whose compare-and-swap works
// on the stored form.
func testCompressed(t *testing.T, s *store.Store) {
	ctx := testCtx(t)
	tbl := newTable(s, "packed")
	doc := strings.Repeat(`<saml:Attribute Name="groups"><saml:AttributeValue>jira-users</saml:AttributeValue></saml:Attribute>`, 100)
	mustCreate(t, tbl, "big", record{State: doc}, time.Hour, "ix")
	if n, err := tbl.MemoryUsage(ctx, "big"); err == nil && n > int64(len(doc))/4 {
		t.Errorf("a %d-byte record of repeated text takes %d bytes on the server", len(doc), n)
	} else if err != nil && !errors.Is(err, store.ErrUnsupported) {
		t.Fatal(err)
	}
	check := func(how string, got record, err error) {
		t.Helper()
		if err != nil || got.State != doc {
			t.Errorf("%s: %d bytes, err %v; want the whole record", how, len(got.State), err)
		}
	}
	got, err := tbl.Get(ctx, "big")
	check("get", got, err)
	b := s.Batch(ctx)
	res := tbl.GetIn(b, "big")
	b.Run()
	got, err = res.Get()
	check("batch get", got, err)
	if !tbl.Spread() { // a spread table cannot be listed whole
		all, err := tbl.List(ctx)
		if len(all) != 1 {
			t.Fatalf("list: %d records, %v", len(all), err)
		}
		check("list", all[0], err)
	}
	ix, err := tbl.ListIndex(ctx, "ix")
	if len(ix) != 1 {
		t.Fatalf("list index: %d records, %v", len(ix), err)
	}
	check("list index", ix[0], err)
	got, err = tbl.Update(ctx, "big", func(r record) (record, error) { r.N++; return r, nil })
	check("update", got, err)
	seen := got
	got, err = tbl.Change(ctx, "big", &seen, func(r record) (record, error) { r.N++; return r, nil }, store.Effects{})
	check("change", got, err)
	if got, _ = tbl.Get(ctx, "big"); got.N != 2 {
		t.Errorf("after an update and a change: counter %d, want 2", got.N)
	}
}

// testCreateIndexed: Create adds the id to the indexes it names, and a create
// that finds the record changes no index.
func testCreateIndexed(t *testing.T, s *store.Store) {
	ctx := testCtx(t)
	tbl := newTable(s, "sessions")
	// Loads the scripts, on a Cluster on the masters of both groups below ("ada" and "all").
	mustCreate(t, tbl, "warm-up", record{}, time.Hour, "warm:ada", "x:all")
	var err error
	// A spread table adds to the indexes of each group ("ada", "all"), then writes the record.
	want := map[bool]int64{false: 1, true: 3}[tbl.Spread()]
	if n := roundTrips(t, s, func() { err = tbl.Create(ctx, "s1", record{State: "one"}, time.Hour, "user:ada", "all") }); n != want {
		t.Errorf("Create with two indexes took %d round trips, want %d", n, want)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, ix := range []string{"user:ada", "all"} {
		if got, err := tbl.ListIndex(ctx, ix); err != nil || !slices.Equal(states(got), []string{"one"}) {
			t.Fatalf("ListIndex(%s) = %v, %v; want [one]", ix, states(got), err)
		}
	}
	if err := tbl.Create(ctx, "s1", record{State: "two"}, time.Hour, "user:bob"); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("second Create: %v, want ErrAlreadyExists", err)
	}
	if ids := mustIndexIDs(t, tbl, "user:bob"); len(ids) != 0 {
		t.Fatalf("a refused Create indexed the record: %v", ids)
	}
}

// testCreateWith: a create joins capped indexes in the same step as it writes
// the record, or writes nothing, names the full index and leaves the others
// alone; its indexes live at least IndexTTL; a create does nothing else.
func testCreateWith(t *testing.T, s *store.Store) {
	ctx := testCtx(t)
	tbl := newTable(s, "invites")
	mustCreate(t, tbl, "a", record{State: "open"}, time.Hour, "user:ada", "phone:ada")
	create := func(id string, also store.Effects) error {
		return tbl.CreateWith(ctx, id, record{State: "open"}, time.Hour, also)
	}
	// "phone:ada" holds one id and is capped at 1 for b; "user:ada" is not capped.
	err := create("b", store.Effects{AddTo: []string{"user:ada", "phone:ada"}, Caps: []int{0, 1}})
	var full *store.IndexFullError
	if !errors.Is(err, store.ErrIndexFull) || !errors.As(err, &full) || full.Index != "phone:ada" {
		t.Fatalf("creating into a full phone:ada: %v, want an IndexFullError naming it", err)
	}
	if _, err := tbl.Get(ctx, "b"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a create refused by a cap wrote the record: %v", err)
	}
	if ids := mustIndexIDs(t, tbl, "user:ada"); !slices.Equal(ids, []string{"a"}) {
		t.Fatalf("a create refused by a cap added to another index: user:ada = %v", ids)
	}
	// One write, one round trip on a single server; under a cap with room it joins every index.
	var n int64
	want := map[bool]int64{false: 1, true: 2}[tbl.Spread()] // spread: the group "ada", then the record
	if n = roundTrips(t, s, func() { err = create("c", store.Effects{AddTo: []string{"user:ada", "phone:ada"}, Cap: 2}) }); err != nil {
		t.Fatalf("creating under a cap with room: %v", err)
	}
	if n != want {
		t.Errorf("CreateWith took %d round trips, want %d", n, want)
	}
	for _, ix := range []string{"user:ada", "phone:ada"} {
		if ids := mustIndexIDs(t, tbl, ix); !slices.Equal(ids, []string{"a", "c"}) {
			t.Fatalf("%s = %v, want a and c", ix, ids)
		}
	}
	if err := create("d", store.Effects{AddTo: []string{"phone:ada"}, Cap: 2}); !errors.Is(err, store.ErrIndexFull) {
		t.Fatalf("a third id under Cap 2: %v, want ErrIndexFull", err)
	}
	// The index of an IndexTTL create goes away with it, though the record lives on.
	if err := create("e", store.Effects{AddTo: []string{"short:bob"}, IndexTTL: 50 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if ids := mustIndexIDs(t, tbl, "short:bob"); !slices.Equal(ids, []string{"e"}) {
		t.Fatalf("short:bob = %v right after the create, want e", ids)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(mustIndexIDs(t, tbl, "short:bob")) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("an index created with a 50ms IndexTTL still holds its id after 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := mustGet(t, tbl, "e"); got.State != "open" {
		t.Fatalf("e = %+v, want the record to outlive its index", got)
	}
	// A create only adds to indexes; anything else is refused before it is sent.
	for _, bad := range []store.Effects{
		{AddTo: []string{"user:ada"}, RemoveFrom: []string{"phone:ada"}},
		{AddTo: []string{"user:ada"}, Publish: []store.Message{{Channel: "x", Payload: "y"}}},
		{AddTo: []string{"user:ada"}, Linger: []string{"phone:ada"}, LingerFor: time.Second},
		{AddTo: []string{"user:ada", "phone:ada"}, Caps: []int{1}},
	} {
		if err := create("f", bad); err == nil || errors.Is(err, store.ErrIndexFull) {
			t.Fatalf("CreateWith(%+v): %v, want a usage error", bad, err)
		}
		if _, err := tbl.Get(ctx, "f"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a refused create wrote the record: %v", err)
		}
	}
	if ids := mustIndexIDs(t, tbl, "user:ada"); !slices.Equal(ids, []string{"a", "c"}) {
		t.Fatalf("refused creates changed user:ada: %v", ids)
	}
}

// testBatch: operations queued in a Batch go in one round trip and each
// returns what it would have returned alone, errors included.
func testBatch(t *testing.T, s *store.Store) {
	ctx := testCtx(t)
	users := newTable(s, "users")
	devices := newTable(s, "devices")
	mustCreate(t, users, "ada", record{State: "active"}, 0)
	for _, id := range []string{"d1", "d2"} {
		mustCreate(t, devices, id, record{State: id}, 0, "user:ada")
	}
	if err := s.SetValue(ctx, "pause:ada", "until tomorrow", time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Hit(ctx, "ip", time.Hour); err != nil {
		t.Fatal(err)
	}
	// A first batch loads the scripts and may open a connection.
	warm := s.Batch(ctx)
	devices.ListIndexIn(warm, "user:nobody")
	s.HitIn(warm, "warm-up", time.Hour)
	warm.Run()

	b := s.Batch(ctx)
	user := users.GetIn(b, "ada")
	nobody := users.GetIn(b, "bob")
	devs := devices.ListIndexIn(b, "user:ada")
	none := devices.ListIndexIn(b, "user:bob")
	pause := s.GetValueIn(b, "pause:ada")
	noPause := s.GetValueIn(b, "pause:bob")
	hit := s.HitIn(b, "ip", time.Hour)
	badHit := s.HitIn(b, "ip", 0)
	if _, err := user.Get(); err == nil {
		t.Fatal("a Result was ready before its Batch ran")
	}
	// A spread table's index reads its records once it has the ids: one more round trip.
	want := map[bool]int64{false: 1, true: 2}[devices.Spread()]
	if n := roundTrips(t, s, b.Run); n != want {
		t.Errorf("a Batch of 8 operations took %d round trips, want %d", n, want)
	}

	if u, err := user.Get(); err != nil || u.State != "active" {
		t.Errorf("GetIn = %+v, %v", u, err)
	}
	if _, err := nobody.Get(); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetIn of a missing record: %v, want ErrNotFound", err)
	}
	if ds, err := devs.Get(); err != nil || !slices.Equal(states(ds), []string{"d1", "d2"}) {
		t.Errorf("ListIndexIn = %v, %v", states(ds), err)
	}
	if ds, err := none.Get(); err != nil || len(ds) != 0 {
		t.Errorf("ListIndexIn of an empty index = %v, %v", ds, err)
	}
	if v, err := pause.Get(); err != nil || v != "until tomorrow" {
		t.Errorf("GetValueIn = %q, %v", v, err)
	}
	if _, err := noPause.Get(); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetValueIn of a missing value: %v, want ErrNotFound", err)
	}
	if h, err := hit.Get(); err != nil || h.Count != 2 || h.ResetIn <= 0 || h.ResetIn > time.Hour {
		t.Errorf("HitIn = %+v, %v; want the second hit of the window", h, err)
	}
	if _, err := badHit.Get(); err == nil {
		t.Error("HitIn with a zero window succeeded")
	}

	t.Run("LargeIndex", func(t *testing.T) {
		const n = 600 // more than one script can load
		for i := range n {
			mustCreate(t, devices, fmt.Sprint("big", i), record{N: i}, 0, "big")
		}
		b := s.Batch(ctx)
		all := devices.ListIndexIn(b, "big")
		b.Run()
		if ds, err := all.Get(); err != nil || len(ds) != n {
			t.Fatalf("ListIndexIn of %d ids = %d records, %v", n, len(ds), err)
		}
	})
	t.Run("Empty", func(t *testing.T) {
		if n := roundTrips(t, s, s.Batch(ctx).Run); n != 0 {
			t.Fatalf("an empty Batch took %d round trips", n)
		}
	})
}

// testKeysByShard: KeysByShard finds the store's keys (and only those under
// its prefix), each on one server: the only one of a non-Cluster store.
func testKeysByShard(t *testing.T, s *store.Store) {
	ctx := testCtx(t)
	tbl := newTable(s, "sharded")
	mustCreate(t, tbl, "a", record{}, time.Hour)
	shards, err := s.KeysByShard(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cluster := strings.HasPrefix(s.Describe(), "redis cluster"); len(shards) == 0 || !cluster && len(shards) != 1 {
		t.Fatalf("%d shards (cluster: %v): %v", len(shards), cluster, shards)
	}
	found := 0
	for _, keys := range shards {
		for _, k := range keys {
			if !strings.HasPrefix(k, s.Prefix()) {
				t.Errorf("key %q is not under the store's prefix %q", k, s.Prefix())
			}
			if strings.Contains(k, "{sharded}") && strings.HasSuffix(k, ":a") || strings.HasSuffix(k, "{sharded:a}:r") {
				found++
			}
		}
	}
	if found != 1 {
		t.Errorf("the record's key found %d times in %v, want once", found, shards)
	}
}

// stateChange returns a change of record id of tbl to a state, with effects also (Table.Change from the
// record as stored).
func stateChange(ctx context.Context, tbl *store.Table[record], id string) func(state string, also store.Effects) error {
	return func(state string, also store.Effects) error {
		_, err := tbl.Change(ctx, id, nil, func(r record) (record, error) { r.State = state; return r, nil }, also)
		return err
	}
}

// testChangeRequire: a change that requires another table's record is written, with its index and its
// message, while that record exists, and refused with nothing written once it is gone — on a table whose
// changes run as one script on one server; any other table refuses Require outright, writing nothing.
func testChangeRequire(t *testing.T, s *store.Store) {
	ctx := testCtx(t)
	tbl := newTable(s, "requiring")
	other := store.NewTable[record](s, "required")
	mustCreate(t, tbl, "x", record{State: "new"}, time.Hour)
	mustCreate(t, other, "dev", record{State: "enrolled"}, time.Hour)
	sub := mustSubscribe(t, s, updateChannel)
	change := stateChange(ctx, tbl, "x")
	also := store.Effects{AddTo: []string{"ix"}, Require: []store.Ref{other.Ref("dev")},
		Publish: []store.Message{{Channel: updateChannel, Payload: "changed"}}}
	// A create adds to indexes only: a Require there is refused, not ignored.
	if err := tbl.CreateWith(ctx, "y", record{State: "new"}, time.Hour, store.Effects{Require: []store.Ref{other.Ref("dev")}}); err == nil {
		t.Fatal("CreateWith took a Require")
	}
	if !tbl.InOrder() {
		if err := change("pending", also); err == nil || errors.Is(err, store.ErrRequiredMissing) {
			t.Fatalf("Require on a table whose changes are not one script on one server: %v, want refused", err)
		}
		if got := mustGet(t, tbl, "x"); got.State != "new" {
			t.Fatalf("a refused Require wrote %+v", got)
		}
		return
	}
	if err := change("pending", also); err != nil {
		t.Fatalf("change requiring a record that exists: %v", err)
	}
	if got, ids := mustGet(t, tbl, "x"), mustIndexIDs(t, tbl, "ix"); got.State != "pending" || len(ids) != 1 {
		t.Fatalf("after the change: %+v, index %v; want pending, in the index", got, ids)
	}
	if err := other.Delete(ctx, "dev"); err != nil {
		t.Fatal(err)
	}
	err := change("answered", store.Effects{RemoveFrom: []string{"ix"}, Require: []store.Ref{tbl.Ref("x"), other.Ref("dev")},
		Publish: []store.Message{{Channel: updateChannel, Payload: "changed again"}}})
	var missing *store.MissingError
	if !errors.Is(err, store.ErrRequiredMissing) || !errors.As(err, &missing) || !strings.Contains(missing.Record, "dev") {
		t.Fatalf("change requiring a deleted record: %v, want a MissingError naming it", err)
	}
	if got, ids := mustGet(t, tbl, "x"), mustIndexIDs(t, tbl, "ix"); got.State != "pending" || len(ids) != 1 {
		t.Fatalf("a refused change wrote: %+v, index %v", got, ids)
	}
	if msgs := drainUntilMarker(t, s, updateChannel, sub); !slices.Equal(msgs, []string{"changed"}) {
		t.Fatalf("published %q, want the first change's message only", msgs)
	}
}

// testChangeHits: a change with counters to hit is written, and hits them, while each is under its cap; once
// one is at its cap the change is refused with a LimitError naming it (its count and the time left in its
// window), and nothing is written, published or counted — with required records and published messages
// beside the hits, whose arguments share the script with them. A table whose changes are not one script on
// one server refuses Hits outright.
func testChangeHits(t *testing.T, s *store.Store) {
	ctx := testCtx(t)
	tbl := newTable(s, "hitting")
	other := store.NewTable[record](s, "required")
	mustCreate(t, tbl, "x", record{State: "s0"}, time.Hour)
	mustCreate(t, other, "dev", record{State: "enrolled"}, time.Hour)
	change := stateChange(ctx, tbl, "x")
	hits := []store.Hit{{Counter: "hits:net", Window: time.Hour, Cap: 3}, {Counter: "hits:user", Window: time.Minute, Cap: 2}}
	counts := func() (int64, int64) {
		t.Helper()
		a, _, err := s.Count(ctx, "hits:net")
		if err != nil {
			t.Fatal(err)
		}
		b, _, err := s.Count(ctx, "hits:user")
		if err != nil {
			t.Fatal(err)
		}
		return a, b
	}
	if err := tbl.CreateWith(ctx, "y", record{}, time.Hour, store.Effects{Hits: hits}); err == nil {
		t.Fatal("CreateWith took Hits")
	}
	if err := change("bad", store.Effects{Hits: []store.Hit{{Counter: "hits:bad", Window: time.Hour}}}); err == nil {
		t.Fatal("a hit without a cap was taken")
	}
	if !tbl.InOrder() {
		if err := change("s1", store.Effects{Hits: hits}); err == nil || errors.Is(err, store.ErrLimited) {
			t.Fatalf("Hits on a table whose changes are not one script on one server: %v, want refused", err)
		}
		if got := mustGet(t, tbl, "x"); got.State != "s0" {
			t.Fatalf("refused Hits wrote %+v", got)
		}
		if a, b := counts(); a != 0 || b != 0 {
			t.Fatalf("refused Hits counted %d and %d", a, b)
		}
		return
	}
	sub := mustSubscribe(t, s, updateChannel)
	also := store.Effects{AddTo: []string{"ix"}, Require: []store.Ref{other.Ref("dev")}, Hits: hits,
		Publish: []store.Message{{Channel: updateChannel, Payload: "changed"}}}
	for i, state := range []string{"s1", "s2"} {
		if err := change(state, also); err != nil {
			t.Fatalf("change %d under the caps: %v", i+1, err)
		}
		if a, b := counts(); a != int64(i+1) || b != int64(i+1) {
			t.Fatalf("after change %d the counters hold %d and %d, want %d", i+1, a, b, i+1)
		}
	}
	if _, left, err := s.Count(ctx, "hits:user"); err != nil || left <= 0 || left > time.Minute {
		t.Fatalf("the user's counter: %v left, %v; want its window of a minute", left, err)
	}
	err := change("s3", also)
	var limited *store.LimitError
	if !errors.Is(err, store.ErrLimited) || !errors.As(err, &limited) || limited.Counter != "hits:user" || limited.Count != 2 ||
		limited.ResetIn <= 0 || limited.ResetIn > time.Minute {
		t.Fatalf("change past the user's cap: %v (%+v), want a LimitError naming hits:user at 2 within the minute", err, limited)
	}
	if got := mustGet(t, tbl, "x"); got.State != "s2" {
		t.Fatalf("a change refused by a cap wrote %+v", got)
	}
	if a, b := counts(); a != 2 || b != 2 {
		t.Fatalf("a change refused by a cap counted: %d and %d, want 2 and 2", a, b)
	}
	if msgs := drainUntilMarker(t, s, updateChannel, sub); !slices.Equal(msgs, []string{"changed", "changed"}) {
		t.Fatalf("published %q, want the two changes' messages only", msgs)
	}
	// A change refused for a full index counts nothing either.
	if err := tbl.AddToIndex(ctx, "full", "other"); err != nil {
		t.Fatal(err)
	}
	if err := change("s3", store.Effects{AddTo: []string{"full"}, Cap: 1, Hits: []store.Hit{{Counter: "hits:net", Window: time.Hour, Cap: 3}}}); !errors.Is(err, store.ErrIndexFull) {
		t.Fatalf("change into a full index: %v, want ErrIndexFull", err)
	}
	if a, _ := counts(); a != 2 {
		t.Fatalf("a change refused for a full index counted: %d, want 2", a)
	}
	// The first counter past its cap is the one named.
	err = change("s3", store.Effects{Hits: []store.Hit{{Counter: "hits:net", Window: time.Hour, Cap: 2}, hits[1]}})
	if !errors.As(err, &limited) || limited.Counter != "hits:net" {
		t.Fatalf("change past both caps: %v, want hits:net named", err)
	}
}
