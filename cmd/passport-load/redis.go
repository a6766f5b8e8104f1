package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/winkk/passport/store"
)

// redisReadTimeout bounds one reading of Redis's memory.
const redisReadTimeout = 10 * time.Second

// redisKeysTimeout bounds the count of the keys after the logins: a SCAN of every master's whole keyspace.
const redisKeysTimeout = 2 * time.Minute

// The tables of the IdP's records the report counts (authn.TableLogin, authn.TableSession).
const (
	loginTable   = "login"
	sessionTable = "session"
)

// RedisReport is what the run measured of the IdP's Redis (with --redis).
type RedisReport struct {
	// Server is the store's description (never a password); Prefix the key prefix counted.
	Server string `json:"server"`
	Prefix string `json:"prefix"`
	// Memory is INFO memory's used_memory of the masters at points of the run: the whole servers', whatever
	// else they hold. Nil: not read.
	Memory struct {
		BeforeSetup *RedisMemory `json:"before_setup,omitempty"`
		// AfterSetup: the application created, the users created and their devices enrolled.
		AfterSetup *RedisMemory `json:"after_setup,omitempty"`
		// Waiting: the --waiting browsers all waiting.
		Waiting *RedisMemory `json:"waiting,omitempty"`
		// BeforeLogins and AfterLogins frame the measured logins (after the warm-up, if any; with the waiting
		// browsers closed unless --keep-waiting).
		BeforeLogins *RedisMemory `json:"before_logins,omitempty"`
		AfterLogins  *RedisMemory `json:"after_logins,omitempty"`
	} `json:"memory"`
	// Users is how many users the setup created (before a warm-up's); BytesPerUser, AfterSetup - BeforeSetup over them.
	Users        int      `json:"users"`
	BytesPerUser *float64 `json:"bytes_per_user,omitempty"`
	// LoginsInFlight is how many browsers were waiting; BytesPerLoginInFlight, Waiting - AfterSetup over them.
	LoginsInFlight        int      `json:"logins_in_flight"`
	BytesPerLoginInFlight *float64 `json:"bytes_per_login_in_flight,omitempty"`
	// LoginsAnswered is how many logins succeeded; BytesPerAnsweredLogin, AfterLogins - BeforeLogins over them:
	// the login's record with its signed Response, the IdP session it opened and its audit events.
	LoginsAnswered        int      `json:"logins_answered"`
	BytesPerAnsweredLogin *float64 `json:"bytes_per_answered_login,omitempty"`
	// Shards are the keys under the prefix on each master after the logins, before the cleanup, by address.
	Shards []RedisShard `json:"keys_by_shard,omitempty"`
}

// RedisMemory is one reading of Redis's memory.
type RedisMemory struct {
	// UsedMemory is the sum over the masters of ByMaster.
	UsedMemory int64            `json:"used_memory_bytes"`
	ByMaster   map[string]int64 `json:"by_master"`
}

// RedisShard is what one master holds under the prefix.
type RedisShard struct {
	// Master is its address on a Cluster, else the store's description.
	Master string `json:"master"`
	Keys   int    `json:"keys"`
	// Logins and Sessions count the records of the IdP's logins and sessions among Keys (not their indexes).
	Logins   int `json:"login_records"`
	Sessions int `json:"session_records"`
}

// redisProbe measures the IdP's Redis during a run. A nil probe (no --redis) measures nothing.
type redisProbe struct {
	st  *store.Store
	rep *RedisReport
	// notes are for the report's Notes: a reading that failed, figures not to be trusted.
	notes []string
	// failed: a reading failed, and the next ones are not tried.
	failed bool
}

// openRedis connects to cfg.Redis and reads its memory once (before the setup), so that a Redis that cannot be
// reached or read stops the run before it starts. Nil without --redis.
func openRedis(ctx context.Context, cfg config) (*redisProbe, error) {
	if cfg.Redis == "" {
		return nil, nil
	}
	st, err := store.Open(ctx, store.Options{URL: cfg.Redis, Prefix: cfg.RedisPrefix})
	if err != nil {
		return nil, fmt.Errorf("--redis: %w", err)
	}
	p := &redisProbe{st: st, rep: &RedisReport{Server: st.Describe(), Prefix: cfg.RedisPrefix}}
	m, err := p.memory(ctx)
	if err != nil {
		_ = st.Close()
		return nil, fmt.Errorf("--redis: %w", err)
	}
	p.rep.Memory.BeforeSetup = m
	return p, nil
}

// close releases the connections.
func (p *redisProbe) close() {
	if p != nil {
		_ = p.st.Close()
	}
}

// memory reads the masters' used_memory.
func (p *redisProbe) memory(ctx context.Context) (*RedisMemory, error) {
	ctx, cancel := context.WithTimeout(ctx, redisReadTimeout)
	defer cancel()
	by, err := p.st.MemoryByShard(ctx)
	if err != nil {
		return nil, err
	}
	m := &RedisMemory{ByMaster: by}
	for _, n := range by {
		m.UsedMemory += n
	}
	return m, nil
}

// setupDone reads the memory once the setup created its users, as many as users.
func (p *redisProbe) setupDone(ctx context.Context, users int) {
	if p == nil {
		return
	}
	p.rep.Users = users
	p.read(ctx, afterSetup)
}

// redisPoint is a point of the run at which the probe reads Redis's memory.
type redisPoint int

const (
	afterSetup redisPoint = iota
	whileWaiting
	beforeLogins
	afterLogins
)

// slot is where the reading at the point goes, and what the point is called.
func (p *redisProbe) slot(at redisPoint) (**RedisMemory, string) {
	m := &p.rep.Memory
	switch at {
	case afterSetup:
		return &m.AfterSetup, "after the setup"
	case whileWaiting:
		return &m.Waiting, "with the browsers waiting"
	case beforeLogins:
		return &m.BeforeLogins, "before the logins"
	}
	return &m.AfterLogins, "after the logins"
}

// read reads the memory at the point; a failure becomes a note, and the probe reads nothing more. It does not
// heed ctx's cancellation (a reading after the logins is wanted also when they were interrupted).
func (p *redisProbe) read(ctx context.Context, at redisPoint) {
	if p == nil || p.failed {
		return
	}
	slot, name := p.slot(at)
	m, err := p.memory(context.WithoutCancel(ctx))
	if err != nil {
		p.failed = true
		p.notes = append(p.notes, fmt.Sprintf("Redis memory %s unknown, and not read again: %v", name, err))
		return
	}
	*slot = m
}

// finish counts the keys on each master (unless the run was interrupted), works out the figures per user and
// per login, and puts it all in rep.
func (p *redisProbe) finish(ctx context.Context, rep *Report) {
	if p == nil {
		return
	}
	r := p.rep
	mem := &r.Memory
	if rep.Waiting != nil {
		r.LoginsInFlight = rep.Waiting.Waiting
	}
	r.LoginsAnswered = rep.Logins.Succeeded
	shrank := false
	per := func(from, to *RedisMemory, n int) *float64 {
		if from == nil || to == nil || n <= 0 {
			return nil
		}
		d := to.UsedMemory - from.UsedMemory
		shrank = shrank || d < 0
		v := float64(d) / float64(n)
		return &v
	}
	r.BytesPerUser = per(mem.BeforeSetup, mem.AfterSetup, r.Users)
	r.BytesPerLoginInFlight = per(mem.AfterSetup, mem.Waiting, r.LoginsInFlight)
	r.BytesPerAnsweredLogin = per(mem.BeforeLogins, mem.AfterLogins, r.LoginsAnswered)
	if shrank {
		p.notes = append(p.notes, "Redis's memory shrank between two readings (another client of the server, keys expiring, or a "+
			"background free): the figures per user and per login are not to be trusted")
	}

	if ctx.Err() != nil {
		p.notes = append(p.notes, "Redis keys not counted: interrupted")
	} else if err := p.countKeys(ctx); err != nil {
		p.notes = append(p.notes, fmt.Sprintf("Redis keys not counted: %v", err))
	} else {
		logins := 0
		for _, s := range r.Shards {
			logins += s.Logins
		}
		if logins == 0 && (rep.Logins.Attempted > 0 || r.LoginsInFlight > 0) {
			p.notes = append(p.notes, fmt.Sprintf("no login record in Redis under the prefix %q: is --redis the IdP's Redis (and database), "+
				"and --redis-prefix its PASSPORT_REDIS_PREFIX?", r.Prefix))
		}
	}
	rep.Redis = r
	rep.Notes = append(rep.Notes, p.notes...)
}

// countKeys counts the keys under the prefix on each master, and the login and session records among them.
func (p *redisProbe) countKeys(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, redisKeysTimeout)
	defer cancel()
	byShard, err := p.st.KeysByShard(ctx)
	if err != nil {
		return err
	}
	shards := make([]RedisShard, 0, len(byShard))
	for master, keys := range byShard {
		s := RedisShard{Master: master, Keys: len(keys)}
		for _, k := range keys {
			switch p.st.RecordTable(k) {
			case loginTable:
				s.Logins++
			case sessionTable:
				s.Sessions++
			}
		}
		shards = append(shards, s)
	}
	slices.SortFunc(shards, func(a, b RedisShard) int { return strings.Compare(a.Master, b.Master) })
	p.rep.Shards = shards
	return nil
}

// writeText writes the Redis lines of the text report, with the report's line and sub.
func (r *RedisReport) writeText(line func(name, parts, format string, a ...any), sub func(name, format string, a ...any)) {
	line("Redis", "[server, key prefix]", "%s, %q", r.Server, r.Prefix)
	line("Redis memory", "[used_memory, summed over the masters]", "")
	m := r.Memory
	for _, p := range []struct {
		name string
		m    *RedisMemory
	}{
		{"before the setup", m.BeforeSetup},
		{fmt.Sprintf("after the setup (%d users)", r.Users), m.AfterSetup},
		{fmt.Sprintf("with the browsers waiting (%d)", r.LoginsInFlight), m.Waiting},
		{"before the logins", m.BeforeLogins},
		{fmt.Sprintf("after the logins (%d answered)", r.LoginsAnswered), m.AfterLogins},
	} {
		if p.m != nil {
			sub(p.name, "%s", bytesIEC(float64(p.m.UsedMemory)))
		}
	}
	// MB: 10^6 bytes.
	if v := r.BytesPerUser; v != nil {
		sub("per user", "%.0f B, %.2f MB per 1,000 users", *v, *v*1e3/1e6)
	}
	if v := r.BytesPerLoginInFlight; v != nil {
		sub("per login in flight", "%.0f B, %.2f MB per 10,000 logins in flight", *v, *v*1e4/1e6)
	}
	if v := r.BytesPerAnsweredLogin; v != nil {
		sub("per answered login (its IdP session, audit events included)", "%.0f B, %.2f MB per 10,000 answered logins", *v, *v*1e4/1e6)
	}
	if len(r.Shards) == 0 {
		return
	}
	line("Redis keys", "[master: keys, login records, session records]", "")
	var all RedisShard
	for _, s := range r.Shards {
		sub(s.Master, "%d, %d, %d", s.Keys, s.Logins, s.Sessions)
		all.Keys, all.Logins, all.Sessions = all.Keys+s.Keys, all.Logins+s.Logins, all.Sessions+s.Sessions
	}
	if len(r.Shards) > 1 {
		sub("all masters", "%d, %d, %d", all.Keys, all.Logins, all.Sessions)
	}
}
