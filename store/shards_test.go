package store_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/winkk/passport/store"
	"github.com/winkk/passport/store/storetest"
	"github.com/winkk/passport/store/storetest/redisproc"
)

// blob is a record made big on purpose, to move a server's memory.
type blob struct {
	Data string `json:"data"`
}

// memoryByShard is s.MemoryByShard, failing tb on an error.
func memoryByShard(tb testing.TB, s *store.Store) map[string]int64 {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := s.MemoryByShard(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// TestMemoryByShard: on the tests' Redis, one entry named as KeysByShard names its own, and a positive size.
func TestMemoryByShard(t *testing.T) {
	t.Parallel()
	s := storetest.OpenRedis(t)
	m := memoryByShard(t, s)
	keys, err := s.KeysByShard(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 1 || m[s.Describe()] <= 0 {
		t.Fatalf("memory by shard %v, want one positive entry named %q", m, s.Describe())
	}
	for name := range keys {
		if _, ok := m[name]; !ok {
			t.Errorf("KeysByShard names a server %q that MemoryByShard does not (%v)", name, m)
		}
	}
}

// TestMemoryByShardGrows: on a server of its own (nothing else writes there), 4 MiB of records written raise
// used_memory by about as much, and deleting them brings it back down.
func TestMemoryByShardGrows(t *testing.T) {
	t.Parallel()
	srv := redisproc.Start(t)
	s := storetest.OpenURL(t, srv.URL())
	ctx := context.Background()
	tbl := store.NewTable[blob](s, "blob")
	before := memoryByShard(t, s)[s.Describe()]
	const records, size = 8, 512 << 10
	for i := range records {
		noise := make([]byte, size*3/4) // base64: size bytes that do not compress
		_, _ = rand.Read(noise)
		if err := tbl.Put(ctx, fmt.Sprint(i), blob{Data: base64.StdEncoding.EncodeToString(noise)}, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	after := memoryByShard(t, s)[s.Describe()]
	if grew := after - before; grew < records*size || grew > 2*records*size {
		t.Errorf("used_memory grew by %d bytes (%d → %d) for %d bytes written", grew, before, after, records*size)
	}
	if _, err := s.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	// UNLINK frees large values in the background.
	deadline := time.Now().Add(10 * time.Second)
	for memoryByShard(t, s)[s.Describe()] > before+records*size/4 {
		if time.Now().After(deadline) {
			t.Fatalf("used_memory still %d bytes 10s after the records went (%d before them)", memoryByShard(t, s)[s.Describe()], before)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMemoryByShardCluster: on a Redis Cluster, one entry per master, keyed by its address as KeysByShard keys
// it.
func TestMemoryByShardCluster(t *testing.T) {
	t.Parallel()
	c := redisproc.StartCluster(t)
	s := storetest.OpenURL(t, c.URL())
	m := memoryByShard(t, s)
	if len(m) != len(c.Masters) {
		t.Fatalf("memory by shard %v, want one entry for each of %d masters", m, len(c.Masters))
	}
	for _, master := range c.Masters {
		if m[master.Addr] <= 0 {
			t.Errorf("master %s: used_memory %d (all: %v)", master.Addr, m[master.Addr], m)
		}
	}
}

// TestPurgeCluster: on a Redis Cluster, Purge deletes the store's keys on every master at once and counts each
// of them once (the masters are purged concurrently: run with -race).
func TestPurgeCluster(t *testing.T) {
	t.Parallel()
	c := redisproc.StartCluster(t)
	s := storetest.OpenURL(t, c.URL())
	ctx := context.Background()
	tbl := store.NewSpreadTable[blob](s, "purge")
	for i := range 60 {
		if err := tbl.Create(ctx, fmt.Sprintf("record-%d", i), blob{Data: "x"}, 0); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := s.KeysByShard(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want, masters := 0, 0
	for _, ks := range keys {
		want += len(ks)
		if len(ks) > 0 {
			masters++
		}
	}
	if want < 60 || masters < 2 {
		t.Fatalf("%d keys on %d masters, want the 60 records spread over several", want, masters)
	}
	if n, err := s.Purge(ctx); err != nil || n != int64(want) {
		t.Errorf("Purge deleted %d keys (%v), want %d", n, err, want)
	}
	if left, err := s.KeysByShard(ctx); err != nil {
		t.Fatal(err)
	} else {
		for addr, ks := range left {
			if len(ks) > 0 {
				t.Errorf("%s still holds %v", addr, ks)
			}
		}
	}
}

// TestMemoryByShardEmbedded: the embedded store cannot tell its memory.
func TestMemoryByShardEmbedded(t *testing.T) {
	t.Parallel()
	s := storetest.OpenEmbedded(t)
	if m, err := s.MemoryByShard(context.Background()); !errors.Is(err, store.ErrUnsupported) || m != nil {
		t.Errorf("MemoryByShard on the embedded store: %v, %v; want ErrUnsupported", m, err)
	}
}

// TestRecordTable: of the keys a table's writes leave, in either layout, RecordTable names the table for the
// records and nothing for the rest (the ids, the indexes); a spread table's records are named as well.
func TestRecordTable(t *testing.T) {
	t.Parallel()
	srv := redisproc.Start(t)
	ctx := context.Background()
	for _, spread := range []bool{false, true} {
		open := storetest.OpenURL
		if spread {
			open = storetest.OpenSpread
		}
		s := open(t, srv.URL())
		plain := store.NewTable[blob](s, "blob")
		logins := store.NewSpreadTable[blob](s, "login")
		for i := range 3 {
			id := fmt.Sprintf("id%d", i)
			if err := plain.Create(ctx, id, blob{Data: "x"}, time.Minute, "owner:a"); err != nil {
				t.Fatal(err)
			}
			if err := logins.Create(ctx, id, blob{Data: "x"}, time.Minute, "pending:a@example.com"); err != nil {
				t.Fatal(err)
			}
		}
		byShard, err := s.KeysByShard(ctx)
		if err != nil {
			t.Fatal(err)
		}
		count := map[string]int{}
		var others int
		for _, keys := range byShard {
			for _, k := range keys {
				if table := s.RecordTable(k); table != "" {
					count[table]++
				} else {
					others++
				}
			}
		}
		if count["blob"] != 3 || count["login"] != 3 || len(count) != 2 || others == 0 {
			t.Errorf("spread %v: records by table %v and %d other keys, want 3 blob and 3 login records beside their ids and indexes", spread, count, others)
		}
		if got := s.RecordTable("{blob}:r:id0"); got != "" {
			t.Errorf("a key outside the store's prefix is named %q", got)
		}
	}
}
