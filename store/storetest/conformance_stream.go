package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/winkk/passport/store"
)

// testStream: a stream keeps its entries in order under time-ordered IDs, reads them in either direction
// from any point (a page's last ID excluded), and trims those older than the age asked for as it appends.
func testStream(t *testing.T, s *store.Store) {
	ctx := testCtx(t)
	x := s.Stream("log")
	var ids []string
	for i := range 5 {
		got, err := x.Append(ctx, time.Time{}, []byte(fmt.Sprint("e", i)))
		if err != nil || len(got) != 1 || !store.ValidID(got[0]) {
			t.Fatalf("append %d: %v %v", i, got, err)
		}
		ids = append(ids, got[0])
	}
	batch, err := x.Append(ctx, time.Time{}, []byte("e5"), []byte("e6"))
	if err != nil || len(batch) != 2 {
		t.Fatalf("append two: %v %v", batch, err)
	}
	ids = append(ids, batch...)
	if !slices.IsSortedFunc(ids, compareIDs) {
		t.Fatalf("ids not increasing: %v", ids)
	}
	data := func(es []store.StreamEntry) []string {
		var out []string
		for _, e := range es {
			out = append(out, string(e.Data))
		}
		return out
	}
	all, err := x.Range(ctx, store.MinID, store.MaxID, 100, false)
	if err != nil || !slices.Equal(data(all), []string{"e0", "e1", "e2", "e3", "e4", "e5", "e6"}) {
		t.Fatalf("oldest first: %v %v", data(all), err)
	}
	page, _ := x.Range(ctx, store.MinID, store.MaxID, 3, true)
	if !slices.Equal(data(page), []string{"e6", "e5", "e4"}) {
		t.Fatalf("newest first: %v", data(page))
	}
	next, _ := x.Range(ctx, store.MinID, "("+page[2].ID, 3, true)
	if !slices.Equal(data(next), []string{"e3", "e2", "e1"}) {
		t.Fatalf("the next page: %v", data(next))
	}
	after, _ := x.Range(ctx, "("+ids[4], store.MaxID, 10, false)
	if !slices.Equal(data(after), []string{"e5", "e6"}) {
		t.Fatalf("after an ID: %v", data(after))
	}
	if none, err := x.Range(ctx, store.IDAt(time.Now().Add(time.Hour)), store.MaxID, 10, false); err != nil || len(none) != 0 {
		t.Fatalf("from an hour ahead: %v %v", none, err)
	}
	if some, _ := x.Range(ctx, store.IDAt(time.Now().Add(-time.Hour)), store.IDBefore(time.Now().Add(time.Hour)), 10, false); len(some) != 7 {
		t.Fatalf("the last hour holds %d entries, want 7", len(some))
	}
	// Appending with keepAfter trims what is older. (The embedded store's clock moves in 50ms ticks: keep
	// well clear of them on both sides.)
	time.Sleep(300 * time.Millisecond)
	if _, err := x.Append(ctx, time.Now().Add(-150*time.Millisecond), []byte("fresh")); err != nil {
		t.Fatal(err)
	}
	if left, _ := x.Range(ctx, store.MinID, store.MaxID, 100, false); !slices.Equal(data(left), []string{"fresh"}) {
		t.Fatalf("after trimming: %v", data(left))
	}
	if n, err := x.Len(ctx); err != nil || n != 1 {
		t.Fatalf("len %d %v", n, err)
	}
	for _, bad := range []string{"", "x", "1-", "-1", "1-x", "1.5-2"} {
		if store.ValidID(bad) {
			t.Errorf("ValidID(%q) = true", bad)
		}
	}
}

func compareIDs(a, b string) int {
	var ams, aseq, bms, bseq uint64
	fmt.Sscanf(a, "%d-%d", &ams, &aseq)
	fmt.Sscanf(b, "%d-%d", &bms, &bseq)
	switch {
	case ams != bms:
		return cmpU(ams, bms)
	default:
		return cmpU(aseq, bseq)
	}
}

func cmpU(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
