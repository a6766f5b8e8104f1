package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// NewSpreadTable returns the table called name in s, laid out to spread over
// the masters of a Redis Cluster: each record has a hash slot of its own, and
// the indexes of one group share a slot. It is for tables with many records
// written at once (logins, sessions); those with few (users, applications,
// devices) keep the one slot of [NewTable], which lets them be listed whole.
//
// On a single server or Sentinel (unless [Options.Spread] is set) a spread
// table is exactly a [NewTable]: the same keys, the same single scripts.
//
// On a Cluster:
//
//   - A record's key is prefix+"{"+name+":"+id+"}:r". IDs must be random and
//     never reused: an index entry whose record is gone is dropped by the
//     next read of the index, which could otherwise drop a re-created one.
//   - An index name has the form kind:group[ rest] (the group runs from the
//     first ':' to the first ' '); the indexes of one group share the slot of
//     prefix+"{"+name+":"+group+"}", a user's indexes when the group is the
//     user's address. An index is a sorted set of ids scored by when each
//     stops counting: now plus [Effects.IndexTTL] when it is set (by
//     [Table.CreateWith] or [Table.Change]), else the record's expiry for a
//     create, never for a change.
//     Entries past their score are pruned by every write of the index and
//     ignored by reads, and reads drop entries whose record is gone; the
//     random sweep of a single server's indexes (which must see the records)
//     is not done.
//   - A write of a record and of its indexes touches two slots, so it is two
//     or three writes instead of one script, in an order that keeps every
//     index a superset of the live records it should hold. [Table.Create]
//     and [Table.Change] first add the id to the indexes of AddTo (checking
//     their caps there, atomically per group), then write the record (which
//     publishes the messages); when that write surely did not land (refused,
//     the record missing, a lost race) they take back what they added. After
//     a failure that leaves it unknown (the connection, a deadline) the
//     entries stay. A change that lands then removes the id from the
//     indexes of RemoveFrom. A failure between the writes can only leave an
//     id in an index it should have left: caps are then stricter, never
//     looser, until the entry's score passes or a read drops it; readers of
//     an index check each record's own state anyway. Each write is one round
//     trip: a change with index effects costs one or two more than on a
//     single server.
//   - [Table.List] and [Table.IDs] return ErrUnsupported: the table keeps no
//     set of all its ids.
func NewSpreadTable[T any](s *Store, name string) *Table[T] {
	t := NewTable[T](s, name)
	t.spread = s.spread
	return t
}

// Spread reports whether the table has the Cluster layout of [NewSpreadTable].
func (t *Table[T]) Spread() bool { return t.spread }

// Spread reports whether the store lays spread tables out as on a Cluster: on a Cluster, or when opened
// with [Options.Spread]. Another Store sharing its data must be opened the same way.
func (s *Store) Spread() bool { return s.spread }

// spreadRecKey is a record's key in the spread layout.
func (t *Table[T]) spreadRecKey(id string) string {
	return t.s.prefix + "{" + t.name + ":" + id + "}:r"
}

// spreadIndexKey is an index's key in the spread layout.
func (t *Table[T]) spreadIndexKey(index string) string {
	return t.s.prefix + "{" + t.name + ":" + indexGroup(index) + "}:ix:" + index
}

// indexGroup is the group of an index name kind:group[ rest].
func indexGroup(index string) string {
	_, g, ok := strings.Cut(index, ":")
	if !ok {
		return index
	}
	g, _, _ = strings.Cut(g, " ")
	return g
}

// reserveScript: KEYS the sorted-set indexes of one group; ARGV[1] the id,
// ARGV[2] how long (ms) the entries count (0: for ever), ARGV[3..] the cap
// of each index (0: none). It prunes each index of the entries whose score
// passed; if one holds its cap of other ids it returns -i (KEYS[i]) and
// writes nothing. Otherwise it adds the id to every index (an existing entry
// keeps the later score), counts one more writer holding the entry (the
// index's companion hash, key..":refs"), makes each index live at least as
// long as its new entry (when ARGV[2] is 0 its expiry is left alone, as a
// single server's index's is), and returns 1.
//
// The count is what lets a writer whose record write did not land take back
// its addition without taking another's: two writers of one record may add
// the same id at once, and the entry must stay for the one whose write
// landed. releaseScript removes the entry when no writer holds it any more;
// a writer whose write landed never releases it.
var reserveScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
for i = 1, #KEYS do
  local refs = KEYS[i] .. ':refs'
  local old = redis.call('ZRANGEBYSCORE', KEYS[i], '-inf', now)
  if #old > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
    redis.call('HDEL', refs, unpack(old))
  end
  local c = tonumber(ARGV[2 + i])
  if c > 0 and not redis.call('ZSCORE', KEYS[i], ARGV[1]) and redis.call('ZCARD', KEYS[i]) >= c then
    return -i
  end
end
for i = 1, #KEYS do
  local refs = KEYS[i] .. ':refs'
  redis.call('HINCRBY', refs, ARGV[1], 1)
  if ttl > 0 then
    redis.call('ZADD', KEYS[i], 'GT', now + ttl, ARGV[1])
    for _, k in ipairs({KEYS[i], refs}) do
      local left = redis.call('PTTL', k)
      if left ~= -1 and left < ttl then redis.call('PEXPIRE', k, ttl) end
    end
  else
    redis.call('ZADD', KEYS[i], 'GT', '+inf', ARGV[1])
    local left = redis.call('PTTL', KEYS[i])
    if left > 0 then redis.call('PEXPIRE', refs, left) end
  end
end
return 1
`)

// releaseScript: KEYS indexes; ARGV[1] the id. Each index counts one writer
// fewer holding the id's entry, and drops the entry when none is left.
var releaseScript = redis.NewScript(`
for i = 1, #KEYS do
  local refs = KEYS[i] .. ':refs'
  if redis.call('HINCRBY', refs, ARGV[1], -1) <= 0 then
    redis.call('HDEL', refs, ARGV[1])
    redis.call('ZREM', KEYS[i], ARGV[1])
  end
end
return 0
`)

// reservation is what reserve added: the id to the index keys.
type reservation struct {
	id   string
	keys []string
}

// reserve adds id to the indexes (of one group) for ttl (0: for ever), under
// caps (nil: none): an *IndexFullError names a full one, and nothing is
// added then.
func (t *Table[T]) reserve(ctx context.Context, id string, indexes []string, caps []int, ttl time.Duration) (reservation, error) {
	r := reservation{id: id}
	if len(indexes) == 0 {
		return r, nil
	}
	keys := make([]string, len(indexes))
	args := make([]any, 2, 2+len(indexes))
	args[0], args[1] = id, ttlMillis(ttl)
	for i, ix := range indexes {
		if indexGroup(ix) != indexGroup(indexes[0]) {
			return r, fmt.Errorf("indexes %q and %q are of different groups", indexes[0], ix)
		}
		keys[i] = t.spreadIndexKey(ix)
		c := 0
		if caps != nil {
			c = caps[i]
		}
		args = append(args, c)
	}
	n, err := reserveScript.Run(ctx, t.s.rdb, keys, args...).Int()
	if err != nil {
		return r, err
	}
	if i := -n - 1; i >= 0 && i < len(indexes) {
		return r, &IndexFullError{Index: indexes[i]}
	}
	if n != 1 {
		return r, fmt.Errorf("unexpected reply %d", n)
	}
	r.keys = keys
	return r, nil
}

// release takes back what r added, even when ctx has ended.
func (t *Table[T]) release(ctx context.Context, r reservation) error {
	if len(r.keys) == 0 {
		return nil
	}
	return releaseScript.Run(context.WithoutCancel(ctx), t.s.rdb, r.keys, r.id).Err()
}

// unindexScript: KEYS indexes (of one slot); ARGV[1] the id, ARGV[2] how many
// of the last KEYS the id lingers in, ARGV[3] for how long (ms). Removes the
// id's entry, and its count of writers, from each of the others; in each
// index lingered in that holds the id, its entry counts until now plus
// ARGV[3] (shorter or longer than before), and the index and its companion
// hash live at least that long.
var unindexScript = redis.NewScript(`
local nl, linger = tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 1, #KEYS - nl do
  redis.call('ZREM', KEYS[i], ARGV[1])
  redis.call('HDEL', KEYS[i] .. ':refs', ARGV[1])
end
if nl > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  for i = #KEYS - nl + 1, #KEYS do
    if redis.call('ZSCORE', KEYS[i], ARGV[1]) then
      redis.call('ZADD', KEYS[i], 'XX', now + linger, ARGV[1])
      for _, k in ipairs({KEYS[i], KEYS[i] .. ':refs'}) do
        local left = redis.call('PTTL', k)
        if left ~= -1 and left < linger then redis.call('PEXPIRE', k, linger) end
      end
    end
  end
end
return 0
`)

// unindex removes id from the indexes of remove, and has it linger in those
// of linger for lingerFor (see [Effects.Linger]): one script per group, all
// in one round trip (the Cluster client sends each to its node).
func (t *Table[T]) unindex(ctx context.Context, id string, remove, linger []string, lingerFor time.Duration) error {
	// Within a group the removals come first and the lingers last, as the script takes them.
	type group struct {
		keys    []string
		lingers int // the last keys
	}
	var groups []*group
	for _, names := range groupIndexes(slices.Concat(remove, linger)) {
		g := &group{}
		for _, ix := range names {
			g.keys = append(g.keys, t.spreadIndexKey(ix))
			if slices.Contains(linger, ix) {
				g.lingers++
			}
		}
		groups = append(groups, g)
	}
	cmds := make([]*redis.Cmd, len(groups))
	args := func(g *group) []any { return []any{id, g.lingers, lingerFor.Milliseconds()} }
	_, _ = t.s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, g := range groups {
			cmds[i] = unindexScript.EvalSha(ctx, p, g.keys, args(g)...)
		}
		return nil
	})
	for i, cmd := range cmds {
		err := cmd.Err()
		if noScript(err) { // not loaded on that server yet: it did nothing
			err = unindexScript.Run(ctx, t.s.rdb, groups[i].keys, args(groups[i])...).Err()
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// spreadCreate is CreateWith in the spread layout: the indexes of also.AddTo
// first (under their caps, the entries counting for also.IndexTTL when set,
// else as long as the record), then the record (SET NX), and the indexes
// taken back if it existed (after any other failure the record may exist:
// the entries stay until their score passes).
func (t *Table[T]) spreadCreate(ctx context.Context, id string, b []byte, ttl time.Duration, also Effects) error {
	counts := ttl
	if also.IndexTTL > 0 {
		counts = also.IndexTTL
	}
	var held []reservation
	for _, group := range groupIndexes(also.AddTo) {
		r, err := t.reserve(ctx, id, group, also.capsOf(group), counts)
		if err != nil {
			t.releaseAll(ctx, held)
			return err
		}
		held = append(held, r)
	}
	ok, err := t.s.rdb.SetNX(ctx, t.spreadRecKey(id), b, ttl).Result()
	if err == nil && !ok {
		err = ErrAlreadyExists
	}
	if errors.Is(err, ErrAlreadyExists) {
		t.releaseAll(ctx, held)
	}
	return err
}

func (t *Table[T]) releaseAll(ctx context.Context, rs []reservation) {
	for _, r := range rs {
		_ = t.release(ctx, r)
	}
}

// groupIndexes splits index names by group, keeping their order.
func groupIndexes(indexes []string) [][]string {
	var out [][]string
	at := map[string]int{}
	for _, ix := range indexes {
		g := indexGroup(ix)
		i, ok := at[g]
		if !ok {
			i = len(out)
			at[g] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], ix)
	}
	return out
}

// definite reports whether a failed change surely did not land: the record
// was missing, or lost every race. Any other failure (the connection, the
// deadline, the caller giving up) may have come after the server ran the
// write, so the index entries it added stay, counted until their score
// passes, rather than risk taking them from a record that changed.
func definite(err error) bool {
	return errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict)
}

// spreadChange is change in the spread layout: reserve the indexes of AddTo,
// compare-and-swap the record (publishing with it), release the reservation
// if the swap did not land, and leave the indexes of RemoveFrom once it did.
func (t *Table[T]) spreadChange(ctx context.Context, op, id string, seen *T, fn func(old T) (T, error), also Effects) (T, error) {
	var zero T
	r, err := t.reserve(ctx, id, also.AddTo, also.capsOf(also.AddTo), also.IndexTTL) // caps checked by change
	if err != nil {
		return zero, t.errf(op, err)
	}
	var fnErr error
	nv, err := t.change(ctx, op, id, seen, func(old T) (T, error) {
		v, err := fn(old)
		fnErr = err
		return v, err
	}, Effects{Publish: also.Publish, Announce: also.Announce})
	if err != nil {
		if fnErr != nil || definite(err) { // refused by fn (nothing sent on that attempt), or never written
			_ = t.release(ctx, r)
		}
		return zero, err
	}
	if len(also.RemoveFrom)+len(also.Linger) > 0 {
		// The record changed: an index left behind (this write failing) only keeps a stale entry, which
		// its score or the next read removes. The change is not undone for it.
		_ = t.unindex(context.WithoutCancel(ctx), id, also.RemoveFrom, also.Linger, also.LingerFor)
	}
	return nv, nil
}

// spreadLiveIDs queues, on c, the ids of index whose entries still count.
func (t *Table[T]) spreadLiveIDs(ctx context.Context, c redis.Cmdable, index string) *redis.StringSliceCmd {
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	return c.ZRangeByScore(ctx, t.spreadIndexKey(index), &redis.ZRangeBy{Min: "(" + now, Max: "+inf"})
}

// spreadLoad reads the records of ids (entries of index) in one round trip
// (the Cluster client sends each GET to its node) and drops from the index
// the ids whose record is gone.
func (t *Table[T]) spreadLoad(ctx context.Context, index string, ids []string) ([]T, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.StringCmd, len(ids))
	_, err := t.s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.Get(ctx, t.spreadRecKey(id))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := make([]T, 0, len(ids))
	var gone []string
	for i, cmd := range cmds {
		b, err := cmd.Bytes()
		if errors.Is(err, redis.Nil) {
			gone = append(gone, ids[i])
			continue
		}
		if err != nil {
			return nil, err
		}
		var v T
		if err := decodeRecord(b, &v); err != nil {
			return nil, fmt.Errorf("decode %q: %w", ids[i], err)
		}
		out = append(out, v)
	}
	if len(gone) > 0 {
		key := t.spreadIndexKey(index)
		_, err := t.s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			members := make([]any, len(gone))
			for i, id := range gone {
				members[i] = id
			}
			p.ZRem(ctx, key, members...)
			p.HDel(ctx, key+":refs", gone...)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
