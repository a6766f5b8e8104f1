package store

import (
	"context"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Replica acknowledgement. Redis replicates asynchronously: a write the master has confirmed can be lost if
// the master dies before its replica has it and the replica is promoted. For the writes a caller must never
// lose once it has told someone they succeeded (a phone's approval), [WithReplicaAck] asks the master to wait
// for a replica's acknowledgement (WAIT) before the write returns. The WAIT rides in the same pipeline as the
// write, on the same connection (WAIT counts the writes of its own connection): no extra round trip, only the
// replica's acknowledgement time (about one replication hop).
//
// It is on by default for Sentinel URLs (one replica, 250ms), off for the others; the URL's query sets it:
// replica_ack=N (0 turns it off) and replica_ack_timeout=D. When fewer than N replicas acknowledge within the
// timeout (none is connected, or it lags), the write stands — it is on the master, and a Sentinel promotes only
// a replica that was in sync — and a warning is logged; [Stats].ReplicaAckMissed counts those. A Cluster URL
// does not take the option (its nodes are chosen per key).

const (
	defaultSentinelReplicaAck = 1
	defaultReplicaAckTimeout  = 250 * time.Millisecond
)

type replicaAckKey struct{}

// WithReplicaAck returns ctx marked so that the scripted writes made with it (Table.Create, Put, Update,
// Change and the like) return only once a replica has acknowledged them, when the store was opened with
// replica acknowledgement (see above); otherwise it changes nothing.
func WithReplicaAck(ctx context.Context) context.Context {
	return context.WithValue(ctx, replicaAckKey{}, true)
}

// replicaAck is the go-redis hook behind WithReplicaAck, on a single-master client (redis://, Sentinel).
type replicaAck struct {
	client  *redis.Client
	n       int
	timeout time.Duration
	stats   *statsHook
	missed  atomic.Int64
}

func (h *replicaAck) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *replicaAck) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *replicaAck) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.n <= 0 || ctx.Value(replicaAckKey{}) == nil || (cmd.Name() != "evalsha" && cmd.Name() != "eval") {
			return next(ctx, cmd)
		}
		// The script and the WAIT go as one pipeline on one connection.
		pipe := h.client.Pipeline()
		_ = pipe.Process(ctx, cmd)
		wait := redis.NewIntCmd(ctx, "wait", h.n, h.timeout.Milliseconds())
		_ = pipe.Process(ctx, wait)
		_, _ = pipe.Exec(ctx)
		h.stats.rtts.Add(-1) // the pipeline is this command's round trip, already counted
		h.stats.cmds.Add(-1) // and so is the script; the WAIT counts
		if err := cmd.Err(); err != nil {
			return err
		}
		if got, err := wait.Result(); err != nil || got < int64(h.n) {
			h.missed.Add(1)
			warn(ctx, "store: a write was not acknowledged by a replica in time; it stands on the master",
				"want", h.n, "got", got, "timeout", h.timeout, "err", err)
		}
		return nil
	}
}

// replicaAckOptions takes replica_ack and replica_ack_timeout out of query, returning the number of replicas to
// wait for (def when absent) and the timeout.
func replicaAckOptions(query url.Values, def int) (int, time.Duration, error) {
	n, timeout := def, defaultReplicaAckTimeout
	if v := query.Get("replica_ack"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 0 {
			return 0, 0, errInvalidOption("replica_ack", v)
		}
	}
	if v := query.Get("replica_ack_timeout"); v != "" {
		var err error
		if timeout, err = time.ParseDuration(v); err != nil || timeout <= 0 {
			return 0, 0, errInvalidOption("replica_ack_timeout", v)
		}
	}
	query.Del("replica_ack")
	query.Del("replica_ack_timeout")
	return n, timeout, nil
}

// stripReplicaAck removes the replica_ack options from a redis:// URL (redis.ParseURL refuses options it does not
// know) and returns them.
func stripReplicaAck(raw string) (string, int, time.Duration, error) {
	base, rawQuery, ok := strings.Cut(raw, "?")
	if !ok {
		return raw, 0, defaultReplicaAckTimeout, nil
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return raw, 0, defaultReplicaAckTimeout, nil // redis.ParseURL reports it
	}
	n, timeout, err := replicaAckOptions(q, 0)
	if err != nil {
		return "", 0, 0, err
	}
	if len(q) == 0 {
		return base, n, timeout, nil
	}
	return base + "?" + q.Encode(), n, timeout, nil
}

type invalidOptionError struct{ name, value string }

func (e invalidOptionError) Error() string {
	return "invalid URL: " + e.name + "=" + strconv.Quote(e.value) + " (want a count for replica_ack, a duration such as 250ms for replica_ack_timeout)"
}

func errInvalidOption(name, value string) error { return invalidOptionError{name, value} }
