package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
	s      *Store
	name   string
	base   string // prefix + "{" + name + "}:"
	spread bool   // the Cluster layout of NewSpreadTable
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

func (t *Table[T]) recKey(id string) string {
	if t.spread {
		return t.spreadRecKey(id)
	}
	return t.base + "r:" + id
}
func (t *Table[T]) idsKey() string { return t.base + "ids" }

// Ref names record id of this table, for another change's [Effects.Require].
func (t *Table[T]) Ref(id string) Ref { return Ref{key: t.recKey(id)} }
func (t *Table[T]) indexKey(index string) string {
	if t.spread {
		return t.spreadIndexKey(index)
	}
	return t.base + "ix:" + index
}

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

// putLua defines put(key, value, ms): set key to value, to expire in ms
// milliseconds (0: never).
const putLua = `
local function put(key, value, ms)
  if tonumber(ms) > 0 then
    redis.call('SET', key, value, 'PX', ms)
  else
    redis.call('SET', key, value)
  end
end
`

// indexLua defines, for the scripts that add an id to capped indexes,
// full(set, id, cap): whether set already holds cap (> 0) ids other than id;
// and extend(set, ms): make set live at least ms (> 0) more, never shorter.
const indexLua = `
local function full(set, id, cap)
  return cap > 0 and redis.call('SISMEMBER', set, id) == 0 and redis.call('SCARD', set) >= cap
end
local function extend(set, ms)
  local left = redis.call('PTTL', set)
  if left == -1 or left < ms then redis.call('PEXPIRE', set, ms) end
end
`

// createScript: KEYS[1] record, KEYS[2] id set, KEYS[3..] secondary indexes;
// ARGV[1] value, ARGV[2] ttl ms (0 = none), ARGV[3] id, ARGV[4] record key
// base, ARGV[5] sweep sample, ARGV[6] the least time (ms) an index lives on
// (0: its expiry is left alone), ARGV[7..] the cap of each index (0: none).
// It returns 0 if the record existed, and -i if index KEYS[i] holds its cap of
// other ids; nothing is written then. Otherwise it creates the record, adds
// the id to the id set and the indexes (each swept), and returns 1.
var createScript = redis.NewScript(sweepLua + indexLua + putLua + `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for i = 3, #KEYS do
  if full(KEYS[i], ARGV[3], tonumber(ARGV[4 + i])) then return -i end
end
put(KEYS[1], ARGV[1], ARGV[2])
local ixttl = tonumber(ARGV[6])
for i = 2, #KEYS do
  redis.call('SADD', KEYS[i], ARGV[3])
  sweep(KEYS[i], ARGV[4], tonumber(ARGV[5]))
  if i > 2 and ixttl > 0 then extend(KEYS[i], ixttl) end
end
return 1
`)

// putScript: like createScript but replaces an existing record.
var putScript = redis.NewScript(sweepLua + putLua + `
put(KEYS[1], ARGV[1], ARGV[2])
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

// dropStaleScript: KEYS[1] id set; ARGV[1] record key base, ARGV[2..] ids.
// Removes each id from the set only if its record is (still) missing, so a
// concurrent re-create is never dropped from the set. The record keys share
// the set's hash tag.
var dropStaleScript = redis.NewScript(`
for i = 2, #ARGV do
  if redis.call('EXISTS', ARGV[1] .. ARGV[i]) == 0 then
    redis.call('SREM', KEYS[1], ARGV[i])
  end
end
return 0
`)

// listScriptMax is the largest set listScript loads in one go. A script
// blocks the server while it runs, so larger sets are read in batches of
// listBatch instead.
const listScriptMax = 512

// listScript: KEYS[1] id set; ARGV[1] record key base, ARGV[2] listScriptMax.
// For a set of at most listScriptMax ids it returns {1, id1, value1, id2,
// value2, ...} for the live records and removes the ids whose record is gone
// (atomically, so never a re-created one). For a larger set it returns {0,
// id1, id2, ...} (the members) and the caller reads them in batches.
var listScript = redis.NewScript(`
if redis.call('SCARD', KEYS[1]) > tonumber(ARGV[2]) then
  local ids = redis.call('SMEMBERS', KEYS[1])
  table.insert(ids, 1, 0)
  return ids
end
local out = {1}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local v = redis.call('GET', ARGV[1] .. id)
  if v then
    out[#out + 1] = id
    out[#out + 1] = v
  else
    redis.call('SREM', KEYS[1], id)
  end
end
return out
`)

// Create stores v under id and, in the same script, adds id to the named
// secondary indexes (as [Table.AddToIndex] does). It returns ErrAlreadyExists
// if id exists, and then changes nothing. ttl 0 means no expiry.
func (t *Table[T]) Create(ctx context.Context, id string, v T, ttl time.Duration, indexes ...string) error {
	return t.CreateWith(ctx, id, v, ttl, Effects{AddTo: indexes})
}

// CreateWith is [Table.Create] with the index effects a [Table.Change] has
// when it adds: the id joins the indexes of also.AddTo under also.Cap or
// also.Caps (when one already holds its cap of other ids, nothing is written
// and an [*IndexFullError] names it), and each of them lives at least
// also.IndexTTL. A record that exists is left alone, its indexes too, and
// ErrAlreadyExists returned (or the IndexFullError, when an index is full as
// well: which one is not specified). Effects a create cannot have
// (RemoveFrom, Linger, Publish, Announce) are refused before anything is
// sent.
func (t *Table[T]) CreateWith(ctx context.Context, id string, v T, ttl time.Duration, also Effects) error {
	b, err := t.encodeCreate(v, ttl, also)
	if err != nil {
		return err
	}
	if t.spread {
		if err := t.spreadCreate(ctx, id, b, ttl, also); err != nil {
			return t.errf("create", err)
		}
		return nil
	}
	keys, args := t.createArgs(id, b, ttl, also)
	return t.created(createScript.Run(ctx, t.s.rdb, keys, args...), also)
}

// InOrder reports whether this table's operations queued in a [Batch] run on
// the server in the order they were queued among the batch's other
// operations: true on one server (not a Cluster) for a table whose records are
// not spread. [Table.CreateIn] needs it.
func (t *Table[T]) InOrder() bool {
	return !t.spread && !t.s.cluster
}

// CreateIn queues [Table.CreateWith] of id in b, on a table that is InOrder
// (otherwise its Result is an error and nothing is written). The server runs
// it after the operations queued before it and before those queued after,
// unless it had not loaded the create script yet: then the create runs again
// on its own once the batch has run, and its Result's value is false
// (otherwise true), so that a caller who needs the order can make up for it.
func (t *Table[T]) CreateIn(b *Batch, id string, v T, ttl time.Duration, also Effects) *Result[bool] {
	if !t.InOrder() {
		return settle(b, func() (bool, error) {
			return false, t.errf("create", errors.New("CreateIn on a table whose batches are not in order"))
		})
	}
	enc, err := t.encodeCreate(v, ttl, also)
	if err != nil {
		return settle(b, func() (bool, error) { return false, err })
	}
	keys, args := t.createArgs(id, enc, ttl, also)
	cmd := createScript.EvalSha(b.ctx, b.pipe, keys, args...)
	ctx := b.ctx
	return settle(b, func() (bool, error) {
		if noScript(cmd.Err()) {
			return false, t.created(createScript.Run(ctx, t.s.rdb, keys, args...), also)
		}
		return true, t.created(cmd, also)
	})
}

// encodeCreate checks a create's effects and ttl and encodes its record.
func (t *Table[T]) encodeCreate(v T, ttl time.Duration, also Effects) ([]byte, error) {
	if err := also.checkCreate(); err != nil {
		return nil, t.errf("create", err)
	}
	if err := checkTTL(ttl); err != nil {
		return nil, t.errf("create", err)
	}
	b, err := encodeRecord(v)
	if err != nil {
		return nil, t.errf("create", err)
	}
	return b, nil
}

// createArgs are createScript's keys and arguments for record id, encoded as b.
func (t *Table[T]) createArgs(id string, b []byte, ttl time.Duration, also Effects) ([]string, []any) {
	keys := make([]string, 2, 2+len(also.AddTo))
	keys[0], keys[1] = t.recKey(id), t.idsKey()
	args := make([]any, 6, 6+len(also.AddTo))
	args[0], args[1], args[2], args[3], args[4], args[5] = b, ttlMillis(ttl), id, t.recKey(""), sweepSample, also.IndexTTL.Milliseconds()
	for i, ix := range also.AddTo {
		keys = append(keys, t.indexKey(ix))
		args = append(args, also.capOf(i))
	}
	return keys, args
}

// created turns createScript's reply into the create's error.
func (t *Table[T]) created(cmd *redis.Cmd, also Effects) error {
	n, err := cmd.Int()
	if err != nil {
		return t.errf("create", err)
	}
	switch {
	case n == 1:
		return nil
	case n == 0:
		return t.errf("create", ErrAlreadyExists)
	}
	if i := -n - 3; i >= 0 && i < len(also.AddTo) {
		return t.errf("create", &IndexFullError{Index: also.AddTo[i]})
	}
	return t.errf("create", fmt.Errorf("unexpected reply %d", n))
}

// Put creates or replaces the record id. ttl 0 means no expiry (an existing
// expiry is removed).
func (t *Table[T]) Put(ctx context.Context, id string, v T, ttl time.Duration) error {
	if err := checkTTL(ttl); err != nil {
		return t.errf("put", err)
	}
	b, err := encodeRecord(v)
	if err != nil {
		return t.errf("put", err)
	}
	if t.spread {
		if err := t.s.rdb.Set(ctx, t.recKey(id), b, ttl).Err(); err != nil {
			return t.errf("put", err)
		}
		return nil
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
	return t.decodeGet(id, t.s.rdb.Get(ctx, t.recKey(id)))
}

// GetIn queues [Table.Get] of id in b.
func (t *Table[T]) GetIn(b *Batch, id string) *Result[T] {
	cmd := b.pipe.Get(b.ctx, t.recKey(id))
	return settle(b, func() (T, error) { return t.decodeGet(id, cmd) })
}

// decodeGet turns the reply to GET of record id into Get's result.
func (t *Table[T]) decodeGet(id string, cmd *redis.StringCmd) (T, error) {
	var v T
	b, err := cmd.Bytes()
	if errors.Is(err, redis.Nil) {
		return v, t.errf("get", ErrNotFound)
	}
	if err != nil {
		return v, t.errf("get", err)
	}
	if err := decodeRecord(b, &v); err != nil {
		return v, t.errf("get", fmt.Errorf("decode %q: %w", id, err))
	}
	return v, nil
}

// casLua: KEYS[1] record, KEYS[2..ARGV[3]+1] indexes to add the id to, the
// remaining KEYS indexes to remove it from; ARGV[1] the bytes the caller read,
// ARGV[2] the new bytes, ARGV[3] the number of indexes to add to, ARGV[4] the
// id, ARGV[5] the record key base, ARGV[6] the sweep sample, ARGV[7] the
// least time (ms) an index added to lives on (0: its expiry is left alone),
// ARGV[8..7+k] the cap of each of the k indexes added to (0: none), as for
// createScript, ARGV[8+k] the number l of indexes the id lingers in (the l
// KEYS before the required ones), ARGV[9+k] how long (ms), ARGV[10+k] the
// number r of records required to exist (the r KEYS before the counters),
// ARGV[11+k] the number h of counters to hit (the last h KEYS), then each
// one's window (ms) and cap, then channel, message pairs.
// If the record still holds exactly ARGV[1] it is replaced by ARGV[2] keeping
// its TTL (KEEPTTL, Redis >= 6.0), the indexes are changed (an index added to
// is swept as by AddToIndex; an index lingered in that holds the id alone
// expires after ARGV[9+k] ms, one that holds others too loses the id), the
// messages are published and 1 is returned. A missing
// (deleted or expired) record is never written: -1. Nor is one whose required
// record KEYS[i] is missing: -(1000+i), nor one whose counter KEYS[i] already
// holds its cap: {-(2000+i), the count, ms left in its window}; otherwise each
// counter is hit (hitLua) with the write. An index to add to that
// already holds its cap of other ids: nothing is written, and -i names it
// (KEYS[i], i >= 2). A record that holds other bytes is left alone and those
// bytes are returned (a string), so the caller retries without reading again.
const casLua = sweepLua + indexLua + hitLua + `
local cur = redis.call('GET', KEYS[1])
if not cur then return -1 end
if cur ~= ARGV[1] then return cur end
local nadd, ixttl = tonumber(ARGV[3]), tonumber(ARGV[7])
local nlinger, linger, nreq = tonumber(ARGV[8 + nadd]), tonumber(ARGV[9 + nadd]), tonumber(ARGV[10 + nadd])
local nhit = tonumber(ARGV[11 + nadd])
local last = #KEYS - nreq - nhit
for i = last + 1, last + nreq do
  if redis.call('EXISTS', KEYS[i]) == 0 then return -(1000 + i) end
end
for j = 1, nhit do
  local k = last + nreq + j
  local c = tonumber(redis.call('GET', KEYS[k]) or '0')
  if c >= tonumber(ARGV[11 + nadd + 2 * j]) then
    local left = redis.call('PTTL', KEYS[k])
    if left < 0 then -- a counter without expiry would refuse for ever: give it its window, as a hit would
      left = tonumber(ARGV[10 + nadd + 2 * j])
      redis.call('PEXPIRE', KEYS[k], left)
    end
    return {-(2000 + k), c, left}
  end
end
for i = 2, nadd + 1 do
  if full(KEYS[i], ARGV[4], tonumber(ARGV[6 + i])) then return -i end
end
redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
for i = last - nlinger + 1, last do
  if redis.call('SISMEMBER', KEYS[i], ARGV[4]) == 1 then
    if redis.call('SCARD', KEYS[i]) == 1 then
      redis.call('PEXPIRE', KEYS[i], linger)
    else
      redis.call('SREM', KEYS[i], ARGV[4])
    end
  end
end
for i = 2, last - nlinger do
  if i <= nadd + 1 then
    sweep(KEYS[i], ARGV[5], tonumber(ARGV[6]))
    redis.call('SADD', KEYS[i], ARGV[4])
    if ixttl > 0 then extend(KEYS[i], ixttl) end
  else
    redis.call('SREM', KEYS[i], ARGV[4])
  end
end
for j = 1, nhit do
  hit(KEYS[last + nreq + j], ARGV[10 + nadd + 2 * j])
end
for i = 12 + nadd + 2 * nhit, #ARGV, 2 do
  redis.call('PUBLISH', ARGV[i], ARGV[i + 1])
end
return 1
`

var casScript = redis.NewScript(casLua)

// Effects are what a [Table.Change] does besides replacing the record: in
// the same script, only when the write lands, and never on a lost race.
type Effects struct {
	// AddTo names the secondary indexes to add the record's id to (as
	// [Table.AddToIndex] does) and RemoveFrom those to remove it from.
	AddTo, RemoveFrom []string
	// Cap, when positive, bounds the indexes of AddTo: if one already holds
	// Cap other ids, nothing is written and the change fails with an
	// [*IndexFullError] naming it (errors.Is matches ErrIndexFull). Ids of
	// records that are gone count until swept, so callers that cap an index
	// of expiring records sweep it first (ListIndex drops them).
	Cap int
	// Caps, when not nil, holds one cap per index of AddTo (0: no cap), in
	// place of Cap.
	Caps []int
	// IndexTTL, when positive, makes each index of AddTo live at least that
	// long after the write (a longer expiry is kept; an index without one gets
	// it), so the index of short-lived records goes away with them instead of
	// staying behind empty.
	IndexTTL time.Duration
	// Linger names indexes the record's id stays in for LingerFor after the
	// write, counted under their caps, and then leaves (an id not in one is
	// not added). On a single server an index lingered in expires whole then,
	// so it must hold only that id: where it holds others too, the id leaves
	// at once, and an id added meanwhile (with IndexTTL) would extend the
	// linger. Meant for indexes capped at one. On a Cluster the id's own
	// entry counts until then (its score).
	Linger    []string
	LingerFor time.Duration
	// Require names records, of this table or another, that must exist for
	// the change to be written: if one is missing (deleted, or expired),
	// nothing is written and the change fails with a [*MissingError] naming
	// it (errors.Is matches ErrRequiredMissing). The check and the write are
	// one script, so a record deleted before the write is always seen; one
	// deleted after it is not. Only on one server: a table that is not
	// [Table.InOrder] refuses it (a Cluster's script touches one slot).
	Require []Ref
	// Hits are counters to hit with the write, as [Store.Hit] hits them: if
	// one already holds its Cap, nothing is written and the change fails
	// with a [*LimitError] naming it (errors.Is matches ErrLimited), and no
	// counter is hit. Only on one server, as Require.
	Hits []Hit
	// Publish lists messages to publish, as [Store.Publish] does.
	Publish []Message
	// Announce, when set, is called with the record as it is about to be
	// written (a value of the table's type) and returns more messages to
	// publish with it, after Publish's: messages that carry what changed,
	// so that subscribers need not read the record again. It may run once
	// per attempt; only the messages of the write that lands are published.
	Announce func(written any) []Message
}

// Hit is a counter an [Effects] hits, or an [Admission] counts: Counter names
// it as [Store.Hit] does, Window is its window and Cap the most hits it admits
// in one.
type Hit struct {
	Counter string
	Window  time.Duration
	Cap     int64
}

// check refuses a hit without a window of at least a millisecond (the store's
// unit) or a cap of at least one.
func (h Hit) check() error {
	if h.Window < time.Millisecond || h.Cap < 1 {
		return fmt.Errorf("hit of %q: window %v, cap %d", h.Counter, h.Window, h.Cap)
	}
	return nil
}

// check refuses effects that cannot be carried out: caps that are not one per
// index added to, a negative IndexTTL, a Linger without a LingerFor of at
// least a millisecond (the store's unit), an index both left and lingered in,
// a hit without a window of at least a millisecond or a cap of at least one.
func (e Effects) check() error {
	for _, h := range e.Hits {
		if err := h.check(); err != nil {
			return err
		}
	}
	switch {
	case e.Caps != nil && len(e.Caps) != len(e.AddTo):
		return fmt.Errorf("%d caps for %d indexes", len(e.Caps), len(e.AddTo))
	case e.IndexTTL < 0:
		return fmt.Errorf("negative index TTL %v", e.IndexTTL)
	case len(e.Linger) > 0 && e.LingerFor < time.Millisecond:
		return fmt.Errorf("linger of %v", e.LingerFor)
	case slices.ContainsFunc(e.Linger, func(ix string) bool { return slices.Contains(e.RemoveFrom, ix) }):
		return errors.New("an index both left and lingered in")
	}
	return nil
}

// checkCreate is check for [Table.CreateWith], which adds to indexes and does
// nothing else.
func (e Effects) checkCreate() error {
	if len(e.RemoveFrom)+len(e.Linger)+len(e.Publish)+len(e.Require)+len(e.Hits) > 0 || e.Announce != nil {
		return errors.New("a create only adds to indexes: no RemoveFrom, Linger, Publish, Require, Hits or Announce")
	}
	return e.check()
}

// capOf returns the cap of AddTo[i], from Caps or Cap (0: none).
func (e Effects) capOf(i int) int {
	if e.Caps != nil {
		return e.Caps[i]
	}
	return max(e.Cap, 0)
}

// capsOf returns the caps of indexes, each one of AddTo.
func (e Effects) capsOf(indexes []string) []int {
	caps := make([]int, len(indexes))
	for i, ix := range indexes {
		caps[i] = e.capOf(slices.Index(e.AddTo, ix))
	}
	return caps
}

// Message is a pub/sub message: Payload published on Channel.
type Message struct{ Channel, Payload string }

// Update atomically replaces the record with fn(old) and returns the new
// value. It is an optimistic compare-and-swap: it reads the record (one round
// trip), runs fn, and a script writes fn's result only if the record still
// holds exactly the bytes that were read (one more round trip); otherwise fn
// runs again on the current value. So fn may run more than once and must not
// have side effects. A concurrent write that leaves the very same bytes is not
// a conflict: the result is the one fn would have produced after it.
//
// The key's TTL is kept. If fn returns an error, nothing is written and that
// error is returned as is (errors.Is works). It returns ErrNotFound if the
// record is absent, or is deleted or expires before the write lands (a record
// is never resurrected), and ErrConflict after maxUpdateAttempts lost races.
//
// The write is sent once: if the connection fails after the script was sent,
// Update returns that error rather than letting the client resend the script
// (which could apply fn twice), so the record may or may not have been
// updated then.
func (t *Table[T]) Update(ctx context.Context, id string, fn func(old T) (T, error)) (T, error) {
	return t.change(ctx, "update", id, nil, fn, Effects{})
}

// UpdateAndPublish is [Table.Update] that also announces the change: when the
// write lands, the same script publishes msg on channel (as [Store.Publish]
// does, so [Store.Subscribe] on channel receives it), atomically with the
// write and in the same round trip. Exactly one message is published per
// successful call; none when fn fails, the record is missing, or an error is
// returned before the write. Pub/sub is fire-and-forget as with Publish.
func (t *Table[T]) UpdateAndPublish(ctx context.Context, id string, fn func(old T) (T, error), channel, msg string) (T, error) {
	return t.change(ctx, "update and publish", id, nil, fn, Effects{Publish: []Message{{channel, msg}}})
}

// Change is [Table.Update] with a starting point and effects. When seen is
// not nil it is the record as the caller last read it: fn runs on it and the
// first compare-and-swap expects it, so a record nobody changed since costs
// one round trip instead of two (one that changed costs one more, as a lost
// race does). An error fn returns for seen is returned only once the record
// is read and found unchanged; otherwise fn runs on the record as it is. The effects happen in the same script as the write, atomically
// with it and only if it lands; a write that lands on a lost race's retry
// carries them once.
func (t *Table[T]) Change(ctx context.Context, id string, seen *T, fn func(old T) (T, error), also Effects) (T, error) {
	return t.change(ctx, "change", id, seen, fn, also)
}

// change implements Update, UpdateAndPublish and Change.
func (t *Table[T]) change(ctx context.Context, op, id string, seen *T, fn func(old T) (T, error), also Effects) (T, error) {
	var zero T
	if err := also.check(); err != nil { // before anything is read
		return zero, t.errf(op, err)
	}
	if len(also.Require)+len(also.Hits) > 0 && !t.InOrder() {
		return zero, t.errf(op, errors.New("a required record or a hit needs one server and a table that is not spread"))
	}
	if t.spread && len(also.AddTo)+len(also.RemoveFrom)+len(also.Linger) > 0 {
		return t.spreadChange(ctx, op, id, seen, fn, also)
	}
	key := t.recKey(id)
	var b []byte
	var err error
	if seen != nil {
		b, err = encodeRecord(*seen)
	} else {
		b, err = t.s.rdb.Get(ctx, key).Bytes()
	}
	if errors.Is(err, redis.Nil) {
		return zero, t.errf(op, ErrNotFound)
	}
	if err != nil {
		return zero, t.errf(op, err)
	}
	keys := make([]string, 0, 1+len(also.AddTo)+len(also.RemoveFrom)+len(also.Linger)+len(also.Require)+len(also.Hits))
	keys = append(keys, key)
	for _, ix := range slices.Concat(also.AddTo, also.RemoveFrom, also.Linger) {
		keys = append(keys, t.indexKey(ix))
	}
	required := len(keys) // KEYS[required+1...] are the required records
	for _, r := range also.Require {
		keys = append(keys, r.key)
	}
	counted := len(keys) // KEYS[counted+1...] are the counters hit
	for _, h := range also.Hits {
		keys = append(keys, t.s.counterKey(h.Counter))
	}
	args := make([]any, 7, 11+len(also.AddTo)+2*len(also.Hits)+2*len(also.Publish)+4)
	args[2], args[3], args[4], args[5], args[6] = len(also.AddTo), id, t.recKey(""), sweepSample, also.IndexTTL.Milliseconds()
	for i := range also.AddTo {
		args = append(args, also.capOf(i))
	}
	args = append(args, len(also.Linger), also.LingerFor.Milliseconds(), len(also.Require), len(also.Hits))
	for _, h := range also.Hits {
		args = append(args, h.Window.Milliseconds(), h.Cap)
	}
	for _, m := range also.Publish {
		args = append(args, t.s.channelName(m.Channel), m.Payload)
	}
	fixed := len(args)        // the arguments of every attempt; Announce's messages follow
	fromServer := seen == nil // b is what the server holds, not the caller's copy
	for range maxUpdateAttempts {
		var old T
		if err := decodeRecord(b, &old); err != nil {
			return zero, t.errf(op, fmt.Errorf("decode %q: %w", id, err))
		}
		nv, err := fn(old)
		if err != nil && !fromServer {
			// fn refused the caller's copy, which may be stale: it must refuse the record as it is.
			cur, gerr := t.s.rdb.Get(ctx, key).Bytes()
			if errors.Is(gerr, redis.Nil) {
				return zero, t.errf(op, ErrNotFound)
			}
			if gerr != nil {
				return zero, t.errf(op, gerr)
			}
			fromServer = true
			if string(cur) != string(b) {
				b = cur
				continue
			}
		}
		if err != nil {
			return zero, err
		}
		nb, err := encodeRecord(nv)
		if err != nil {
			return zero, t.errf(op, err)
		}
		args[0], args[1] = b, nb
		if also.Announce != nil {
			args = args[:fixed]
			for _, m := range also.Announce(nv) {
				args = append(args, t.s.channelName(m.Channel), m.Payload)
			}
		}
		res, err := runOnce(ctx, t.s.rdb, casScript, casLua, keys, args...).Result()
		if err != nil {
			return zero, t.errf(op, err)
		}
		switch r := res.(type) {
		case int64:
			switch r {
			case 1:
				return nv, nil
			case -1:
				return zero, t.errf(op, ErrNotFound)
			}
			if i := int(-r) - 2; i >= 0 && i < len(also.AddTo) {
				return zero, t.errf(op, &IndexFullError{Index: also.AddTo[i]})
			}
			if i := int(-r) - 1000 - 1 - required; i >= 0 && i < len(also.Require) {
				return zero, t.errf(op, &MissingError{Record: also.Require[i].key})
			}
		case []any: // a counter at its cap: {-(2000+i), count, ms left}
			if len(r) == 3 {
				code, _ := r[0].(int64)
				n, _ := r[1].(int64)
				left, _ := r[2].(int64)
				if i := int(-code) - 2000 - 1 - counted; i >= 0 && i < len(also.Hits) {
					return zero, t.errf(op, &LimitError{Counter: also.Hits[i].Counter, Count: n, ResetIn: time.Duration(left) * time.Millisecond})
				}
			}
		case string: // lost the race: r is the current value
			if err := ctx.Err(); err != nil {
				return zero, t.errf(op, err)
			}
			b, fromServer = []byte(r), true
			continue
		}
		return zero, t.errf(op, fmt.Errorf("unexpected reply %v", res))
	}
	return zero, t.errf(op, ErrConflict)
}

// onceCmd is a command the client must not resend by itself after a network
// error, because the first send may have been executed (go-redis consults
// Cmder.NoRetry before each retry, for single servers and Cluster alike).
type onceCmd struct{ *redis.Cmd }

// NoRetry tells go-redis not to resend the command.
func (onceCmd) NoRetry() bool { return true }

// runOnce runs a script like [redis.Script.Run] (EVALSHA, then EVAL when the
// server does not have it cached: that EVALSHA did nothing) but never lets
// the client resend a script that may have run. src is the script's source.
func runOnce(ctx context.Context, c redis.UniversalClient, s *redis.Script, src string, keys []string, args ...any) *redis.Cmd {
	cmd := evalCmd(ctx, "evalsha", s.Hash(), keys, args)
	_ = c.Process(ctx, onceCmd{cmd})
	if noScript(cmd.Err()) {
		cmd = evalCmd(ctx, "eval", src, keys, args)
		_ = c.Process(ctx, onceCmd{cmd})
	}
	return cmd
}

// evalCmd builds an EVAL or EVALSHA command (name) of payload.
func evalCmd(ctx context.Context, name, payload string, keys []string, args []any) *redis.Cmd {
	a := make([]any, 0, 3+len(keys)+len(args))
	a = append(a, name, payload, len(keys))
	for _, k := range keys {
		a = append(a, k)
	}
	a = append(a, args...)
	cmd := redis.NewCmd(ctx, a...)
	if len(keys) > 0 {
		cmd.SetFirstKeyPos(3) // Cluster routes by KEYS[1]
	}
	return cmd
}

// Delete removes the record id (and its id from the table's id set; secondary
// indexes are cleaned lazily by ListIndex). ErrNotFound if absent.
func (t *Table[T]) Delete(ctx context.Context, id string) error {
	var del *redis.IntCmd
	_, err := t.s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		del = p.Del(ctx, t.recKey(id))
		if !t.spread {
			p.SRem(ctx, t.idsKey(), id)
		}
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
		if !t.spread {
			p.SRem(ctx, t.idsKey(), id)
		}
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
	if err := decodeRecord(b, &v); err != nil {
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
	if t.spread {
		return nil, t.errf("list", ErrUnsupported)
	}
	vs, err := t.listSet(ctx, t.idsKey())
	if err != nil {
		return nil, t.errf("list", err)
	}
	return vs, nil
}

// MemoryUsage returns the bytes the server spends on the record id (Redis's
// MEMORY USAGE: value, key and overhead), for sizing: ErrNotFound when it is
// absent, ErrUnsupported where the server cannot tell (the embedded store).
func (t *Table[T]) MemoryUsage(ctx context.Context, id string) (int64, error) {
	if t.s.mini != nil {
		return 0, t.errf("memory usage", ErrUnsupported)
	}
	n, err := t.s.rdb.MemoryUsage(ctx, t.recKey(id), 0).Result()
	if errors.Is(err, redis.Nil) {
		return 0, t.errf("memory usage", ErrNotFound)
	}
	if err != nil {
		return 0, t.errf("memory usage", err)
	}
	return n, nil
}

// IDs returns the ids currently in the table's id set, without checking that
// their records are live (see List). Order unspecified.
func (t *Table[T]) IDs(ctx context.Context) ([]string, error) {
	if t.spread {
		return nil, t.errf("ids", ErrUnsupported)
	}
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
	if t.spread {
		if _, err := t.reserve(ctx, id, []string{index}, nil, 0); err != nil {
			return t.errf("add to index", err)
		}
		return nil
	}
	err := addIndexScript.Run(ctx, t.s.rdb, []string{t.indexKey(index)}, id, t.recKey(""), sweepSample).Err()
	if err != nil {
		return t.errf("add to index", err)
	}
	return nil
}

// RemoveFromIndex removes id from the named index; removing an absent id is
// not an error.
func (t *Table[T]) RemoveFromIndex(ctx context.Context, index, id string) error {
	var err error
	if t.spread {
		err = t.unindex(ctx, id, []string{index}, nil, 0)
	} else {
		err = t.s.rdb.SRem(ctx, t.indexKey(index), id).Err()
	}
	if err != nil {
		return t.errf("remove from index", err)
	}
	return nil
}

// RemoveFromIndexes removes id from each of the named indexes, in one round
// trip; removing an absent id is not an error.
func (t *Table[T]) RemoveFromIndexes(ctx context.Context, id string, indexes ...string) error {
	if len(indexes) == 0 {
		return nil
	}
	if t.spread {
		if err := t.unindex(ctx, id, indexes, nil, 0); err != nil {
			return t.errf("remove from indexes", err)
		}
		return nil
	}
	_, err := t.s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, ix := range indexes {
			p.SRem(ctx, t.indexKey(ix), id)
		}
		return nil
	})
	if err != nil {
		return t.errf("remove from indexes", err)
	}
	return nil
}

// ListIndex returns the live records whose ids are in the named index (order
// unspecified) and drops from the index the ids of missing records.
func (t *Table[T]) ListIndex(ctx context.Context, index string) ([]T, error) {
	if t.spread {
		ids, err := t.spreadLiveIDs(ctx, t.s.rdb, index).Result()
		if err == nil {
			var vs []T
			if vs, err = t.spreadLoad(ctx, index, ids); err == nil {
				return vs, nil
			}
		}
		return nil, t.errf("list index", err)
	}
	vs, err := t.listSet(ctx, t.indexKey(index))
	if err != nil {
		return nil, t.errf("list index", err)
	}
	return vs, nil
}

// ListIndexIn queues [Table.ListIndex] of index in b. An index of more than
// 512 ids takes more round trips when b runs, as ListIndex does.
func (t *Table[T]) ListIndexIn(b *Batch, index string) *Result[[]T] {
	if t.spread { // the records are read once the ids are known: one more round trip
		ids, ctx := t.spreadLiveIDs(b.ctx, b.pipe, index), b.ctx
		return settle(b, func() ([]T, error) {
			vs, err := t.spreadLoad(ctx, index, ids.Val())
			if err == nil {
				err = ids.Err()
			}
			if err != nil {
				return nil, t.errf("list index", err)
			}
			return vs, nil
		})
	}
	setKey := t.indexKey(index)
	cmd := listScript.EvalSha(b.ctx, b.pipe, []string{setKey}, t.recKey(""), listScriptMax)
	ctx := b.ctx
	return settle(b, func() ([]T, error) {
		var vs []T
		var err error
		if noScript(cmd.Err()) {
			vs, err = t.listSet(ctx, setKey)
		} else {
			vs, err = t.decodeList(ctx, setKey, cmd)
		}
		if err != nil {
			return nil, t.errf("list index", err)
		}
		return vs, nil
	})
}

// IndexIDs returns the ids currently in the named index, without checking that
// their records are live (see ListIndex). Order unspecified.
func (t *Table[T]) IndexIDs(ctx context.Context, index string) ([]string, error) {
	var ids []string
	var err error
	if t.spread {
		ids, err = t.spreadLiveIDs(ctx, t.s.rdb, index).Result()
	} else {
		ids, err = t.s.rdb.SMembers(ctx, t.indexKey(index)).Result()
	}
	if err != nil {
		return nil, t.errf("index ids", err)
	}
	return ids, nil
}

// listSet loads the records whose ids are members of setKey, dropping stale
// ids: one round trip (listScript) for a set of up to listScriptMax ids, else
// one more per listBatch ids (MGET) and per batch holding stale ids.
func (t *Table[T]) listSet(ctx context.Context, setKey string) ([]T, error) {
	return t.decodeList(ctx, setKey, listScript.Run(ctx, t.s.rdb, []string{setKey}, t.recKey(""), listScriptMax))
}

// decodeList turns listScript's reply for setKey into the records, reading
// them in batches when the set was too large for the script.
func (t *Table[T]) decodeList(ctx context.Context, setKey string, cmd *redis.Cmd) ([]T, error) {
	reply, err := cmd.Slice()
	if err != nil {
		return nil, err
	}
	if len(reply) == 0 {
		return nil, errors.New("unexpected empty reply")
	}
	loaded, ok := reply[0].(int64)
	if !ok {
		return nil, fmt.Errorf("unexpected reply head %T", reply[0])
	}
	strs := make([]string, len(reply)-1)
	for i, r := range reply[1:] {
		s, ok := r.(string)
		if !ok {
			return nil, fmt.Errorf("unexpected reply element %T", r)
		}
		strs[i] = s
	}
	if loaded == 1 {
		out := make([]T, 0, len(strs)/2)
		for i := 0; i+1 < len(strs); i += 2 {
			var v T
			if err := decodeRecord([]byte(strs[i+1]), &v); err != nil {
				return nil, fmt.Errorf("decode %q: %w", strs[i], err)
			}
			out = append(out, v)
		}
		return out, nil
	}
	return t.listBatched(ctx, setKey, strs)
}

// listBatched loads the records of ids (members of setKey) listBatch at a
// time and drops from setKey the ids whose record is missing.
func (t *Table[T]) listBatched(ctx context.Context, setKey string, ids []string) ([]T, error) {
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
		stale := []any{t.recKey("")}
		for i, raw := range vals {
			str, ok := raw.(string)
			if !ok { // nil: expired or deleted
				stale = append(stale, chunk[i])
				continue
			}
			var v T
			if err := decodeRecord([]byte(str), &v); err != nil {
				return nil, fmt.Errorf("decode %q: %w", chunk[i], err)
			}
			out = append(out, v)
		}
		if len(stale) > 1 {
			if err := dropStaleScript.Run(ctx, t.s.rdb, []string{setKey}, stale...).Err(); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}
