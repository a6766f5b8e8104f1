package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

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

// PubSubConnName returns the client name of s's pub/sub connection.
func PubSubConnName(s *Store) string { return pubsubConnName(s.prefix) }

// PubSubConns counts s's pub/sub connections: for the embedded store, those
// it ever opened; for a real server, those open now under PubSubConnName
// (CLIENT LIST TYPE pubsub).
func PubSubConns(ctx context.Context, s *Store) (int, error) {
	if s.Embedded() {
		return int(s.psDials.Load()), nil
	}
	ids, err := pubsubConnIDs(ctx, s)
	return len(ids), err
}

// pubsubConnIDs returns the ids of the open connections named
// PubSubConnName(s).
func pubsubConnIDs(ctx context.Context, s *Store) ([]string, error) {
	list, err := s.rdb.Do(ctx, "client", "list", "type", "pubsub").Text()
	if err != nil {
		return nil, err
	}
	var ids []string
	for line := range strings.Lines(list) {
		var id string
		named := false
		for f := range strings.FieldsSeq(line) {
			if v, ok := strings.CutPrefix(f, "id="); ok {
				id = v
			}
			if f == "name="+PubSubConnName(s) {
				named = true
			}
		}
		if named {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// KillPubSubConn breaks s's pub/sub connection from outside: it closes the
// embedded pipe, or has a real server kill the connection (CLIENT KILL).
func KillPubSubConn(ctx context.Context, s *Store) error {
	if s.Embedded() {
		c := s.psConn.Load()
		if c == nil {
			return errors.New("no pub/sub connection")
		}
		return c.Conn.Close()
	}
	ids, err := pubsubConnIDs(ctx, s)
	if err != nil {
		return err
	}
	if len(ids) != 1 {
		return fmt.Errorf("%d pub/sub connections named %q, want 1", len(ids), PubSubConnName(s))
	}
	return s.rdb.Do(ctx, "client", "kill", "id", ids[0]).Err()
}

// PubSubConnLost returns a channel that is closed the next time s's pub/sub
// multiplexer handles a broken connection (it must be started).
func PubSubConnLost(s *Store) <-chan struct{} {
	s.psMu.Lock()
	m := s.mux
	s.psMu.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lost
}

// ServerChannels returns the channels under s's prefix that the server has
// subscribers for (PUBSUB CHANNELS), sorted, without the prefix.
func ServerChannels(ctx context.Context, s *Store) ([]string, error) {
	chs, err := s.rdb.PubSubChannels(ctx, globEscape(s.channelName(""))+"*").Result()
	if err != nil {
		return nil, err
	}
	for i, c := range chs {
		chs[i] = strings.TrimPrefix(c, s.channelName(""))
	}
	slices.Sort(chs)
	return chs, nil
}

// ServerNumSub returns the number of server-side subscribers (connections)
// of each channel (PUBSUB NUMSUB).
func ServerNumSub(ctx context.Context, s *Store, channels ...string) (map[string]int64, error) {
	names := make([]string, len(channels))
	for i, c := range channels {
		names[i] = s.channelName(c)
	}
	n, err := s.rdb.PubSubNumSub(ctx, names...).Result()
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(n))
	for k, v := range n {
		out[strings.TrimPrefix(k, s.channelName(""))] = v
	}
	return out, nil
}

// LocalTopics returns the number of channels s's multiplexer keeps state
// for (subscribed, or with an UNSUBSCRIBE awaiting its reply).
func LocalTopics(s *Store) int {
	s.psMu.Lock()
	m := s.mux
	s.psMu.Unlock()
	if m == nil {
		return 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.topics)
}

// SetPubSubPing sets how often s's pub/sub connection is pinged and how long
// an answer may take. Call it before the first Subscribe.
func SetPubSubPing(s *Store, every, timeout time.Duration) {
	s.psMu.Lock()
	defer s.psMu.Unlock()
	s.psPingEvery, s.psPingTimeout = every, timeout
}

// PubSubPonged returns a channel that is closed the next time a ping of s's
// pub/sub multiplexer is answered (it must be started).
func PubSubPonged(s *Store) <-chan struct{} {
	s.psMu.Lock()
	m := s.mux
	s.psMu.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ponged
}

// SilencePubSubConn makes the embedded store's current pub/sub connection
// drop everything the client writes, as if the server had vanished.
func SilencePubSubConn(s *Store) error {
	c := s.psConn.Load()
	if c == nil {
		return errors.New("no embedded pub/sub connection")
	}
	c.blackhole.Store(true)
	return nil
}
