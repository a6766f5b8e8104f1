// Package redisproc starts redis-server processes (single servers, replicas, Sentinels, a Cluster's masters)
// on spare loopback ports for tests that need a Redis of their own to pause, kill, fail over or shard, and
// stops them when the test ends.
package redisproc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/winkk/passport/store"
	"github.com/winkk/passport/store/storetest"
)

// startTimeout bounds how long a process may take to answer PING.
const startTimeout = 10 * time.Second

// Require skips tb when redis-server is not installed, unless storetest.EnvRedisURL is set (CI sets it): then
// a missing redis-server fails tb, so the test cannot silently stop running there.
func Require(tb testing.TB) {
	tb.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv(storetest.EnvRedisURL) != "" {
			tb.Fatalf("redisproc: redis-server not found (required when %s is set): %v", storetest.EnvRedisURL, err)
		}
		tb.Skip("redisproc: redis-server not found")
	}
}

// Server is one redis-server process (a server or a Sentinel) on 127.0.0.1.
type Server struct {
	Port int
	Addr string // 127.0.0.1:Port
	cmd  *exec.Cmd
	done chan struct{}
	log  *lockedBuffer

	mu     sync.Mutex
	client *redis.Client
}

// Start runs `redis-server --port N --bind 127.0.0.1 --save "" --appendonly no --repl-diskless-sync-delay 0` plus args on a spare port and
// returns once it answers PING. It is killed when tb ends.
func Start(tb testing.TB, args ...string) *Server {
	tb.Helper()
	Require(tb)
	return start(tb, sparePort, func(dir string, port int) []string {
		return append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0",
			"--dir", dir}, args...)
	})
}

// StartReplica starts a server replicating master and returns once its replication link is up.
func StartReplica(tb testing.TB, master *Server) *Server {
	tb.Helper()
	r := Start(tb, "--replicaof", "127.0.0.1", strconv.Itoa(master.Port))
	r.WaitFor(tb, "its replication link", func(ctx context.Context, c *redis.Client) bool {
		info, err := c.Info(ctx, "replication").Result()
		return err == nil && strings.Contains(info, "master_link_status:up")
	})
	return r
}

// StartSentinel starts a Sentinel watching master under name, with quorum votes needed to declare it down,
// declaring it down after downAfter without an answer and bounding a failover by failoverTimeout.
func StartSentinel(tb testing.TB, master *Server, name string, quorum int, downAfter, failoverTimeout time.Duration) *Server {
	tb.Helper()
	Require(tb)
	return start(tb, sparePort, func(dir string, port int) []string {
		conf := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\n"+
			"sentinel monitor %s 127.0.0.1 %d %d\n"+
			"sentinel down-after-milliseconds %s %d\n"+
			"sentinel failover-timeout %s %d\n"+
			"sentinel parallel-syncs %s 1\n",
			port, dir, name, master.Port, quorum, name, downAfter.Milliseconds(), name, failoverTimeout.Milliseconds(), name)
		path := filepath.Join(dir, "sentinel.conf")
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			tb.Fatalf("redisproc: %v", err)
		}
		return []string{path, "--sentinel"}
	})
}

// start runs redis-server with the arguments argsFor gives for a directory of its own and a port from pick.
func start(tb testing.TB, pick func() (int, error), argsFor func(dir string, port int) []string) *Server {
	tb.Helper()
	var lastErr error
	for range 5 { // a spare port can be taken between finding it and the server binding it: try another
		port, err := pick()
		if err != nil {
			tb.Fatalf("redisproc: %v", err)
		}
		dir := tb.TempDir()
		s := &Server{Port: port, Addr: "127.0.0.1:" + strconv.Itoa(port), done: make(chan struct{}), log: &lockedBuffer{}}
		s.cmd = exec.Command("redis-server", argsFor(dir, port)...)
		s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
		if err := s.cmd.Start(); err != nil {
			tb.Fatalf("redisproc: start redis-server: %v", err)
		}
		go func() { _ = s.cmd.Wait(); close(s.done) }()
		tb.Cleanup(func() {
			s.Kill()
			s.mu.Lock()
			if s.client != nil {
				_ = s.client.Close()
			}
			s.mu.Unlock()
		})
		if lastErr = s.waitPing(); lastErr == nil {
			return s
		}
		s.Kill()
	}
	tb.Fatalf("redisproc: redis-server did not start: %v", lastErr)
	return nil
}

func (s *Server) waitPing() error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		select {
		case <-s.done:
			return fmt.Errorf("redis-server on port %d exited: %s", s.Port, s.log.String())
		default:
		}
		pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
		err := s.Client().Ping(pctx).Err()
		pcancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("redis-server on port %d: no PONG: %v; log: %s", s.Port, err, s.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Open opens a store at url (a server's or a deployment's URL) with a unique key prefix, closed when tb ends.
// Nothing is purged: the servers are the test's own and die with it.
func Open(tb testing.TB, url string) *store.Store {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := store.Open(ctx, store.Options{URL: url, Prefix: storetest.UniquePrefix(tb)})
	if err != nil {
		tb.Fatalf("redisproc: %v", err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	return st
}

// URL is the server's redis:// URL.
func (s *Server) URL() string { return "redis://" + s.Addr + "/0" }

// Client is a go-redis client of the server, for the test's own commands (CLIENT PAUSE, INFO, SENTINEL ...).
func (s *Server) Client() *redis.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client == nil {
		s.client = redis.NewClient(&redis.Options{Addr: s.Addr, DialTimeout: time.Second, MaxRetries: -1,
			ContextTimeoutEnabled: true, DisableIdentity: true})
	}
	return s.client
}

// Kill ends the process at once (SIGKILL), as a crashed host would, and waits for it to exit.
func (s *Server) Kill() {
	if s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}

// Pause runs CLIENT PAUSE for d (ALL: reads too), so the server stalls every client's command for that long.
// Redis 7.0 holds even CLIENT UNPAUSE from a new connection until the pause ends: pick d the test can wait out,
// or let the server be killed at cleanup.
func (s *Server) Pause(tb testing.TB, d time.Duration) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.Client().Do(ctx, "CLIENT", "PAUSE", d.Milliseconds(), "ALL").Err(); err != nil {
		tb.Fatalf("redisproc: CLIENT PAUSE: %v", err)
	}
}

// WaitFor polls cond on the server's client every 50ms until it holds, failing tb after 15s.
func (s *Server) WaitFor(tb testing.TB, what string, cond func(context.Context, *redis.Client) bool) {
	tb.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		ok := cond(ctx, s.Client())
		cancel()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("redisproc: redis-server on port %d: still waiting for %s", s.Port, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Sentinels is a Sentinel deployment: a master, its replica and the Sentinels watching it.
type Sentinels struct {
	Name      string
	Master    *Server
	Replica   *Server
	Sentinels []*Server
}

// StartSentinels starts a master, one replica and n Sentinels (quorum n/2+1) that declare the master down
// after 500ms, and returns once every Sentinel knows the replica and the other Sentinels (so a failover can
// start as soon as the master dies).
func StartSentinels(tb testing.TB, name string, n int) *Sentinels {
	tb.Helper()
	d := &Sentinels{Name: name}
	d.Master = Start(tb)
	d.Replica = StartReplica(tb, d.Master)
	for range n {
		d.Sentinels = append(d.Sentinels, StartSentinel(tb, d.Master, name, n/2+1, 500*time.Millisecond, 3*time.Second))
	}
	for _, s := range d.Sentinels {
		s.WaitFor(tb, "the replica and the other Sentinels", func(ctx context.Context, c *redis.Client) bool {
			reps, err := c.Do(ctx, "SENTINEL", "REPLICAS", name).Slice()
			if err != nil || len(reps) != 1 {
				return false
			}
			sens, err := c.Do(ctx, "SENTINEL", "SENTINELS", name).Slice()
			return err == nil && len(sens) == n-1
		})
	}
	return d
}

// URL is the deployment's redis-sentinel:// URL.
func (d *Sentinels) URL() string {
	addrs := make([]string, len(d.Sentinels))
	for i, s := range d.Sentinels {
		addrs[i] = s.Addr
	}
	return "redis-sentinel://" + strings.Join(addrs, ",") + "/" + d.Name
}

// MasterAddr asks the first Sentinel that answers which address is the master now.
func (d *Sentinels) MasterAddr(ctx context.Context) (string, error) {
	var lastErr error
	for _, s := range d.Sentinels {
		addr, err := s.Client().Do(ctx, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", d.Name).StringSlice()
		if err == nil && len(addr) == 2 {
			return net.JoinHostPort(addr[0], addr[1]), nil
		}
		lastErr = err
	}
	return "", errors.Join(errors.New("no Sentinel names a master"), lastErr)
}

// Cluster is a Redis Cluster of masters started by StartCluster.
type Cluster struct {
	Masters []*Server
}

// URL is the store URL of the cluster (redis-cluster://a,b,c).
func (c *Cluster) URL() string {
	addrs := make([]string, len(c.Masters))
	for i, m := range c.Masters {
		addrs[i] = m.Addr
	}
	return "redis-cluster://" + strings.Join(addrs, ",")
}

// StartCluster starts a Redis Cluster of three masters (cluster mode on, no persistence, no replicas), joins
// them with redis-cli --cluster create and returns once every node reports cluster_state:ok. It needs
// redis-cli too, as Require says of redis-server.
func StartCluster(tb testing.TB) *Cluster {
	tb.Helper()
	Require(tb)
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		if os.Getenv(storetest.EnvRedisURL) != "" {
			tb.Fatalf("redisproc: redis-cli not found (required when %s is set): %v", storetest.EnvRedisURL, err)
		}
		tb.Skip("redisproc: redis-cli not found")
	}
	c := &Cluster{}
	args := []string{"--cluster", "create"}
	for range 3 {
		m := start(tb, clusterPort, func(dir string, port int) []string {
			return []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir,
				"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"), "--cluster-node-timeout", "2000"}
		})
		c.Masters = append(c.Masters, m)
		args = append(args, m.Addr)
	}
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		tb.Fatalf("redisproc: redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, m := range c.Masters {
		m.WaitFor(tb, "cluster_state:ok", func(ctx context.Context, cl *redis.Client) bool {
			info, err := cl.ClusterInfo(ctx).Result()
			return err == nil && strings.Contains(info, "cluster_state:ok")
		})
	}
	return c
}

// clusterPort returns a free loopback port whose cluster bus port (the port + 10000) is free too, both below
// the ephemeral range so that no outgoing connection takes them meanwhile.
func clusterPort() (int, error) {
	for range 200 {
		p := 20000 + rand.IntN(10000)
		a, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		b, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+10000))
		_ = a.Close()
		if err != nil {
			continue
		}
		_ = b.Close()
		return p, nil
	}
	return 0, errors.New("no free port pair for a cluster node")
}

func sparePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// lockedBuffer keeps a process's output for error messages; safe for concurrent use.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() < 64<<10 {
		b.buf.Write(p)
	}
	return len(p), nil
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	sc := bufio.NewScanner(strings.NewReader(b.buf.String()))
	var last []string
	for sc.Scan() {
		last = append(last, sc.Text())
		if len(last) > 20 {
			last = last[1:]
		}
	}
	return strings.Join(last, "\n")
}
