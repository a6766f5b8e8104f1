package store

import (
	"context"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// RoundTripCounter counts the round trips (commands or pipelines sent, each
// awaited before the next) and the commands a Store's client makes. Test-only.
type RoundTripCounter struct {
	rtts, cmds atomic.Int64
}

// CountRoundTrips installs a counting hook on s's client. Install it before
// using s concurrently.
func CountRoundTrips(s *Store) *RoundTripCounter {
	c := &RoundTripCounter{}
	s.rdb.AddHook(c)
	return c
}

// Reset zeroes the counts.
func (c *RoundTripCounter) Reset() { c.rtts.Store(0); c.cmds.Store(0) }

// RoundTrips returns the round trips counted since the last Reset.
func (c *RoundTripCounter) RoundTrips() int64 { return c.rtts.Load() }

// Commands returns the commands counted since the last Reset (a MULTI/EXEC
// pipeline counts each queued command plus MULTI and EXEC).
func (c *RoundTripCounter) Commands() int64 { return c.cmds.Load() }

// DialHook implements redis.Hook.
func (c *RoundTripCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook implements redis.Hook.
func (c *RoundTripCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.rtts.Add(1)
		c.cmds.Add(1)
		return next(ctx, cmd)
	}
}

// ProcessPipelineHook implements redis.Hook.
func (c *RoundTripCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.rtts.Add(1)
		c.cmds.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}
