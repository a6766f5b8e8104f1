package store

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

func mustNewStore(tb testing.TB, o Options) *Store {
	tb.Helper()
	s, err := newStore(o)
	if err != nil {
		tb.Fatalf("newStore(%q): %v", o.URL, err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// mustClosedPort returns a loopback address on which nothing listens.
func mustClosedPort(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		tb.Fatal(err)
	}
	return addr
}

// mustSilentServer returns a loopback address that accepts connections and
// never answers.
func mustSilentServer(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	var conns []net.Conn
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				for _, c := range conns {
					_ = c.Close()
				}
				return
			}
			conns = append(conns, c)
		}
	}()
	tb.Cleanup(func() {
		_ = l.Close()
		<-done
	})
	return l.Addr().String()
}

func TestOpenRejectsBadURL(t *testing.T) {
	tests := []struct {
		name, url, wantInErr string
	}{
		{"NoScheme", "127.0.0.1:6379", "missing scheme"},
		{"UnknownScheme", "http://127.0.0.1:6379", "unsupported scheme"},
		{"RedisBadPort", "redis://127.0.0.1:notaport/0", "parse URL"},
		{"RedisBadDB", "redis://127.0.0.1:6379/notadb", "parse URL"},
		{"UnixNoPath", "unix://", "parse URL"},
		{"UnixBadDB", "unix:///run/redis.sock?db=x", "parse URL"},
		{"SentinelNoMaster", "redis-sentinel://127.0.0.1:26379", "mastername"},
		{"SentinelBadDB", "redis-sentinel://127.0.0.1:26379/mymaster/x", "bad db"},
		{"SentinelTooManyPathParts", "redis-sentinel://127.0.0.1:26379/m/0/1", "mastername"},
		{"SentinelNoHosts", "redis-sentinel:///mymaster", "no hosts"},
		{"SentinelHostWithoutPort", "redis-sentinel://a:26379,b/mymaster", "needs host:port"},
		{"ClusterNoHosts", "redis-cluster://", "no hosts"},
		{"ClusterWithDB", "redis-cluster://127.0.0.1:7000/3", "no database"},
		{"ClusterBadQuery", "redis-cluster://127.0.0.1:7000?%zz", "query"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(t.Context(), Options{URL: tc.url})
			if err == nil {
				_ = s.Close()
				t.Fatalf("Open(%q) succeeded", tc.url)
			}
			if !strings.HasPrefix(err.Error(), "store: open: ") || !strings.Contains(err.Error(), tc.wantInErr) {
				t.Fatalf("Open(%q) = %q, want a \"store: open: \" error mentioning %q", tc.url, err, tc.wantInErr)
			}
		})
	}
}

func TestOpenUnreachable(t *testing.T) {
	tests := []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"ConnectionRefused", func(t *testing.T) string { return "redis://" + mustClosedPort(t) + "/0" }},
		{"ConnectionRefusedWithPassword", func(t *testing.T) string { return "redis://user:s3cret@" + mustClosedPort(t) + "/0" }},
		{"SilentServer", func(t *testing.T) string { return "redis://" + mustSilentServer(t) + "/0" }},
		{"SentinelRefused", func(t *testing.T) string { return "redis-sentinel://:s3cret@" + mustClosedPort(t) + "/mymaster" }},
		{"ClusterRefused", func(t *testing.T) string { return "redis-cluster://" + mustClosedPort(t) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
			defer cancel()
			u := tc.url(t)
			s, err := Open(ctx, Options{URL: u})
			if err == nil {
				_ = s.Close()
				t.Fatalf("Open(%q) succeeded", u)
			}
			if !strings.HasPrefix(err.Error(), "store: open: ") {
				t.Fatalf("error %q lacks the \"store: open: \" prefix", err)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("error %q leaks the password", err)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	tests := []struct {
		url, want string
		embedded  bool
	}{
		{"", "embedded in-memory store (data is lost at exit)", true},
		{"redis://127.0.0.1:6379/0", "redis 127.0.0.1:6379 db 0", false},
		{"redis://user:s3cret@redis.internal:6380/2", "redis redis.internal:6380 db 2", false},
		{"rediss://:s3cret@redis.internal:6380", "redis redis.internal:6380 db 0 (tls)", false},
		{"unix://:s3cret@/run/redis/redis.sock?db=3", "redis /run/redis/redis.sock db 3", false},
		{"redis-sentinel://:s3cret@s1:26379,s2:26379/mymaster/1", `redis sentinel master "mymaster" via s1:26379,s2:26379 db 1`, false},
		{"redis-sentinel://s1:26379/mymaster", `redis sentinel master "mymaster" via s1:26379 db 0`, false},
		{"redis-cluster://user:s3cret@c1:7000,c2:7001", "redis cluster c1:7000,c2:7001", false},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			s := mustNewStore(t, Options{URL: tc.url})
			if got := s.Describe(); got != tc.want {
				t.Fatalf("Describe() = %q, want %q", got, tc.want)
			}
			if strings.Contains(s.Describe(), "s3cret") {
				t.Fatalf("Describe() leaks the password: %q", s.Describe())
			}
			if s.Embedded() != tc.embedded {
				t.Fatalf("Embedded() = %v, want %v", s.Embedded(), tc.embedded)
			}
		})
	}
}

func TestParseMultiHost(t *testing.T) {
	tests := []struct {
		name, in       string
		user, pass     string
		hosts          string
		path, sentinel string
	}{
		{"Plain", "h1:1,h2:2/m", "", "", "h1:1,h2:2", "/m", ""},
		{"PasswordOnly", ":p%40ss@h1:1/m/3", "", "p@ss", "h1:1", "/m/3", ""},
		{"UserAndPassword", "u:p@h1:1", "u", "p", "h1:1", "", ""},
		{"AtInPassword", "u:a@b@h1:1", "u", "a@b", "h1:1", "", ""},
		{"SentinelPassword", "h1:1/m?sentinel_password=sp", "", "", "h1:1", "/m", "sp"},
		{"IPv6", "[::1]:26379,h2:2/m", "", "", "[::1]:26379,h2:2", "/m", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := parseMultiHost(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			got := []string{a.user, a.pass, strings.Join(a.hosts, ","), a.path, a.query.Get("sentinel_password")}
			want := []string{tc.user, tc.pass, tc.hosts, tc.path, tc.sentinel}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("parseMultiHost(%q) = %q, want %q", tc.in, got, want)
				}
			}
		})
	}
}

func TestNewTableRejectsBadNames(t *testing.T) {
	s := mustNewStore(t, Options{})
	for _, name := range []string{"", "a{b", "a}b", "{x}"} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatalf("NewTable(%q) did not panic", name)
				}
			}()
			NewTable[int](s, name)
		})
	}
}

func TestPurge(t *testing.T) {
	ctx := t.Context()
	t.Run("EmptyPrefixRefused", func(t *testing.T) {
		s := mustNewStore(t, Options{})
		if _, err := s.Purge(ctx); err == nil {
			t.Fatal("Purge with an empty prefix succeeded")
		}
	})
	t.Run("OnlyOwnPrefix", func(t *testing.T) {
		s := mustNewStore(t, Options{Prefix: "a*:"})
		// Same embedded server, other prefix: share the client.
		other := &Store{rdb: s.rdb, prefix: "ab:"}
		for _, st := range []*Store{s, other} {
			if err := st.SetValue(ctx, "k", "v", 0); err != nil {
				t.Fatal(err)
			}
			if err := NewTable[int](st, "t").Put(ctx, "1", 1, 0); err != nil {
				t.Fatal(err)
			}
		}
		n, err := s.Purge(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n != 3 { // value, record, id set
			t.Fatalf("Purge deleted %d keys, want 3", n)
		}
		if _, err := s.GetValue(ctx, "k"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("value survived Purge: %v", err)
		}
		if v, err := other.GetValue(ctx, "k"); err != nil || v != "v" {
			t.Fatalf("Purge of %q touched prefix %q: %q, %v", s.prefix, other.prefix, v, err)
		}
	})
}

func TestCloseTwice(t *testing.T) {
	s, err := Open(t.Context(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := s.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	if err := s.Ping(t.Context()); err == nil {
		t.Fatal("Ping after Close succeeded")
	}
}

// lockedBuffer is a bytes.Buffer safe for a writer and a reader at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSetLogger: the Redis client's complaints (here: a refused dial) become structured log lines.
func TestSetLogger(t *testing.T) {
	var buf lockedBuffer
	SetLogger(slog.New(slog.NewJSONHandler(&buf, nil)))
	t.Cleanup(func() { SetLogger(slog.New(slog.NewTextHandler(os.Stderr, nil))) })
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if s, err := Open(ctx, Options{URL: "redis://" + mustClosedPort(t) + "/0"}); err == nil {
		_ = s.Close()
		t.Fatal("Open of a closed port succeeded")
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(buf.String(), `"level":"WARN","msg":"redis client: `) {
		if time.Now().After(deadline) {
			t.Fatalf("no structured line from the Redis client:\n%s", buf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
