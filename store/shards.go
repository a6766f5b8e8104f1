package store

import (
	"context"
	"fmt"
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
