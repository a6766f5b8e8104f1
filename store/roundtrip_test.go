package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/winkk/passport/store"
	"github.com/winkk/passport/store/storetest"
)

// TestRoundTrips pins how many round trips each operation costs once its
// scripts are loaded (the first call of a script on a server may take one
// more: EVALSHA, NOSCRIPT, EVAL).
func TestRoundTrips(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			s := b.Open(t)
			rt := store.CountRoundTrips(s)
			ctx := t.Context()
			tbl := store.NewTable[benchRecord](s, "rtt")
			incr := func(r benchRecord) (benchRecord, error) { r.N++; return r, nil }
			// Each op gets i = 0 (warm-up) then i = 1 (counted); ids made
			// from i are fresh per call.
			id := func(what string, i int) string { return fmt.Sprint(what, i) }
			mustPutRecord := func(t *testing.T, id string) {
				t.Helper()
				if err := tbl.Put(ctx, id, benchRecord{State: "pending"}, time.Hour); err != nil {
					t.Fatal(err)
				}
			}
			tests := []struct {
				name  string
				setup func(t *testing.T, i int)
				op    func(i int) error
				want  int64
			}{
				{"Get", func(t *testing.T, i int) { mustPutRecord(t, id("get", i)) },
					func(i int) error { _, err := tbl.Get(ctx, id("get", i)); return err }, 1},
				{"Create", nil, func(i int) error {
					return tbl.Create(ctx, id("create", i), benchRecord{}, time.Hour)
				}, 1},
				{"Put", nil, func(i int) error { return tbl.Put(ctx, id("put", i), benchRecord{}, time.Hour) }, 1},
				{"Update", func(t *testing.T, i int) { mustPutRecord(t, id("upd", i)) },
					func(i int) error { _, err := tbl.Update(ctx, id("upd", i), incr); return err }, 2},
				{"UpdateAndPublish", func(t *testing.T, i int) { mustPutRecord(t, id("pub", i)) },
					func(i int) error {
						_, err := tbl.UpdateAndPublish(ctx, id("pub", i), incr, "c", "changed")
						return err
					}, 2},
				// GET, the Put in fn, the losing script (which returns the
				// current value, so there is no second GET), the winning one.
				{"UpdateLosingOneRace", func(t *testing.T, i int) { mustPutRecord(t, id("race", i)) },
					func(i int) error {
						calls := 0
						_, err := tbl.Update(ctx, id("race", i), func(r benchRecord) (benchRecord, error) {
							calls++
							if calls == 1 {
								if err := tbl.Put(ctx, id("race", i), benchRecord{State: "other"}, time.Hour); err != nil {
									return r, err
								}
							}
							return incr(r)
						})
						return err
					}, 4},
				{"UpdateMissing", nil, func(i int) error {
					_, err := tbl.Update(ctx, id("nope", i), incr)
					if err == nil {
						return fmt.Errorf("Update of a missing record succeeded")
					}
					return nil
				}, 1},
				{"Delete", func(t *testing.T, i int) { mustPutRecord(t, id("del", i)) },
					func(i int) error { return tbl.Delete(ctx, id("del", i)) }, 1},
				{"Take", func(t *testing.T, i int) { mustPutRecord(t, id("take", i)) },
					func(i int) error { _, err := tbl.Take(ctx, id("take", i)); return err }, 1},
				{"TTL", func(t *testing.T, i int) { mustPutRecord(t, id("ttl", i)) },
					func(i int) error { _, err := tbl.TTL(ctx, id("ttl", i)); return err }, 1},
				{"AddToIndex", func(t *testing.T, i int) { mustPutRecord(t, id("ix", i)) },
					func(i int) error { return tbl.AddToIndex(ctx, "user", id("ix", i)) }, 1},
				{"RemoveFromIndex", nil, func(i int) error { return tbl.RemoveFromIndex(ctx, "user", id("ix", i)) }, 1},
				// An index of 5 live records and 2 stale ids.
				{"ListIndexWithStaleIDs", func(t *testing.T, i int) {
					index := id("devices", i)
					for j := range 7 {
						d := id(index+"-", j)
						mustPutRecord(t, d)
						if err := tbl.AddToIndex(ctx, index, d); err != nil {
							t.Fatal(err)
						}
						if j >= 5 {
							if err := tbl.Delete(ctx, d); err != nil {
								t.Fatal(err)
							}
						}
					}
				}, func(i int) error {
					l, err := tbl.ListIndex(ctx, id("devices", i))
					if err == nil && len(l) != 5 {
						err = fmt.Errorf("ListIndex returned %d records, want 5", len(l))
					}
					return err
				}, 1},
				{"List", nil, func(int) error { _, err := tbl.List(ctx); return err }, 1},
				{"IndexIDs", nil, func(int) error { _, err := tbl.IndexIDs(ctx, "user"); return err }, 1},
				{"Claim", nil, func(i int) error { _, err := s.Claim(ctx, id("claim", i), time.Hour); return err }, 1},
				{"SetIfAbsent", nil, func(i int) error { _, err := s.SetIfAbsent(ctx, id("v", i), "x", time.Hour); return err }, 1},
				{"GetValue", nil, func(i int) error { _, err := s.GetValue(ctx, id("v", i)); return err }, 1},
				{"DeleteValueIf", nil, func(i int) error { _, err := s.DeleteValueIf(ctx, id("v", i), "x"); return err }, 1},
				{"Hit", nil, func(int) error { _, _, err := s.Hit(ctx, "ip", time.Hour); return err }, 1},
				{"Count", nil, func(int) error { _, _, err := s.Count(ctx, "ip"); return err }, 1},
				{"Publish", nil, func(int) error { return s.Publish(ctx, "c", "x") }, 1},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					for i := range 2 {
						if tc.setup != nil {
							tc.setup(t, i)
						}
						rt.Reset()
						if err := tc.op(i); err != nil {
							t.Fatalf("call %d: %v", i, err)
						}
					}
					if got := rt.RoundTrips(); got != tc.want {
						t.Fatalf("%s took %d round trips, want %d", tc.name, got, tc.want)
					}
				})
			}
		})
	}
}
