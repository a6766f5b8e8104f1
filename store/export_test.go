package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// RoundTripCounter counts the round trips and commands of a Store from the
// moment it was made or last Reset, from [Store.Stats]. Test-only.
type RoundTripCounter struct {
	s    *Store
	base Stats
}

// CountRoundTrips starts counting s's round trips.
func CountRoundTrips(s *Store) *RoundTripCounter {
	return &RoundTripCounter{s: s, base: s.Stats()}
}

// Reset starts counting again from zero.
func (c *RoundTripCounter) Reset() { c.base = c.s.Stats() }

// RoundTrips returns the round trips counted since the last Reset.
func (c *RoundTripCounter) RoundTrips() int64 { return c.s.Stats().RoundTrips - c.base.RoundTrips }

// Commands returns the commands counted since the last Reset (a MULTI/EXEC
// pipeline counts each queued command plus MULTI and EXEC).
func (c *RoundTripCounter) Commands() int64 { return c.s.Stats().Commands - c.base.Commands }

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

// FlushScripts makes the server forget every loaded script (SCRIPT FLUSH), as
// a restart does.
func FlushScripts(ctx context.Context, s *Store) error { return s.rdb.ScriptFlush(ctx).Err() }

// AliveChecks returns how many times go-redis's pool checked s's connections by a peek at the socket, and
// how many times it was answered without one (see aliveFor).
func AliveChecks(s *Store) (peeks, skips int64) { return s.alive.peeks.Load(), s.alive.skips.Load() }

// SetAliveWindow sets how long after a reply s takes a connection as alive without a peek (0: never).
func SetAliveWindow(s *Store, d time.Duration) { s.alive.window.Store(int64(d)) }

// ClientID returns the server's id of the connection that s's next command uses (CLIENT ID): one at a time,
// commands use the same connection.
func ClientID(ctx context.Context, s *Store) (int64, error) { return s.rdb.ClientID(ctx).Result() }

// KillClient has the server close its connection id (CLIENT KILL ID), asked through s: another store, since a
// connection is not closed by its own request.
func KillClient(ctx context.Context, s *Store, id int64) error {
	return s.rdb.ClientKillByFilter(ctx, "ID", strconv.FormatInt(id, 10)).Err()
}

// SetCounterForever sets counter key to n with no expiry, as no hit ever leaves it. Test-only.
func SetCounterForever(ctx context.Context, s *Store, key string, n int64) error {
	return s.rdb.Set(ctx, s.counterKey(key), n, 0).Err()
}
