package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Small values live under prefix+"v:"+key, rate-limit counters under
// prefix+"c:"+key. Every script here touches one key.

func (s *Store) valueKey(key string) string   { return s.prefix + "v:" + key }
func (s *Store) counterKey(key string) string { return s.prefix + "c:" + key }

// Claim marks key as used (SET NX) and reports whether this caller was the
// first: of any number of concurrent callers exactly one gets true until the
// claim expires. ttl 0 means the claim never expires. Use it for one-time
// values (an AuthnRequest ID, an assertion ID, a nonce).
func (s *Store) Claim(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	ok, err := s.setNX(ctx, key, "1", ttl)
	if err != nil {
		return false, fmt.Errorf("store: claim: %w", err)
	}
	return ok, nil
}

// ClaimIn queues [Store.Claim] of key in b.
func (s *Store) ClaimIn(b *Batch, key string, ttl time.Duration) *Result[bool] {
	if err := checkTTL(ttl); err != nil {
		return settle(b, func() (bool, error) { return false, fmt.Errorf("store: claim: %w", err) })
	}
	cmd := b.pipe.SetArgs(b.ctx, s.valueKey(key), "1", redis.SetArgs{Mode: "NX", TTL: ttl})
	return settle(b, func() (bool, error) {
		res, err := cmd.Result()
		if errors.Is(err, redis.Nil) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("store: claim: %w", err)
		}
		return res == "OK", nil
	})
}

// SetIfAbsent stores value under key only if key is absent (SET NX) and
// reports whether it did. ttl 0 means no expiry.
func (s *Store) SetIfAbsent(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	ok, err := s.setNX(ctx, key, value, ttl)
	if err != nil {
		return false, fmt.Errorf("store: set if absent: %w", err)
	}
	return ok, nil
}

func (s *Store) setNX(ctx context.Context, key, value string, ttl time.Duration) (bool, error) {
	if err := checkTTL(ttl); err != nil {
		return false, err
	}
	res, err := s.rdb.SetArgs(ctx, s.valueKey(key), value, redis.SetArgs{Mode: "NX", TTL: ttl}).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return res == "OK", nil
}

// GetValue returns the value stored under key, or ErrNotFound.
func (s *Store) GetValue(ctx context.Context, key string) (string, error) {
	return decodeValue(s.rdb.Get(ctx, s.valueKey(key)))
}

// GetValueIn queues [Store.GetValue] of key in b.
func (s *Store) GetValueIn(b *Batch, key string) *Result[string] {
	cmd := b.pipe.Get(b.ctx, s.valueKey(key))
	return settle(b, func() (string, error) { return decodeValue(cmd) })
}

func decodeValue(cmd *redis.StringCmd) (string, error) {
	v, err := cmd.Result()
	if errors.Is(err, redis.Nil) {
		return "", fmt.Errorf("store: get value: %w", ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("store: get value: %w", err)
	}
	return v, nil
}

// SetValue stores value under key, replacing any previous value and expiry.
// ttl 0 means no expiry.
func (s *Store) SetValue(ctx context.Context, key, value string, ttl time.Duration) error {
	if err := checkTTL(ttl); err != nil {
		return fmt.Errorf("store: set value: %w", err)
	}
	if err := s.rdb.Set(ctx, s.valueKey(key), value, ttl).Err(); err != nil {
		return fmt.Errorf("store: set value: %w", err)
	}
	return nil
}

// deleteIfScript: KEYS[1] key; ARGV[1] expected value.
var deleteIfScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// DeleteValueIf atomically deletes key only if it holds expected
// (compare-and-delete) and reports whether it did.
func (s *Store) DeleteValueIf(ctx context.Context, key, expected string) (bool, error) {
	n, err := deleteIfScript.Run(ctx, s.rdb, []string{s.valueKey(key)}, expected).Int()
	if err != nil {
		return false, fmt.Errorf("store: delete value if: %w", err)
	}
	return n == 1, nil
}

// DeleteValue deletes key. Deleting an absent key is not an error.
func (s *Store) DeleteValue(ctx context.Context, key string) error {
	if err := s.rdb.Del(ctx, s.valueKey(key)).Err(); err != nil {
		return fmt.Errorf("store: delete value: %w", err)
	}
	return nil
}

// hitLua defines hit(key, ms): increment counter key, set its expiry to ms on
// the first hit only (a fixed window; a counter found without one gets it),
// and return the count and the milliseconds left in the window. Every script
// that counts a hit (hitScript, a create's admission, a change's Effects.Hits)
// counts it so.
const hitLua = `
local function hit(key, ms)
  local c = redis.call('INCR', key)
  local left = redis.call('PTTL', key)
  if c == 1 or left < 0 then
    redis.call('PEXPIRE', key, ms)
    left = tonumber(ms)
  end
  return c, left
end
`

// hitScript: KEYS counters (one, or several sharing a hash slot); ARGV[1]
// window ms. Hits each, returns {count1, pttl1, count2, pttl2, ...}.
var hitScript = redis.NewScript(hitLua + `
local out = {}
for i = 1, #KEYS do
  local c, left = hit(KEYS[i], ARGV[1])
  out[#out + 1] = c
  out[#out + 1] = left
end
return out
`)

// Hit increments key's counter for a fixed-window rate limit: the window
// starts at the first hit (the expiry is set once, not extended by later hits).
// It returns the count after this hit and the time left in the window.
// window must be positive.
func (s *Store) Hit(ctx context.Context, key string, window time.Duration) (count int64, resetIn time.Duration, err error) {
	if window <= 0 {
		return 0, 0, fmt.Errorf("store: hit: window must be positive, got %v", window)
	}
	h := decodeHit(hitScript.Run(ctx, s.rdb, []string{s.counterKey(key)}, ttlMillis(window)))
	return h.Count, h.ResetIn, h.err
}

// HitAll is [Store.Hit] of each key, at once: one command, atomic, for a
// limit counted on several counters (a user's and their network's). On a
// Redis Cluster the keys must share a hash slot: give them one hash tag, as
// "push:{ada@example.com} net" and "push:{ada@example.com} ".
func (s *Store) HitAll(ctx context.Context, window time.Duration, keys ...string) ([]HitCount, error) {
	if window <= 0 {
		return nil, fmt.Errorf("store: hit: window must be positive, got %v", window)
	}
	if len(keys) == 0 {
		return nil, nil
	}
	full := make([]string, len(keys))
	for i, k := range keys {
		full[i] = s.counterKey(k)
	}
	res, err := hitScript.Run(ctx, s.rdb, full, ttlMillis(window)).Int64Slice()
	if err != nil {
		return nil, fmt.Errorf("store: hit: %w", err)
	}
	if len(res) != 2*len(keys) {
		return nil, fmt.Errorf("store: hit: unexpected reply %v", res)
	}
	out := make([]HitCount, len(keys))
	for i := range out {
		out[i] = HitCount{Count: res[2*i], ResetIn: time.Duration(res[2*i+1]) * time.Millisecond}
	}
	return out, nil
}

// HitCount is the result of a batched [Store.Hit].
type HitCount struct {
	Count   int64         // the count after this hit
	ResetIn time.Duration // the time left in the window
	err     error
}

// HitIn queues [Store.Hit] of key in b.
func (s *Store) HitIn(b *Batch, key string, window time.Duration) *Result[HitCount] {
	if window <= 0 {
		err := fmt.Errorf("store: hit: window must be positive, got %v", window)
		return settle(b, func() (HitCount, error) { return HitCount{}, err })
	}
	keys, ms, ctx := []string{s.counterKey(key)}, ttlMillis(window), b.ctx
	cmd := hitScript.EvalSha(b.ctx, b.pipe, keys, ms)
	return settle(b, func() (HitCount, error) {
		if noScript(cmd.Err()) { // the script did not run: send it (which loads it)
			cmd = hitScript.Eval(ctx, s.rdb, keys, ms)
		}
		h := decodeHit(cmd)
		return h, h.err
	})
}

func decodeHit(cmd *redis.Cmd) HitCount {
	res, err := cmd.Int64Slice()
	if err != nil {
		return HitCount{err: fmt.Errorf("store: hit: %w", err)}
	}
	if len(res) != 2 {
		return HitCount{err: fmt.Errorf("store: hit: unexpected reply %v", res)}
	}
	return HitCount{Count: res[0], ResetIn: time.Duration(res[1]) * time.Millisecond}
}

// unhitScript: KEYS[1] counter. Decrements a live counter that is above
// zero, keeping its expiry; returns the count.
var unhitScript = redis.NewScript(`
local c = tonumber(redis.call('GET', KEYS[1]) or '0')
if c <= 0 then return 0 end
return redis.call('DECR', KEYS[1])
`)

// Unhit takes back one hit of key's counter (never below zero, and without
// touching its window): for a limit that counts attempts up front, before
// knowing whether they fail, and refunds those that did not.
func (s *Store) Unhit(ctx context.Context, key string) error {
	if err := unhitScript.Run(ctx, s.rdb, []string{s.counterKey(key)}).Err(); err != nil {
		return fmt.Errorf("store: unhit: %w", err)
	}
	return nil
}

// countScript: KEYS[1] counter. Returns {count, pttl} atomically.
var countScript = redis.NewScript(`
local c = redis.call('GET', KEYS[1])
if not c then return {0, -2} end
return {tonumber(c), redis.call('PTTL', KEYS[1])}
`)

// Count returns key's counter and the time left in its window without
// incrementing it; (0, 0, nil) when no window is open.
func (s *Store) Count(ctx context.Context, key string) (int64, time.Duration, error) {
	res, err := countScript.Run(ctx, s.rdb, []string{s.counterKey(key)}).Int64Slice()
	if err != nil {
		return 0, 0, fmt.Errorf("store: count: %w", err)
	}
	if len(res) != 2 {
		return 0, 0, fmt.Errorf("store: count: unexpected reply %v", res)
	}
	if res[1] < 0 {
		return res[0], 0, nil
	}
	return res[0], time.Duration(res[1]) * time.Millisecond, nil
}

// ResetCount deletes key's counter, closing its window (e.g. after a
// successful login). Resetting an absent counter is not an error.
func (s *Store) ResetCount(ctx context.Context, key string) error {
	if err := s.rdb.Del(ctx, s.counterKey(key)).Err(); err != nil {
		return fmt.Errorf("store: reset count: %w", err)
	}
	return nil
}
