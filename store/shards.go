package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// KeysByShard returns the keys under the store's prefix, per server that
// holds them: per master in Redis Cluster (keyed by its address), else one
// entry. It scans the whole keyspace, so it is meant for tests and sizing,
// not for a serving path.
func (s *Store) KeysByShard(ctx context.Context) (map[string][]string, error) {
	pattern := globEscape(s.prefix) + "*"
	out := map[string][]string{}
	scan := func(ctx context.Context, c redis.Cmdable) ([]string, error) {
		var keys []string
		it := c.Scan(ctx, 0, pattern, 500).Iterator()
		for it.Next(ctx) {
			keys = append(keys, it.Val())
		}
		return keys, it.Err()
	}
	var err error
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		var mu sync.Mutex
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			keys, err := scan(ctx, c)
			mu.Lock()
			defer mu.Unlock()
			out[c.Options().Addr] = append(out[c.Options().Addr], keys...)
			return err
		})
	} else {
		var keys []string
		keys, err = scan(ctx, s.rdb)
		out[s.describe] = keys
	}
	if err != nil {
		return nil, fmt.Errorf("store: keys by shard: %w", err)
	}
	return out, nil
}

// MemoryByShard returns the bytes in use (INFO memory's used_memory) of each
// server that holds the store's data: per master in Redis Cluster (keyed by
// its address), else one entry keyed as [Store.KeysByShard] keys its own. It
// is each server's whole memory, not only that of the keys under the prefix,
// so it is meant for sizing (a reading before and after some work, on a
// server nothing else writes to) and for tests. The embedded store returns
// ErrUnsupported.
func (s *Store) MemoryByShard(ctx context.Context) (map[string]int64, error) {
	if s.mini != nil {
		return nil, fmt.Errorf("store: memory by shard: %w", ErrUnsupported)
	}
	out := map[string]int64{}
	var err error
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		var mu sync.Mutex
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			n, err := usedMemory(ctx, c)
			if err != nil {
				return fmt.Errorf("%s: %w", c.Options().Addr, err)
			}
			mu.Lock()
			defer mu.Unlock()
			out[c.Options().Addr] = n
			return nil
		})
	} else {
		var n int64
		n, err = usedMemory(ctx, s.rdb)
		out[s.describe] = n
	}
	if err != nil {
		return nil, fmt.Errorf("store: memory by shard: %w", err)
	}
	return out, nil
}

// usedMemory reads used_memory from the INFO memory of the server c talks to.
func usedMemory(ctx context.Context, c redis.Cmdable) (int64, error) {
	info, err := c.Info(ctx, "memory").Result()
	if err != nil {
		return 0, err
	}
	return parseUsedMemory(info)
}

// parseUsedMemory finds the used_memory field in the text of INFO memory.
func parseUsedMemory(info string) (int64, error) {
	for _, line := range strings.Split(info, "\n") {
		v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("INFO memory: used_memory %q: %w", v, err)
		}
		return n, nil
	}
	return 0, errors.New("INFO memory has no used_memory")
}

// RecordTable is the name of the table whose record key (one of KeysByShard's) holds, in either layout of
// a table: "{table}:r:<id>" on one server (Table.recKey), "{table:<id>}:r" spread over a Cluster's slots
// (spreadRecKey); "" for any other key (an index, a set of ids, a value) or a key not under the prefix.
func (s *Store) RecordTable(key string) string {
	rest, ok := strings.CutPrefix(key, s.prefix+"{")
	if !ok {
		return ""
	}
	if table, _, ok := strings.Cut(rest, "}:r:"); ok && !strings.ContainsAny(table, "{}:") {
		return table
	}
	if tag, ok := strings.CutSuffix(rest, "}:r"); ok {
		if table, id, ok := strings.Cut(tag, ":"); ok && id != "" && !strings.ContainsAny(table, "{}") {
			return table
		}
	}
	return ""
}
