package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// maxUpdateAttempts bounds the optimistic retries of [Table.Update]. Every
// failed attempt means another writer succeeded, so reaching it needs that
// many concurrent writers on one record.
const maxUpdateAttempts = 1000

// listBatch is the number of records fetched per MGET by List/ListIndex.
const listBatch = 256

// Table is a namespace of JSON-encoded records of type T keyed by id. Safe for
// concurrent use.
//
// Keys: prefix+"{name}:r:"+id holds a record, prefix+"{name}:ids" the set of
// ids of the table, prefix+"{name}:ix:"+index a secondary index. The hash tag
// {name} keeps them in one Cluster slot, so each script and MULTI/EXEC below
// touches a single slot.
type Table[T any] struct {
	s    *Store
	name string
	base string // prefix + "{" + name + "}:"
}

// NewTable returns the table called name in s. The name must be non-empty and
// must not contain '{' or '}' (it is a Redis Cluster hash tag); NewTable panics
// otherwise, as that is a programming error.
func NewTable[T any](s *Store, name string) *Table[T] {
	if name == "" || strings.ContainsAny(name, "{}") {
		panic(fmt.Sprintf("store: invalid table name %q", name))
	}
	return &Table[T]{s: s, name: name, base: s.prefix + "{" + name + "}:"}
}

// Name returns the table's name.
func (t *Table[T]) Name() string { return t.name }

func (t *Table[T]) recKey(id string) string      { return t.base + "r:" + id }
func (t *Table[T]) idsKey() string               { return t.base + "ids" }
func (t *Table[T]) indexKey(index string) string { return t.base + "ix:" + index }

func (t *Table[T]) errf(op string, err error) error {
	return fmt.Errorf("store: %s %s: %w", t.name, op, err)
}

// sweepLua defines sweep(set, base, n): check n random ids of set and drop
// those whose record (base..id) is gone. Run on every write that adds an id,
// it keeps a set of expiring records bounded (about 1.5x the live records with
// n=3) even if nobody ever lists it. The record keys are built in the script;
// they share the set's hash tag, hence its Cluster slot.
const sweepLua = `
local function sweep(set, base, n)
  local ids = redis.call('SRANDMEMBER', set, n)
  for _, id in ipairs(ids) do
    if redis.call('EXISTS', base .. id) == 0 then
      redis.call('SREM', set, id)
    end
  end
end
`

// sweepSample is the n passed to sweep.
const sweepSample = 3

// createScript: KEYS[1] record, KEYS[2] id set; ARGV[1] value, ARGV[2] ttl ms
// (0 = none), ARGV[3] id, ARGV[4] record key base, ARGV[5] sweep sample.
// Returns 1 if created, 0 if the record existed.
var createScript = redis.NewScript(sweepLua + `
local ok
if tonumber(ARGV[2]) > 0 then
  ok = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
else
  ok = redis.call('SET', KEYS[1], ARGV[1], 'NX')
end
if not ok then return 0 end
redis.call('SADD', KEYS[2], ARGV[3])
sweep(KEYS[2], ARGV[4], tonumber(ARGV[5]))
return 1
`)

// putScript: like createScript but replaces an existing record.
var putScript = redis.NewScript(sweepLua + `
if tonumber(ARGV[2]) > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('SADD', KEYS[2], ARGV[3])
sweep(KEYS[2], ARGV[4], tonumber(ARGV[5]))
return 1
`)

// addIndexScript: KEYS[1] index set; ARGV[1] id, ARGV[2] record key base,
// ARGV[3] sweep sample. The new id itself is never swept.
var addIndexScript = redis.NewScript(sweepLua + `
redis.call('SREM', KEYS[1], ARGV[1])
sweep(KEYS[1], ARGV[2], tonumber(ARGV[3]))
return redis.call('SADD', KEYS[1], ARGV[1])
`)

// dropStaleScript: KEYS[1] id set, KEYS[2] record; ARGV[1] id. Removes the id
// from the set only if the record is (still) missing, so a concurrent
// re-create is never dropped from the index.
var dropStaleScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 0 then
  return redis.call('SREM', KEYS[1], ARGV[1])
end
return 0
`)

// Create stores v under id. It returns ErrAlreadyExists if id exists. ttl 0
// means no expiry.
func (t *Table[T]) Create(ctx context.Context, id string, v T, ttl time.Duration) error {
	if err := checkTTL(ttl); err != nil {
		return t.errf("create", err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return t.errf("create", err)
	}
	n, err := createScript.Run(ctx, t.s.rdb, []string{t.recKey(id), t.idsKey()},
		b, ttlMillis(ttl), id, t.recKey(""), sweepSample).Int()
	if err != nil {
		return t.errf("create", err)
	}
	if n == 0 {
		return t.errf("create", ErrAlreadyExists)
	}
	return nil
}

// Put creates or replaces the record id. ttl 0 means no expiry (an existing
// expiry is removed).
func (t *Table[T]) Put(ctx context.Context, id string, v T, ttl time.Duration) error {
	if err := checkTTL(ttl); err != nil {
		return t.errf("put", err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return t.errf("put", err)
	}
	err = putScript.Run(ctx, t.s.rdb, []string{t.recKey(id), t.idsKey()},
		b, ttlMillis(ttl), id, t.recKey(""), sweepSample).Err()
	if err != nil {
		return t.errf("put", err)
	}
	return nil
}

// Get returns the record id, or ErrNotFound.
func (t *Table[T]) Get(ctx context.Context, id string) (T, error) {
	var v T
	b, err := t.s.rdb.Get(ctx, t.recKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return v, t.errf("get", ErrNotFound)
	}
	if err != nil {
		return v, t.errf("get", err)
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, t.errf("get", fmt.Errorf("decode %q: %w", id, err))
	}
	return v, nil
}

// Update atomically replaces the record with fn(old) (optimistic WATCH/MULTI,
// retried on conflict; fn may run more than once and must not have side
// effects). The key's TTL is kept. If fn returns an error, nothing is written
// and that error is returned as is (errors.Is works). It returns ErrNotFound
// if the record is absent (or expires before the write lands), and
// ErrConflict after maxUpdateAttempts lost races.
func (t *Table[T]) Update(ctx context.Context, id string, fn func(old T) (T, error)) (T, error) {
	key := t.recKey(id)
	var out T
	var fnErr error
	tx := func(tx *redis.Tx) error {
		b, err := tx.Get(ctx, key).Bytes()
		if errors.Is(err, redis.Nil) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		var old T
		if err := json.Unmarshal(b, &old); err != nil {
			return fmt.Errorf("decode %q: %w", id, err)
		}
		nv, err := fn(old)
		if err != nil {
			fnErr = err
			return err
		}
		nb, err := json.Marshal(nv)
		if err != nil {
			return err
		}
		var set *redis.StatusCmd
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			// XX: never resurrect a record that expired meanwhile; KEEPTTL keeps its expiry.
			set = p.SetArgs(ctx, key, nb, redis.SetArgs{Mode: "XX", KeepTTL: true})
			return nil
		})
		if errors.Is(err, redis.Nil) || (err == nil && set.Val() != "OK") {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		out = nv
		return nil
	}
	for range maxUpdateAttempts {
		fnErr = nil
		err := t.s.rdb.Watch(ctx, tx, key)
		switch {
		case err == nil:
			return out, nil
		case fnErr != nil:
			return out, fnErr
		case errors.Is(err, redis.TxFailedErr):
			if ctx.Err() != nil {
				return out, t.errf("update", ctx.Err())
			}
			continue
		default:
			return out, t.errf("update", err)
		}
	}
	return out, t.errf("update", ErrConflict)
}

// Delete removes the record id (and its id from the table's id set; secondary
// indexes are cleaned lazily by ListIndex). ErrNotFound if absent.
func (t *Table[T]) Delete(ctx context.Context, id string) error {
	var del *redis.IntCmd
	_, err := t.s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		del = p.Del(ctx, t.recKey(id))
		p.SRem(ctx, t.idsKey(), id)
		return nil
	})
	if err != nil {
		return t.errf("delete", err)
	}
	if del.Val() == 0 {
		return t.errf("delete", ErrNotFound)
	}
	return nil
}

// Take atomically gets and deletes the record id (GETDEL): of concurrent
// callers exactly one gets the value, the others ErrNotFound. Like Delete, it
// drops the id from the table's id set; secondary indexes are cleaned lazily.
func (t *Table[T]) Take(ctx context.Context, id string) (T, error) {
	var v T
	var get *redis.StringCmd
	_, err := t.s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		get = p.GetDel(ctx, t.recKey(id))
		p.SRem(ctx, t.idsKey(), id)
		return nil
	})
	if errors.Is(err, redis.Nil) {
		return v, t.errf("take", ErrNotFound)
	}
	if err != nil {
		return v, t.errf("take", err)
	}
	b, err := get.Bytes()
	if errors.Is(err, redis.Nil) {
		return v, t.errf("take", ErrNotFound)
	}
	if err != nil {
		return v, t.errf("take", err)
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, t.errf("take", fmt.Errorf("decode %q: %w", id, err))
	}
	return v, nil
}

// TTL returns the time the record id has left; 0 means it never expires.
// ErrNotFound if absent.
func (t *Table[T]) TTL(ctx context.Context, id string) (time.Duration, error) {
	d, err := pttl(ctx, t.s.rdb, t.recKey(id))
	if err != nil {
		return 0, t.errf("ttl", err)
	}
	return d, nil
}

// pttl maps PTTL's -2 (missing) to ErrNotFound and -1 (persistent) to 0.
func pttl(ctx context.Context, c redis.UniversalClient, key string) (time.Duration, error) {
	ms, err := c.Do(ctx, "PTTL", key).Int64()
	if err != nil {
		return 0, err
	}
	switch {
	case ms == -2:
		return 0, ErrNotFound
	case ms < 0:
		return 0, nil
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// List returns every live record (order unspecified). Ids of records that
// expired or vanished are dropped from the table's id set.
func (t *Table[T]) List(ctx context.Context) ([]T, error) {
	vs, err := t.listSet(ctx, t.idsKey())
	if err != nil {
		return nil, t.errf("list", err)
	}
	return vs, nil
}

// IDs returns the ids currently in the table's id set, without checking that
// their records are live (see List). Order unspecified.
func (t *Table[T]) IDs(ctx context.Context) ([]string, error) {
	ids, err := t.s.rdb.SMembers(ctx, t.idsKey()).Result()
	if err != nil {
		return nil, t.errf("ids", err)
	}
	return ids, nil
}

// AddToIndex adds id to the named secondary index (e.g. a user's devices).
// Add ids of records that exist: ListIndex and later AddToIndex calls drop ids
// whose record is gone (expired or deleted), which keeps indexes of expiring
// records bounded.
func (t *Table[T]) AddToIndex(ctx context.Context, index, id string) error {
	err := addIndexScript.Run(ctx, t.s.rdb, []string{t.indexKey(index)}, id, t.recKey(""), sweepSample).Err()
	if err != nil {
		return t.errf("add to index", err)
	}
	return nil
}

// RemoveFromIndex removes id from the named index; removing an absent id is
// not an error.
func (t *Table[T]) RemoveFromIndex(ctx context.Context, index, id string) error {
	if err := t.s.rdb.SRem(ctx, t.indexKey(index), id).Err(); err != nil {
		return t.errf("remove from index", err)
	}
	return nil
}

// ListIndex returns the live records whose ids are in the named index (order
// unspecified) and drops from the index the ids of missing records.
func (t *Table[T]) ListIndex(ctx context.Context, index string) ([]T, error) {
	vs, err := t.listSet(ctx, t.indexKey(index))
	if err != nil {
		return nil, t.errf("list index", err)
	}
	return vs, nil
}

// IndexIDs returns the ids currently in the named index, without checking that
// their records are live (see ListIndex). Order unspecified.
func (t *Table[T]) IndexIDs(ctx context.Context, index string) ([]string, error) {
	ids, err := t.s.rdb.SMembers(ctx, t.indexKey(index)).Result()
	if err != nil {
		return nil, t.errf("index ids", err)
	}
	return ids, nil
}

// listSet loads the records whose ids are members of setKey, dropping stale ids.
func (t *Table[T]) listSet(ctx context.Context, setKey string) ([]T, error) {
	ids, err := t.s.rdb.SMembers(ctx, setKey).Result()
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(ids))
	for len(ids) > 0 {
		n := min(len(ids), listBatch)
		chunk := ids[:n]
		ids = ids[n:]
		keys := make([]string, len(chunk))
		for i, id := range chunk {
			keys[i] = t.recKey(id)
		}
		vals, err := t.s.rdb.MGet(ctx, keys...).Result()
		if err != nil {
			return nil, err
		}
		for i, raw := range vals {
			str, ok := raw.(string)
			if !ok { // nil: expired or deleted
				if err := dropStaleScript.Run(ctx, t.s.rdb, []string{setKey, keys[i]}, chunk[i]).Err(); err != nil {
					return nil, err
				}
				continue
			}
			var v T
			if err := json.Unmarshal([]byte(str), &v); err != nil {
				return nil, fmt.Errorf("decode %q: %w", chunk[i], err)
			}
			out = append(out, v)
		}
	}
	return out, nil
}
