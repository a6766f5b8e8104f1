package store

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// Sentinel errors; check them with errors.Is.
var (
	ErrNotFound      = errors.New("store: not found")
	ErrAlreadyExists = errors.New("store: already exists")
	// ErrConflict is returned by [Table.Update] and [Table.UpdateAndPublish]
	// when they lost the optimistic race too many times in a row (see
	// maxUpdateAttempts).
	ErrConflict = errors.New("store: update conflict")
	// ErrIndexFull is returned by [Table.Change] when an index it was to add
	// the record to already holds [Effects.Cap] ids.
	ErrIndexFull = errors.New("store: index full")
	// ErrRequiredMissing is returned by [Table.Change] when a record its
	// [Effects.Require] names does not exist.
	ErrRequiredMissing = errors.New("store: required record missing")
	// ErrLimited is returned by [Table.Change] when a counter its
	// [Effects.Hits] names already holds its cap.
	ErrLimited = errors.New("store: counter at its cap")
	// ErrUnsupported is returned by operations the server cannot carry out
	// (such as MemoryUsage on the embedded store).
	ErrUnsupported = errors.New("store: not supported by this server")
)

// IndexFullError is the error of a [Table.Change] refused because an index
// it was to add the record to was full; errors.Is(err, ErrIndexFull) holds.
type IndexFullError struct {
	Index string // the index, as named in Effects.AddTo
}

func (e *IndexFullError) Error() string { return "store: index " + e.Index + " full" }

// Is makes errors.Is(err, ErrIndexFull) true.
func (e *IndexFullError) Is(target error) bool { return target == ErrIndexFull }

// MissingError is the error of a [Table.Change] refused because a record its
// [Effects.Require] names does not exist; errors.Is(err, ErrRequiredMissing)
// holds.
type MissingError struct {
	Record string // the record's key, prefix included
}

func (e *MissingError) Error() string { return "store: required record " + e.Record + " missing" }

// Is makes errors.Is(err, ErrRequiredMissing) true.
func (e *MissingError) Is(target error) bool { return target == ErrRequiredMissing }

// LimitError is the failure of a change one of whose [Effects.Hits] found its
// counter at its cap: nothing was written and no counter hit.
type LimitError struct {
	Counter string        // the counter, as the Hit named it
	Count   int64         // its count
	ResetIn time.Duration // the time left in its window
}

func (e *LimitError) Error() string { return "store: counter " + e.Counter + " at its cap" }

// Is makes errors.Is(err, ErrLimited) true.
func (e *LimitError) Is(target error) bool { return target == ErrLimited }

// Ref names one record of a table, for [Effects.Require]; [Table.Ref] makes it.
type Ref struct{ key string }

// Options configure [Open].
type Options struct {
	// URL selects the server; "" means the embedded in-memory store. See the
	// package documentation for the accepted forms.
	URL string
	// Prefix is prepended to every key and channel (tests use a unique prefix
	// each).
	Prefix string
	// Spread lays the tables of [NewSpreadTable] out as on a Redis Cluster
	// (a slot per record, sorted-set indexes, writes split per slot) on a
	// single server too. A Cluster always has that layout; this exists so
	// that a whole test suite can run the Cluster's code paths against one
	// server. It has no effect on the embedded store.
	Spread bool
}

// defaultDialTimeout bounds connection attempts when the URL sets none, so
// that an unreachable host fails fast.
const defaultDialTimeout = 2 * time.Second

// embeddedClockTick is the resolution of the embedded store's clock: keys
// expire at most this late, and PTTL may overstate by as much.
const embeddedClockTick = 50 * time.Millisecond

// contextTimeouts: every client of [Open] is made with ContextTimeoutEnabled, so a command ends at its
// context's deadline (the earlier of it and the client's read/write timeouts, 3s by default). Without it
// go-redis bounds socket reads by its own timeouts alone and ignores the deadline, so a stalled server held a
// request with a 2s deadline for as long as the stall (and retries) lasted.

// openPingTimeout bounds the ping done by Open (retries included).
const openPingTimeout = 5 * time.Second

// Store is a connection to one Redis deployment (or the embedded server). It is
// safe for concurrent use.
type Store struct {
	rdb  redis.UniversalClient
	mini *miniredis.Miniredis // non-nil for the embedded store
	// stopClock stops the embedded server's clock goroutine, which closes
	// clockDone; both nil for a real server.
	stopClock, clockDone chan struct{}
	closeOnce            sync.Once
	closeErr             error
	prefix               string
	describe             string

	// psClient, for the embedded store only, is a second client that
	// carries the pub/sub connection; see embeddedPubSubClient. Nil for a
	// real server, whose pub/sub connection comes from rdb.
	psClient *redis.Client
	// psDials counts the pub/sub connections psClient opened, and psConn
	// is the latest (both for tests).
	psDials atomic.Int64
	psConn  atomic.Pointer[asyncWriteConn]

	psMu     sync.Mutex
	psClosed bool
	mux      *mux // started by the first Subscribe
	// psPingEvery and psPingTimeout override pubsubPingEvery and
	// pubsubPingTimeout when set (tests).
	psPingEvery, psPingTimeout time.Duration

	stats statsHook
	alive aliveHook  // skips go-redis's peek at a connection that has just read a reply (see aliveFor)
	ack   replicaAck // see WithReplicaAck; n == 0: off
	// spread: tables of NewSpreadTable use the Cluster layout (see spread.go).
	spread bool
	// cluster: the server is a Redis Cluster, which runs a batch per node in no set order (Table.InOrder).
	cluster bool
}

// Stats counts what a Store has asked of the server since it was opened.
type Stats struct {
	// RoundTrips counts requests awaited one after the other: a command, or
	// a pipeline or MULTI/EXEC sent as one.
	RoundTrips int64
	// Commands counts the commands in them (a script is one command).
	Commands int64
	// ReplicaAckMissed counts the writes made WithReplicaAck that fewer replicas than asked acknowledged in
	// time (they stand on the master).
	ReplicaAckMissed int64
}

// Stats returns the counts so far (pub/sub traffic is not counted).
func (s *Store) Stats() Stats {
	return Stats{RoundTrips: s.stats.rtts.Load(), Commands: s.stats.cmds.Load(), ReplicaAckMissed: s.ack.missed.Load()}
}

// statsHook is the go-redis hook behind [Store.Stats].
type statsHook struct{ rtts, cmds atomic.Int64 }

func (h *statsHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *statsHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.rtts.Add(1)
		h.cmds.Add(1)
		return next(ctx, cmd)
	}
}

func (h *statsHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.rtts.Add(1)
		h.cmds.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// Open connects to the store selected by o.URL and pings it, giving up when ctx
// is done or after 5s. Errors are wrapped "store: open: %w"; the URL's password
// never appears in them. Close the Store when done.
func Open(ctx context.Context, o Options) (*Store, error) {
	s, err := newStore(o)
	if err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, openPingTimeout)
	defer cancel()
	// go-redis does not always honour the context while it sets a new
	// connection up (a server that accepts but never answers holds it for a
	// read timeout), so wait on the context ourselves.
	errc := make(chan error, 1)
	go func() { errc <- s.rdb.Ping(pctx).Err() }()
	select {
	case err = <-errc:
		if err != nil {
			_ = s.Close()
		}
	case <-pctx.Done():
		err = pctx.Err()
		// Closing can block while the client is still retrying; release it
		// in the background once the ping gives up.
		go func() {
			<-errc
			_ = s.Close()
		}()
	}
	if err != nil {
		return nil, fmt.Errorf("store: open: %s: %w", s.describe, err)
	}
	return s, nil
}

func newStore(o Options) (*Store, error) {
	s := &Store{prefix: o.Prefix}
	u := strings.TrimSpace(o.URL)
	defer func() {
		_, s.cluster = s.rdb.(*redis.ClusterClient)
		s.spread = s.cluster || (o.Spread && s.mini == nil)
	}()
	scheme, rest, ok := strings.Cut(u, "://")
	switch {
	case u == "":
		m := miniredis.NewMiniRedis()
		// Keys expire on the wall clock. miniredis applies elapsed clock time
		// to every key on each command when the clock moved, which costs
		// O(keys·log keys) per command if the clock is time.Now(); instead the
		// clock is set from a ticker, so that work happens at most once per
		// embeddedClockTick and expiry is at most that late.
		m.SetTime(time.Now())
		m.ClockTTL(true)
		s.mini = m
		s.stopClock = make(chan struct{})
		s.clockDone = make(chan struct{})
		go func() {
			defer close(s.clockDone)
			t := time.NewTicker(embeddedClockTick)
			defer t.Stop()
			for {
				select {
				case <-s.stopClock:
					return
				case now := <-t.C:
					m.SetTime(now)
				}
			}
		}()
		s.rdb = redis.NewClient(&redis.Options{
			Dialer: func(context.Context, string, string) (net.Conn, error) {
				return m.Dial()
			},
			DisableIdentity:       true,
			ContextTimeoutEnabled: true,
		})
		s.psClient = s.embeddedPubSubClient()
		s.describe = "embedded in-memory store (data is lost at exit)"
	case !ok:
		return nil, errors.New("invalid URL: missing scheme (want redis://, rediss://, unix://, redis-sentinel:// or redis-cluster://)")
	case scheme == "redis" || scheme == "rediss" || scheme == "unix":
		stripped, n, timeout, err := stripReplicaAck(u)
		if err != nil {
			return nil, err
		}
		s.ack.n, s.ack.timeout = n, timeout
		opt, err := redis.ParseURL(stripped)
		if err != nil {
			return nil, fmt.Errorf("parse URL: %w", redactErr(err, u))
		}
		if opt.DialTimeout == 0 {
			opt.DialTimeout = defaultDialTimeout
		}
		opt.ContextTimeoutEnabled = true
		s.rdb = redis.NewClient(opt)
		s.describe = fmt.Sprintf("redis %s db %d", opt.Addr, opt.DB)
		if opt.TLSConfig != nil {
			s.describe += " (tls)"
		}
	case scheme == "redis-sentinel":
		a, err := parseMultiHost(rest)
		if err != nil {
			return nil, err
		}
		parts := strings.Split(strings.Trim(a.path, "/"), "/")
		if len(parts) == 0 || parts[0] == "" || len(parts) > 2 {
			return nil, errors.New("invalid redis-sentinel URL: want redis-sentinel://host:port,.../mastername[/db]")
		}
		db := 0
		if len(parts) == 2 {
			if db, err = strconv.Atoi(parts[1]); err != nil || db < 0 {
				return nil, fmt.Errorf("invalid redis-sentinel URL: bad db %q", parts[1])
			}
		}
		if s.ack.n, s.ack.timeout, err = replicaAckOptions(a.query, defaultSentinelReplicaAck); err != nil {
			return nil, err
		}
		fo := &redis.FailoverOptions{
			MasterName:       parts[0],
			SentinelAddrs:    a.hosts,
			Username:         a.user,
			Password:         a.pass,
			SentinelPassword: a.query.Get("sentinel_password"),
			DB:               db,
			DialTimeout:      defaultDialTimeout,
			// Without it go-redis ignores the callers' deadlines (see contextTimeouts).
			ContextTimeoutEnabled: true,
		}
		s.rdb = redis.NewFailoverClient(fo)
		s.describe = fmt.Sprintf("redis sentinel master %q via %s db %d", parts[0], strings.Join(a.hosts, ","), db)
	case scheme == "redis-cluster":
		a, err := parseMultiHost(rest)
		if err != nil {
			return nil, err
		}
		if p := strings.Trim(a.path, "/"); p != "" {
			return nil, errors.New("invalid redis-cluster URL: a cluster has no database number")
		}
		co := &redis.ClusterOptions{
			Addrs:       a.hosts,
			Username:    a.user,
			Password:    a.pass,
			DialTimeout: defaultDialTimeout,
			// Without it go-redis ignores the callers' deadlines (see contextTimeouts).
			ContextTimeoutEnabled: true,
		}
		if a.query.Get("tls") == "true" {
			co.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		s.rdb = redis.NewClusterClient(co)
		s.describe = "redis cluster " + strings.Join(a.hosts, ",")
	default:
		return nil, fmt.Errorf("invalid URL: unsupported scheme %q", scheme)
	}
	s.rdb.AddHook(&s.stats)
	s.alive.window.Store(int64(aliveFor))
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		// A Cluster's connections are dialled by its node clients, each with hooks of its own.
		cc.OnNewNode(func(n *redis.Client) { n.AddHook(&s.alive) })
	} else {
		s.rdb.AddHook(&s.alive)
	}
	if c, ok := s.rdb.(*redis.Client); ok && s.ack.n > 0 {
		s.ack.client, s.ack.stats = c, &s.stats
		s.rdb.AddHook(&s.ack)
	}
	return s, nil
}

// multiHost is the parsed form of "[user:pass@]h1:p,h2:p[/path][?query]".
type multiHost struct {
	user, pass string
	hosts      []string
	path       string
	query      url.Values
}

func parseMultiHost(rest string) (multiHost, error) {
	var a multiHost
	rest, rawQuery, _ := strings.Cut(rest, "?")
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return a, fmt.Errorf("invalid URL query: %w", err)
	}
	a.query = q
	authority := rest
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		authority, a.path = rest[:i], rest[i:]
	}
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		user, pass, _ := strings.Cut(authority[:i], ":")
		if a.user, err = url.PathUnescape(user); err != nil {
			return a, errors.New("invalid URL: bad user name escaping")
		}
		if a.pass, err = url.PathUnescape(pass); err != nil {
			return a, errors.New("invalid URL: bad password escaping")
		}
		authority = authority[i+1:]
	}
	for _, h := range strings.Split(authority, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(h); err != nil || port == "" {
			return a, fmt.Errorf("invalid URL: host %q needs host:port", h)
		}
		a.hosts = append(a.hosts, h)
	}
	if len(a.hosts) == 0 {
		return a, errors.New("invalid URL: no hosts")
	}
	return a, nil
}

// redactErr keeps a URL's password out of a parse error message.
func redactErr(err error, raw string) error {
	u, perr := url.Parse(raw)
	if perr != nil || u.User == nil {
		return err
	}
	if p, ok := u.User.Password(); ok && p != "" && strings.Contains(err.Error(), p) {
		return errors.New(strings.ReplaceAll(err.Error(), p, "xxxxx"))
	}
	return err
}

// pubsubClient returns the client whose PubSub carries the subscriptions.
func (s *Store) pubsubClient() redis.UniversalClient {
	if s.psClient != nil {
		return s.psClient
	}
	return s.rdb
}

// embeddedPubSubClient returns a client of the embedded server whose
// connections never block on a write: they queue it (see asyncWriteConn).
// The embedded server is reached over a net.Pipe, which has no buffer, and
// go-redis holds the PubSub's lock while it writes SUBSCRIBE and takes it
// again between two reads; were the write to block until the server reads
// it while the server blocks writing a message until the reader reads it,
// the three would wait on one another for ever. A TCP connection to a real
// server has socket buffers instead, and the server reads regardless of
// what it has to write.
func (s *Store) embeddedPubSubClient() *redis.Client {
	return redis.NewClient(&redis.Options{
		Dialer: func(context.Context, string, string) (net.Conn, error) {
			c, err := s.mini.Dial()
			if err != nil {
				return nil, err
			}
			ac := newAsyncWriteConn(c)
			s.psDials.Add(1)
			s.psConn.Store(ac)
			return ac, nil
		},
		DisableIdentity: true,
		PoolSize:        1,
	})
}

// Close releases the connections (and stops the embedded server, discarding
// its data). Every channel returned by [Store.Subscribe] is closed, and
// Subscribe fails afterwards.
// Calling Close more than once returns the first result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closePubSub()
		if s.psClient != nil {
			_ = s.psClient.Close()
		}
		if err := s.rdb.Close(); err != nil {
			s.closeErr = fmt.Errorf("store: close: %w", err)
		}
		if s.mini != nil {
			close(s.stopClock)
			<-s.clockDone
			s.mini.Close()
		}
	})
	return s.closeErr
}

// Ping checks that the server answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}

// Embedded reports whether this is the in-process store whose data dies with
// the process.
func (s *Store) Embedded() bool { return s.mini != nil }

// Describe says, for logs, what the store is connected to, e.g.
// "embedded in-memory store (data is lost at exit)" or
// "redis 127.0.0.1:6379 db 0". It never contains a password.
func (s *Store) Describe() string { return s.describe }

// Prefix returns the key prefix given in [Options.Prefix].
func (s *Store) Prefix() string { return s.prefix }

// Purge deletes every key under the store's prefix (on every master, in
// Cluster mode) and returns how many it deleted. Meant for tests and resets;
// with an empty prefix it refuses, since it would wipe the whole database.
func (s *Store) Purge(ctx context.Context) (int64, error) {
	if s.prefix == "" {
		return 0, errors.New("store: purge: refusing to purge with an empty prefix")
	}
	pattern := globEscape(s.prefix) + "*"
	var total atomic.Int64 // a Cluster's masters are purged at once
	purge := func(ctx context.Context, c redis.Cmdable) error {
		it := c.Scan(ctx, 0, pattern, 500).Iterator()
		var batch []string
		flush := func() error {
			for _, k := range batch {
				// One key per UNLINK: keys of different slots can't share a command in Cluster mode.
				n, err := c.Unlink(ctx, k).Result()
				if err != nil {
					return err
				}
				total.Add(n)
			}
			batch = batch[:0]
			return nil
		}
		for it.Next(ctx) {
			batch = append(batch, it.Val())
			if len(batch) >= 500 {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err := it.Err(); err != nil {
			return err
		}
		return flush()
	}
	var err error
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return purge(ctx, c) })
	} else {
		err = purge(ctx, s.rdb)
	}
	if err != nil {
		return total.Load(), fmt.Errorf("store: purge: %w", err)
	}
	return total.Load(), nil
}

// globEscape escapes Redis glob metacharacters so s matches literally in SCAN MATCH.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// ttlMillis converts a TTL for PX/PEXPIRE, rounding up to 1ms; 0 means no expiry. Negative TTLs are
// rejected by the callers.
func ttlMillis(ttl time.Duration) int64 {
	if ttl <= 0 {
		return 0
	}
	ms := ttl.Milliseconds()
	if ms == 0 {
		ms = 1
	}
	return ms
}

func checkTTL(ttl time.Duration) error {
	if ttl < 0 {
		return fmt.Errorf("negative ttl %v", ttl)
	}
	return nil
}

// SetLogger sends the Redis client's own messages (failed dials, broken
// connections) to l, at warning level, instead of unstructured lines on
// standard error. It applies to every Store of the process.
func SetLogger(l *slog.Logger) {
	redis.SetLogger(clientLogger{l})
	storeLogger.Store(l)
}

// storeLogger receives the store's own warnings (see SetLogger); nil: slog's default logger.
var storeLogger atomic.Pointer[slog.Logger]

func warn(ctx context.Context, msg string, args ...any) {
	l := storeLogger.Load()
	if l == nil {
		l = slog.Default()
	}
	l.WarnContext(ctx, msg, args...)
}

// clientLogger adapts an slog.Logger to go-redis's logging interface.
type clientLogger struct{ l *slog.Logger }

func (c clientLogger) Printf(ctx context.Context, format string, v ...any) {
	c.l.WarnContext(ctx, "redis client: "+strings.TrimSpace(fmt.Sprintf(format, v...)))
}
