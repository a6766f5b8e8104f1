package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Admission is what [Table.CreateAdmitted] checks before it creates a record: one hit of a fixed-window
// counter (as [Store.Hit] counts it) that must not go past its Cap, and, when Claim is set, a one-time claim
// (as [Store.Claim] makes it) that must be this caller's. Unlike [Effects.Hits], whose change past a cap counts
// nothing, an admission is counted whether or not it is admitted: a limit on requests, refused ones too.
type Admission struct {
	Hit
	// Claim, when not "", is claimed for ClaimTTL (positive) whatever else happens, as Store.Claim would.
	Claim    string
	ClaimTTL time.Duration
}

// Admitted is the outcome of [Table.CreateAdmitted].
type Admitted struct {
	Count   int64         // the counter after this hit
	ResetIn time.Duration // the time left in its window
	// Claimed is false when Admission.Claim had been claimed before (nothing was created).
	Claimed bool
	// Created is true when the record was created: claimed (or no claim asked) and the count within Cap.
	Created bool
}

// admitCreateLua: KEYS[1] record, KEYS[2] id set, KEYS[3] counter, KEYS[4] the claim, when there is one;
// ARGV[1] value, ARGV[2] ttl ms (0 = none), ARGV[3] id, ARGV[4] record key base, ARGV[5] sweep sample, ARGV[6]
// the counter's window ms, ARGV[7] its cap, ARGV[8] the claim's ttl ms (with KEYS[4]). It counts the hit (as
// hitScript does) and makes the claim (as Claim does) whatever follows; then, when the claim was this
// caller's and the count is within the cap, it creates the record as createScript does (without indexes).
// It returns {code, count, ms left in the window}: code -1 the claim was taken before, -2 the count went past
// the cap, 0 the record existed, 1 created.
const admitCreateLua = sweepLua + putLua + hitLua + `
local c, left = hit(KEYS[3], ARGV[6])
if #KEYS == 4 and not redis.call('SET', KEYS[4], '1', 'NX', 'PX', ARGV[8]) then
  return {-1, c, left}
end
if c > tonumber(ARGV[7]) then return {-2, c, left} end
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, c, left} end
put(KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
sweep(KEYS[2], ARGV[4], tonumber(ARGV[5]))
return {1, c, left}
`

var admitCreateScript = redis.NewScript(admitCreateLua)

// CreateAdmitted counts one hit of a.Counter and makes the claim a.Claim, then creates v under id (as
// [Table.Create] without indexes) only if the claim was this caller's and the count is within a.Cap: one
// script, one round trip, where [Store.Hit], [Store.Claim] and [Table.Create] would take two. A request refused
// by the count or seen before thus stores nothing, while its hit and its claim are kept as they would have
// been. It returns ErrAlreadyExists (with the Admitted) if id exists. Only on a table that is
// [Table.InOrder]: a Cluster's script touches one slot, and the counter, the claim and the record have
// three; there count, claim and create one after the other.
//
// The script is sent once: a connection that fails after it was sent returns that error rather than a
// second hit and a claim found taken.
func (t *Table[T]) CreateAdmitted(ctx context.Context, id string, v T, ttl time.Duration, a Admission) (Admitted, error) {
	if err := a.Hit.check(); err != nil {
		return Admitted{}, t.errf("create admitted", err)
	}
	switch {
	case !t.InOrder():
		return Admitted{}, t.errf("create admitted", errors.New("needs one server and a table that is not spread"))
	case a.Claim != "" && a.ClaimTTL <= 0:
		return Admitted{}, t.errf("create admitted", fmt.Errorf("claim ttl must be positive, got %v", a.ClaimTTL))
	}
	b, err := t.encodeCreate(v, ttl, Effects{})
	if err != nil {
		return Admitted{}, err
	}
	keys := []string{t.recKey(id), t.idsKey(), t.s.counterKey(a.Counter)}
	args := []any{b, ttlMillis(ttl), id, t.recKey(""), sweepSample, a.Window.Milliseconds(), a.Cap}
	if a.Claim != "" {
		keys, args = append(keys, t.s.valueKey(a.Claim)), append(args, ttlMillis(a.ClaimTTL))
	}
	res, err := runOnce(ctx, t.s.rdb, admitCreateScript, admitCreateLua, keys, args...).Int64Slice()
	if err != nil {
		return Admitted{}, t.errf("create admitted", err)
	}
	if len(res) != 3 {
		return Admitted{}, t.errf("create admitted", fmt.Errorf("unexpected reply %v", res))
	}
	out := Admitted{Count: res[1], ResetIn: time.Duration(res[2]) * time.Millisecond, Claimed: res[0] != -1, Created: res[0] == 1}
	switch res[0] {
	case 1, -1, -2:
		return out, nil
	case 0:
		return out, t.errf("create admitted", ErrAlreadyExists)
	}
	return Admitted{}, t.errf("create admitted", fmt.Errorf("unexpected reply %v", res))
}
