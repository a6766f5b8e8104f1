package store_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/winkk/passport/store"
	"github.com/winkk/passport/store/storetest/redisproc"
)

// TestUnavailableClassifies: errors that mean "the store cannot serve this now" are told apart from refusals
// and from a caller that went away, through any wrapping.
func TestUnavailableClassifies(t *testing.T) {
	t.Parallel()
	wrap := func(err error) error { return fmt.Errorf("authn: get login: %w", fmt.Errorf("store: get: %w", err)) }
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{}}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"not found", wrap(store.ErrNotFound), false},
		{"conflict", wrap(store.ErrConflict), false},
		{"index full", wrap(&store.IndexFullError{Index: "x"}), false},
		{"caller went away", wrap(context.Canceled), false},
		{"deadline", wrap(context.DeadlineExceeded), true},
		{"connection refused", wrap(syscall.ECONNREFUSED), true},
		{"connection reset", wrap(syscall.ECONNRESET), true},
		{"dial failed", wrap(refused), true},
		{"all sentinels unreachable", wrap(errors.New("redis: all sentinels specified in configuration are unreachable")), true},
		{"some other failure", wrap(errors.New("ERR wrong number of arguments")), false},
	}
	for _, tt := range tests {
		if got := store.Unavailable(tt.err); got != tt.want {
			t.Errorf("%s: Unavailable(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

// TestUnavailableFromRealServers: what a real server says when it cannot serve — a write to a replica
// (READONLY, as during a failover before the client follows the new master), a port nobody listens on, a
// server stopped — is classified as unavailable; a missing record is not.
func TestUnavailableFromRealServers(t *testing.T) {
	t.Parallel()
	master := redisproc.Start(t)
	replica := redisproc.StartReplica(t, master)
	ctx := context.Background()

	onReplica := mustOpen(t, replica.URL())
	err := onReplica.SetValue(ctx, "k", "v", time.Minute)
	if err == nil || !store.Unavailable(err) {
		t.Errorf("a write to a replica: %v; want an unavailable error", err)
	}
	if _, err := onReplica.GetValue(ctx, "missing"); !errors.Is(err, store.ErrNotFound) || store.Unavailable(err) {
		t.Errorf("a missing key on the replica: %v; want ErrNotFound, not unavailable", err)
	}

	onMaster := mustOpen(t, master.URL())
	master.Kill()
	dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := onMaster.SetValue(dctx, "k", "v", time.Minute); err == nil || !store.Unavailable(err) {
		t.Errorf("a write to a killed master: %v; want an unavailable error", err)
	}
}

// TestDeadlineDuringPause: a command to a stalled server (CLIENT PAUSE) ends at its context's deadline, not
// when the stall ends, and its error is classified as unavailable. Before the clients were made with
// ContextTimeoutEnabled, a 2s deadline was ignored for as long as the pause lasted.
func TestDeadlineDuringPause(t *testing.T) {
	t.Parallel()
	srv := redisproc.Start(t)
	st := mustOpen(t, srv.URL())
	ctx := context.Background()
	if err := st.SetValue(ctx, "k", "v", time.Minute); err != nil {
		t.Fatal(err)
	}
	const pause = 5 * time.Second
	srv.Pause(t, pause) // the server is killed at cleanup, pause or not

	for _, op := range []struct {
		name string
		do   func(context.Context) error
	}{
		{"ping", st.Ping},
		{"read", func(ctx context.Context) error { _, err := st.GetValue(ctx, "k"); return err }},
		{"write", func(ctx context.Context) error { return st.SetValue(ctx, "k", "w", time.Minute) }},
	} {
		dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		start := time.Now()
		err := op.do(dctx)
		took := time.Since(start)
		cancel()
		if err == nil || !store.Unavailable(err) {
			t.Errorf("%s during a pause: %v; want an unavailable error", op.name, err)
		}
		// A bound, not a timing: the pause lasts 5s, and the answer must come long before it ends.
		if took > pause/3 {
			t.Errorf("%s with a 300ms deadline during a %v pause took %v", op.name, pause, took)
		}
	}
}

// mustOpen opens a store on a server of the test's own (nothing to purge: the server dies with the test).
func mustOpen(t *testing.T, url string) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := store.Open(ctx, store.Options{URL: url, Prefix: "t:"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// TestReplicaAck: with replica_ack, a write made WithReplicaAck returns only once the replica has it (read
// from the replica right after, it is there), costs no extra round trip, and stands when no replica
// acknowledges in time (counted, not refused).
func TestReplicaAck(t *testing.T) {
	t.Parallel()
	master := redisproc.Start(t)
	replica := redisproc.StartReplica(t, master)
	ctx := context.Background()
	st := mustOpen(t, master.URL()+"?replica_ack=1&replica_ack_timeout=2s")
	tbl := store.NewTable[benchRecord](st, "acked")
	fromReplica := mustOpen(t, replica.URL())
	replicaTbl := store.NewTable[benchRecord](fromReplica, "acked")
	for i := range 20 {
		id := fmt.Sprintf("r%d", i)
		if err := tbl.Put(store.WithReplicaAck(ctx), id, benchRecord{State: "approved", N: i}, time.Minute); err != nil {
			t.Fatal(err)
		}
		if got, err := replicaTbl.Get(ctx, id); err != nil || got.N != i {
			t.Fatalf("record %s read from the replica right after an acknowledged write: %+v %v", id, got, err)
		}
	}
	if st.Stats().ReplicaAckMissed != 0 {
		t.Errorf("%d writes missed their acknowledgement with the replica up", st.Stats().ReplicaAckMissed)
	}
	before := st.Stats()
	if err := tbl.Put(store.WithReplicaAck(ctx), "x", benchRecord{}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if d := st.Stats().RoundTrips - before.RoundTrips; d != 1 {
		t.Errorf("an acknowledged write took %d round trips, want 1", d)
	}

	replica.Kill()
	alone := mustOpen(t, master.URL()+"?replica_ack=1&replica_ack_timeout=50ms")
	if err := store.NewTable[benchRecord](alone, "acked").Put(store.WithReplicaAck(ctx), "y", benchRecord{}, time.Minute); err != nil {
		t.Fatalf("a write no replica acknowledges: %v; want it to stand", err)
	}
	if alone.Stats().ReplicaAckMissed != 1 {
		t.Errorf("ReplicaAckMissed = %d, want 1", alone.Stats().ReplicaAckMissed)
	}
}

// BenchmarkReplicaAck measures what waiting for the replica costs a write (a master and a replica on loopback):
// the same Change, with and without WithReplicaAck.
func BenchmarkReplicaAck(b *testing.B) {
	master := redisproc.Start(b)
	redisproc.StartReplica(b, master)
	st := redisproc.Open(b, master.URL()+"?replica_ack=1&replica_ack_timeout=1s")
	tbl := store.NewTable[benchRecord](st, "bench")
	ctx := context.Background()
	if err := tbl.Put(ctx, "r", benchRecord{}, time.Hour); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		ctx  context.Context
	}{{"async", ctx}, {"replica-ack", store.WithReplicaAck(ctx)}} {
		b.Run(bc.name, func(b *testing.B) {
			before := st.Stats()
			for b.Loop() {
				if _, err := tbl.Update(bc.ctx, "r", func(r benchRecord) (benchRecord, error) { r.N++; return r, nil }); err != nil {
					b.Fatal(err)
				}
			}
			after := st.Stats()
			b.ReportMetric(float64(after.RoundTrips-before.RoundTrips)/float64(b.N), "rtt/op")
			b.ReportMetric(float64(after.Commands-before.Commands)/float64(b.N), "cmds/op")
		})
	}
}
