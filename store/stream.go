package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Stream is an append-only log of entries (a Redis Stream) under the store's prefix, each entry named by
// the server's time-ordered ID ("<unix ms>-<seq>"). Old entries are trimmed as new ones are appended, so the
// stream keeps a bounded age without a background job. Safe for concurrent use.
type Stream struct {
	s   *Store
	key string
}

// Stream returns the stream called name.
func (s *Store) Stream(name string) *Stream { return &Stream{s: s, key: s.prefix + "x:" + name} }

// StreamEntry is one entry of a Stream.
type StreamEntry struct {
	ID   string
	Data []byte
}

// streamField is the one field an entry holds.
const streamField = "d"

// Append adds one entry per element of data, in order and in one round trip, and trims the entries older
// than keepAfter (each trim removes only what has aged out since the last, so its cost is that of the
// entries removed). It returns the new entries' IDs. A zero keepAfter trims nothing.
func (x *Stream) Append(ctx context.Context, keepAfter time.Time, data ...[]byte) ([]string, error) {
	if len(data) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.StringCmd, len(data))
	_, err := x.s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, d := range data {
			a := &redis.XAddArgs{Stream: x.key, Values: []any{streamField, d}}
			if !keepAfter.IsZero() {
				a.MinID = strconv.FormatInt(keepAfter.UnixMilli(), 10)
			}
			cmds[i] = p.XAdd(ctx, a)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: append to stream: %w", err)
	}
	ids := make([]string, len(cmds))
	for i, c := range cmds {
		ids[i] = c.Val()
	}
	return ids, nil
}

// MinID and MaxID are the smallest and largest entry IDs, for open ranges.
const (
	MinID = "-"
	MaxID = "+"
)

// IDAt is the smallest entry ID at or after t (for a range's start), and IDBefore the largest one before t
// (for a range's end).
func IDAt(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) + "-0" }
func IDBefore(t time.Time) string {
	return strconv.FormatInt(t.UnixMilli()-1, 10) + "-18446744073709551615"
}

// ValidID reports whether id can be an entry ID ("<ms>-<seq>", both unsigned decimal numbers).
func ValidID(id string) bool {
	ms, seq, ok := strings.Cut(id, "-")
	if !ok {
		return false
	}
	_, err1 := strconv.ParseUint(ms, 10, 64)
	_, err2 := strconv.ParseUint(seq, 10, 64)
	return err1 == nil && err2 == nil
}

// Range returns up to count entries whose IDs are between start and end, inclusive (MinID, MaxID, IDAt,
// IDBefore or an entry's ID; prefix an ID with "(" to exclude it), oldest first — or, with newestFirst,
// newest first, from end down to start.
func (x *Stream) Range(ctx context.Context, start, end string, count int64, newestFirst bool) ([]StreamEntry, error) {
	var msgs []redis.XMessage
	var err error
	if newestFirst {
		msgs, err = x.s.rdb.XRevRangeN(ctx, x.key, end, start, count).Result()
	} else {
		msgs, err = x.s.rdb.XRangeN(ctx, x.key, start, end, count).Result()
	}
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: read stream: %w", err)
	}
	out := make([]StreamEntry, 0, len(msgs))
	for _, m := range msgs {
		d, _ := m.Values[streamField].(string)
		out = append(out, StreamEntry{ID: m.ID, Data: []byte(d)})
	}
	return out, nil
}

// Len is the number of entries in the stream.
func (x *Stream) Len(ctx context.Context) (int64, error) {
	n, err := x.s.rdb.XLen(ctx, x.key).Result()
	if err != nil {
		return 0, fmt.Errorf("store: stream length: %w", err)
	}
	return n, nil
}
