package store_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/winkk/passport/store"
	"github.com/winkk/passport/store/storetest"
)

// TestCreateAdmitted: the record is created only when the claim is the caller's and the count within its
// cap; a refused create stores nothing but keeps its hit and its claim, as Hit and Claim would have; all of it
// in one round trip, on the real server and the embedded one.
func TestCreateAdmitted(t *testing.T) {
	for _, s := range []*store.Store{storetest.Open(t), storetest.OpenEmbedded(t)} {
		t.Run(s.Describe(), func(t *testing.T) {
			ctx := t.Context()
			tbl := store.NewTable[benchRecord](s, "logins")
			adm := func(claim string) store.Admission {
				return store.Admission{Hit: store.Hit{Counter: "park:net", Window: time.Minute, Cap: 3}, Claim: claim, ClaimTTL: time.Hour}
			}
			check := func(id string, a store.Admission, want store.Admitted) {
				t.Helper()
				before := s.Stats()
				got, err := tbl.CreateAdmitted(ctx, id, benchRecord{State: id}, time.Hour, a)
				if err != nil {
					t.Fatalf("CreateAdmitted(%s): %v", id, err)
				}
				if d := s.Stats(); d.RoundTrips-before.RoundTrips != 1 || d.Commands-before.Commands != 1 {
					t.Errorf("CreateAdmitted(%s) took %d round trips, %d commands; want 1 and 1", id,
						d.RoundTrips-before.RoundTrips, d.Commands-before.Commands)
				}
				if got.ResetIn <= 0 || got.ResetIn > time.Minute {
					t.Errorf("CreateAdmitted(%s): reset in %v, want within the minute", id, got.ResetIn)
				}
				got.ResetIn = 0
				if got != want {
					t.Errorf("CreateAdmitted(%s) = %+v, want %+v", id, got, want)
				}
				r, err := tbl.Get(ctx, id)
				switch {
				case want.Created && (err != nil || r.State != id):
					t.Errorf("record %s after its create: %+v, %v", id, r, err)
				case !want.Created && !errors.Is(err, store.ErrNotFound):
					t.Errorf("record %s after a refused create: %+v, %v; want not found", id, r, err)
				}
			}
			// Loads the script (a first run sends its source after the server said it did not have it).
			if _, err := tbl.CreateAdmitted(ctx, "warm", benchRecord{}, time.Hour, store.Admission{Hit: store.Hit{Counter: "warm", Window: time.Minute, Cap: 1}}); err != nil {
				t.Fatal(err)
			}
			check("a", adm("req-1"), store.Admitted{Count: 1, Claimed: true, Created: true})
			// The same claim again: a replay, refused, counted.
			check("b", adm("req-1"), store.Admitted{Count: 2, Claimed: false})
			// No claim asked: counted and created.
			check("c", adm(""), store.Admitted{Count: 3, Claimed: true, Created: true})
			// Past the cap: refused, yet counted and its claim made, so that it cannot be used later either.
			check("d", adm("req-2"), store.Admitted{Count: 4, Claimed: true})
			if first, err := s.Claim(ctx, "req-2", time.Hour); err != nil || first {
				t.Errorf("claim of a request refused by the count: first %v, %v; want already claimed", first, err)
			}
			if n, left, err := s.Count(ctx, "park:net"); err != nil || n != 4 || left <= 0 || left > time.Minute {
				t.Errorf("counter after four admissions = %d (%v left), %v; want 4 within the minute", n, left, err)
			}
			ids, err := tbl.IDs(ctx)
			if err != nil || len(ids) != 3 {
				t.Errorf("table's ids after three creates: %v, %v", ids, err)
			}

			// An id that exists: ErrAlreadyExists, the record left alone.
			other := func(claim string) store.Admission {
				return store.Admission{Hit: store.Hit{Counter: "park:other", Window: time.Minute, Cap: 10}, Claim: claim, ClaimTTL: time.Hour}
			}
			if got, err := tbl.CreateAdmitted(ctx, "a", benchRecord{State: "again"}, time.Hour, other("")); !errors.Is(err, store.ErrAlreadyExists) || got.Created {
				t.Errorf("CreateAdmitted of an existing id = %+v, %v; want ErrAlreadyExists", got, err)
			}
			if r, err := tbl.Get(ctx, "a"); err != nil || r.State != "a" {
				t.Errorf("existing record after a second create: %+v, %v", r, err)
			}

			// What cannot be done is refused before anything is sent.
			for _, bad := range []store.Admission{
				{Hit: store.Hit{Counter: "park:bad", Cap: 1}},
				{Hit: store.Hit{Counter: "park:bad", Window: time.Minute}},
				{Hit: store.Hit{Counter: "park:bad", Window: time.Minute, Cap: 1}, Claim: "req-bad"},
			} {
				if _, err := tbl.CreateAdmitted(ctx, "e", benchRecord{}, time.Hour, bad); err == nil {
					t.Errorf("CreateAdmitted with %+v succeeded", bad)
				}
			}
			if n, _, err := s.Count(ctx, "park:bad"); err != nil || n != 0 {
				t.Errorf("counter after refused admissions = %d, %v; want 0", n, err)
			}

			// Racing callers of one claim: exactly one creates.
			var wg sync.WaitGroup
			var mu sync.Mutex
			created := 0
			for i := range 16 {
				wg.Go(func() {
					got, err := tbl.CreateAdmitted(ctx, fmt.Sprintf("race-%d", i), benchRecord{}, time.Hour, other("req-race"))
					if err != nil {
						t.Error(err)
						return
					}
					if got.Created {
						mu.Lock()
						created++
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			if created != 1 {
				t.Errorf("%d of 16 racing creates of one claim created, want 1", created)
			}
		})
	}

	// After the server lost its scripts the create still runs, once.
	s := storetest.OpenEmbedded(t) // a flush cannot disturb tests sharing a real server
	ctx := t.Context()
	tbl := store.NewTable[benchRecord](s, "logins")
	a := store.Admission{Hit: store.Hit{Counter: "park:net", Window: time.Minute, Cap: 5}, Claim: "req", ClaimTTL: time.Hour}
	if _, err := tbl.CreateAdmitted(ctx, "warm", benchRecord{}, time.Hour, store.Admission{Hit: store.Hit{Counter: "warm", Window: time.Minute, Cap: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := store.FlushScripts(ctx, s); err != nil {
		t.Fatal(err)
	}
	if got, err := tbl.CreateAdmitted(ctx, "x", benchRecord{State: "x"}, time.Hour, a); err != nil || !got.Created || got.Count != 1 {
		t.Errorf("CreateAdmitted after a script flush = %+v, %v; want created at count 1", got, err)
	}

	// Spread records (a Cluster's layout): refused, nothing counted or written.
	if url, ok := storetest.RedisURL(); ok {
		ss := storetest.OpenSpread(t, url)
		sp := store.NewSpreadTable[benchRecord](ss, "logins")
		if _, err := sp.CreateAdmitted(ctx, "s1", benchRecord{}, time.Hour, a); err == nil {
			t.Error("CreateAdmitted on a spread table succeeded")
		}
		if n, _, err := ss.Count(ctx, "park:net"); err != nil || n != 0 {
			t.Errorf("counter after a refused CreateAdmitted = %d, %v; want 0", n, err)
		}
		if _, err := sp.Get(ctx, "s1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("record after a refused CreateAdmitted: %v, want not found", err)
		}
	}
}

// TestChangeHitsCounterWithoutExpiry: a counter at its cap that has lost its expiry (no hit leaves one so)
// refuses the change and is given its window, so that it cannot refuse for ever.
func TestChangeHitsCounterWithoutExpiry(t *testing.T) {
	for _, s := range []*store.Store{storetest.Open(t), storetest.OpenEmbedded(t)} {
		t.Run(s.Describe(), func(t *testing.T) {
			ctx := t.Context()
			tbl := store.NewTable[benchRecord](s, "logins")
			if err := tbl.Create(ctx, "x", benchRecord{State: "a"}, time.Hour); err != nil {
				t.Fatal(err)
			}
			if err := store.SetCounterForever(ctx, s, "hits:user", 2); err != nil {
				t.Fatal(err)
			}
			_, err := tbl.Change(ctx, "x", nil, func(r benchRecord) (benchRecord, error) { r.State = "b"; return r, nil },
				store.Effects{Hits: []store.Hit{{Counter: "hits:user", Window: time.Minute, Cap: 2}}})
			var limited *store.LimitError
			if !errors.As(err, &limited) || limited.ResetIn != time.Minute {
				t.Fatalf("change past a counter without expiry: %v (%+v), want a LimitError with the window's minute", err, limited)
			}
			if n, left, err := s.Count(ctx, "hits:user"); err != nil || n != 2 || left <= 0 || left > time.Minute {
				t.Errorf("the counter after the refusal: %d, %v left, %v; want 2 expiring within the minute", n, left, err)
			}
		})
	}
}
