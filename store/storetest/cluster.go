package storetest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Cluster is a Redis Cluster of three masters (no replicas) on loopback
// ports, started by [StartCluster] for one test.
type Cluster struct {
	// Addrs are the masters' host:port.
	Addrs []string
}

// URL is the store URL of the cluster (redis-cluster://a,b,c).
func (c *Cluster) URL() string { return "redis-cluster://" + strings.Join(c.Addrs, ",") }

// clusterMasters is the number of masters StartCluster starts.
const clusterMasters = 3

// StartCluster starts a three-master Redis Cluster (redis-server processes
// with cluster mode on, no persistence, in a temporary directory), joins them
// with redis-cli --cluster create and waits until every node reports
// cluster_state:ok. The processes are stopped when tb ends. It skips tb when
// redis-server or redis-cli is missing, unless EnvRedisURL is set or CI=true
// (a machine meant to run the Redis tests must run this one too): then it
// fails.
func StartCluster(tb testing.TB) *Cluster {
	tb.Helper()
	server, serr := exec.LookPath("redis-server")
	cli, cerr := exec.LookPath("redis-cli")
	if serr != nil || cerr != nil {
		if os.Getenv(EnvRedisURL) != "" || os.Getenv("CI") == "true" {
			tb.Fatalf("storetest: %s or CI=true is set but redis-server/redis-cli are missing: %v %v", EnvRedisURL, serr, cerr)
		}
		tb.Skip("storetest: redis-server or redis-cli not installed")
	}
	dir := tb.TempDir()
	c := &Cluster{}
	for range clusterMasters {
		port := freeClusterPort(tb)
		addr := "127.0.0.1:" + strconv.Itoa(port)
		var logs bytes.Buffer
		cmd := exec.Command(server,
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, fmt.Sprintf("nodes-%d.conf", port)),
			"--cluster-node-timeout", "2000",
			"--save", "", "--appendonly", "no", "--dir", dir)
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			tb.Fatalf("storetest: start redis-server: %v", err)
		}
		tb.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			if tb.Failed() && logs.Len() > 0 {
				tb.Logf("redis-server %s:\n%s", addr, logs.String())
			}
		})
		waitPing(tb, cli, addr)
		c.Addrs = append(c.Addrs, addr)
	}
	args := append([]string{"--cluster", "create"}, c.Addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		tb.Fatalf("storetest: redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, addr := range c.Addrs {
		for {
			host, port, _ := net.SplitHostPort(addr)
			out, err := exec.Command(cli, "-h", host, "-p", port, "cluster", "info").Output()
			if err == nil && strings.Contains(string(out), "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				tb.Fatalf("storetest: cluster node %s not ok: %v\n%s", addr, err, out)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return c
}

// waitPing waits until the server at addr answers PING.
func waitPing(tb testing.TB, cli, addr string) {
	tb.Helper()
	host, port, _ := net.SplitHostPort(addr)
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		out, err := exec.CommandContext(ctx, cli, "-h", host, "-p", port, "ping").Output()
		cancel()
		if err == nil && strings.TrimSpace(string(out)) == "PONG" {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("storetest: redis-server %s does not answer: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freeClusterPort returns a loopback port that is free, as is its cluster bus
// port (the port + 10000), both below the ephemeral range so that no
// outgoing connection takes them meanwhile.
func freeClusterPort(tb testing.TB) int {
	tb.Helper()
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
		return p
	}
	tb.Fatal("storetest: no free port pair for a cluster node")
	return 0
}
