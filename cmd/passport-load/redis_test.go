package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/winkk/passport/api/apitest"
	"github.com/winkk/passport/store"
	"github.com/winkk/passport/store/storetest"
	"github.com/winkk/passport/store/storetest/redisproc"
)

// The tests of --redis are not parallel to the others: they run before them, and the servers, Redis processes
// and connections they start and stop do not move the goroutines and memory that TestWaiting reads from the
// process they share.

// checkRedis checks the Redis part of rep, from a run of logins (waiting browsers held first) on the server st
// serves, with --redis on st's own server and prefix.
func checkRedis(t *testing.T, rep *Report, st *store.Store, logins, waiting int) *RedisReport {
	t.Helper()
	r := rep.Redis
	if r == nil {
		t.Fatalf("no Redis section in the report; notes %q", rep.Notes)
	}
	if r.Server != st.Describe() || r.Prefix != st.Prefix() {
		t.Errorf("Redis %q, prefix %q; want %q, %q", r.Server, r.Prefix, st.Describe(), st.Prefix())
	}
	m := r.Memory
	for name, at := range map[string]*RedisMemory{
		"before setup": m.BeforeSetup, "after setup": m.AfterSetup, "waiting": m.Waiting, "before logins": m.BeforeLogins, "after logins": m.AfterLogins,
	} {
		if at == nil {
			t.Errorf("no reading of Redis's memory %s", name)
			continue
		}
		var sum int64
		for master, n := range at.ByMaster {
			if n <= 0 {
				t.Errorf("%s: master %s uses %d bytes", name, master, n)
			}
			sum += n
		}
		if at.UsedMemory <= 0 || at.UsedMemory != sum {
			t.Errorf("%s: used_memory %d, want the sum of %v", name, at.UsedMemory, at.ByMaster)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	// The Redis is shared with other tests, so the differences may have any sign; they are divided right.
	per := func(name string, got *float64, from, to *RedisMemory, n int) {
		t.Helper()
		if want := float64(to.UsedMemory-from.UsedMemory) / float64(n); got == nil || *got != want {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}
	if r.Users != rep.Setup.Users || r.LoginsInFlight != waiting || r.LoginsAnswered != logins {
		t.Errorf("counted %d users, %d logins in flight, %d answered; want %d, %d, %d", r.Users, r.LoginsInFlight, r.LoginsAnswered, rep.Setup.Users, waiting, logins)
	}
	per("bytes per user", r.BytesPerUser, m.BeforeSetup, m.AfterSetup, r.Users)
	per("bytes per login in flight", r.BytesPerLoginInFlight, m.AfterSetup, m.Waiting, waiting)
	per("bytes per answered login", r.BytesPerAnsweredLogin, m.BeforeLogins, m.AfterLogins, logins)

	var all RedisShard
	for _, s := range r.Shards {
		if _, ok := m.AfterLogins.ByMaster[s.Master]; !ok {
			t.Errorf("keys counted on %q, a master whose memory was not read (%v)", s.Master, m.AfterLogins.ByMaster)
		}
		all.Keys, all.Logins, all.Sessions = all.Keys+s.Keys, all.Logins+s.Logins, all.Sessions+s.Sessions
	}
	// Every login parked keeps its record until it expires, answered or not, and every answered one opened a
	// session.
	if len(r.Shards) == 0 || all.Logins < logins+waiting || all.Sessions < logins || all.Keys < all.Logins+all.Sessions {
		t.Errorf("keys by shard %+v: want %d login records and %d sessions at least", r.Shards, logins+waiting, logins)
	}
	return r
}

// TestRedis: with --redis on the test server's Redis and key prefix, the report has Redis's memory at each point
// of the run, the bytes per user and per login, and the keys per master, in either layout of the logins and
// sessions (the spread one is a Cluster's, here on one server).
func TestRedis(t *testing.T) {
	u, ok := storetest.RedisURL()
	if !ok {
		t.Skipf("no Redis server: set %s or run one on 127.0.0.1:6379", storetest.EnvRedisURL)
	}
	for name, open := range map[string]func(testing.TB, string) *store.Store{"one slot": storetest.OpenURL, "spread": storetest.OpenSpread} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			st := open(t, u)
			s := apitest.StartOn(t, st)
			code, rep := loadJSON(t, s, "--logins", "5", "--concurrency", "2", "--waiting", "3", "--redis", u, "--redis-prefix", st.Prefix())
			if code != exitOK || rep.Logins.Succeeded != 5 {
				t.Fatalf("exit %d, logins %+v, errors %+v", code, rep.Logins, rep.Errors)
			}
			r := checkRedis(t, rep, st, 5, 3)
			if len(r.Shards) != 1 || r.Shards[0].Master != st.Describe() {
				t.Errorf("keys by shard %+v, want one entry named %q", r.Shards, st.Describe())
			}
			for _, n := range rep.Notes {
				if strings.Contains(n, "Redis") && !strings.Contains(n, "shrank") {
					t.Errorf("note: %s", n)
				}
			}
			var text strings.Builder
			if err := rep.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{
				"Redis         [server, key prefix]                            " + st.Describe() + `, "` + st.Prefix() + `"` + "\n",
				"Redis memory  [used_memory, summed over the masters]\n",
				"  before the setup   ", "  after the setup (", "  with the browsers waiting (3) ", "  before the logins  ", "  after the logins (5 answered) ",
				"  per user    ", " MB per 1,000 users\n",
				"  per login in flight    ", " MB per 10,000 logins in flight\n",
				"  per answered login (its IdP session, audit events included) ", " MB per 10,000 answered logins\n",
				"Redis keys    [master: keys, login records, session records]\n  " + st.Describe() + " ",
			} {
				if !strings.Contains(text.String(), want) {
					t.Errorf("the text report has no %q:\n%s", want, text.String())
				}
			}
			assertCleanedUp(t, s, rep.Run)
		})
	}
}

// TestRedisCluster: on a three-master Redis Cluster, Redis's memory is read on each master, and the login
// records, each in a slot of its own, are found spread over the masters.
func TestRedisCluster(t *testing.T) {
	c := redisproc.StartCluster(t)
	st := storetest.OpenURL(t, c.URL())
	s := apitest.StartOn(t, st)
	code, rep := loadJSON(t, s, "--logins", "10", "--concurrency", "2", "--waiting", "3", "--redis", c.URL(), "--redis-prefix", st.Prefix())
	if code != exitOK || rep.Logins.Succeeded != 10 {
		t.Fatalf("exit %d, logins %+v, errors %+v", code, rep.Logins, rep.Errors)
	}
	r := checkRedis(t, rep, st, 10, 3)
	var masters, withLogins []string
	for _, m := range c.Masters {
		masters = append(masters, m.Addr)
	}
	slices.Sort(masters)
	var shards []string
	for _, sh := range r.Shards {
		shards = append(shards, sh.Master)
		if sh.Logins > 0 {
			withLogins = append(withLogins, sh.Master)
		}
	}
	if !slices.Equal(shards, masters) || len(r.Memory.AfterLogins.ByMaster) != len(masters) {
		t.Errorf("keys on %v, memory of %v; want both for the masters %v", shards, r.Memory.AfterLogins.ByMaster, masters)
	}
	// 13 records in random slots all on one master of three: 3 × 3⁻¹³, about one run in 500,000.
	if len(withLogins) < 2 {
		t.Errorf("login records on %v only: %+v", withLogins, r.Shards)
	}
	assertCleanedUp(t, s, rep.Run)
}

// TestRedisUnreachable: a --redis that cannot be reached stops the run before it creates anything, in one line
// that does not show the URL's password.
func TestRedisUnreachable(t *testing.T) {
	s := apitest.Start(t)
	code, out, errOut := load(t, s, "--logins", "2", "--redis", "redis://:hunter2@127.0.0.1:1/0")
	if code != exitFail || out != "" {
		t.Errorf("exit %d, stdout %q; want 1 and no report", code, out)
	}
	if !strings.HasPrefix(errOut, "passport-load: --redis: ") || !strings.Contains(errOut, "127.0.0.1:1") || strings.Count(errOut, "\n") != 1 || strings.Contains(errOut, "hunter2") {
		t.Errorf("stderr %q, want one line saying --redis cannot be reached, without the password", errOut)
	}
	assertCleanedUp(t, s, "")
}
