package store_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/winkk/passport/store"

	"github.com/winkk/passport/store/storetest"
	"github.com/winkk/passport/store/storetest/redisproc"
)

// TestConformance runs the same suite against the real Redis server (see
// storetest.RedisURL: PASSPORT_TEST_REDIS_URL must work if set; otherwise
// 127.0.0.1:6379 if it answers, else skipped) and against the embedded store.
func TestConformance(t *testing.T) {
	for _, b := range storetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			if b.Name == "redis" {
				if _, ok := storetest.RedisURL(); !ok {
					t.Skipf("no Redis server: set %s or run one on 127.0.0.1:6379", storetest.EnvRedisURL)
				}
			}
			storetest.Run(t, b.Open)
		})
	}
}

// TestConformanceUnixSocket runs the suite against a redis-server of its own reached by its Unix socket, as a
// unix:// URL names it: where Redis runs on the IdP's host, a round trip costs the IdP less CPU that way.
func TestConformanceUnixSocket(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "redis.sock")
	redisproc.Start(t, "--unixsocket", sock, "--unixsocketperm", "700")
	url := "unix://" + sock + "?db=2"
	if got, want := storetest.OpenURL(t, url).Describe(), "redis "+sock+" db 2"; got != want {
		t.Fatalf("the store opened %q, want %q", got, want)
	}
	// The replica_ack options of redis:// URLs apply: with no replica to acknowledge, a write waits for one
	// as long as replica_ack_timeout, stands, and is counted.
	acked := storetest.OpenURL(t, url+"&replica_ack=1&replica_ack_timeout=50ms")
	if err := store.NewTable[benchRecord](acked, "acked").Put(store.WithReplicaAck(t.Context()), "y", benchRecord{}, time.Minute); err != nil {
		t.Fatalf("a write no replica acknowledges: %v; want it to stand", err)
	}
	if n := acked.Stats().ReplicaAckMissed; n != 1 {
		t.Errorf("ReplicaAckMissed = %d over a unix:// URL with replica_ack=1, want 1", n)
	}
	storetest.Run(t, func(t *testing.T) *store.Store { return storetest.OpenURL(t, url) })
}

// TestConformanceCluster runs the suite against a three-master Redis Cluster
// started for the test (see redisproc.StartCluster): a script or MULTI/EXEC
// that touched keys of two slots would fail there.
//
// Left out are the checks of the order in which messages arrive: a Cluster
// delivers in order what one node publishes, but a PUBLISH without a key goes
// to any master and a script publishes from its record's master, and the
// cluster bus relays them to the subscriber's node independently, so two
// messages published through different masters may arrive in either order.
// Passport's messages are signals ("changed": read the record again), whose
// order it never relies on.
func TestConformanceCluster(t *testing.T) {
	t.Parallel()
	c := redisproc.StartCluster(t)
	open := func(t *testing.T) *store.Store { return storetest.OpenURL(t, c.URL()) }
	storetest.RunExcept(t, open, clusterOrderTests)
	t.Run("Spread", func(t *testing.T) { storetest.RunSpread(t, open, spreadClusterOrderTests) })
}

// spreadClusterOrderTests are clusterOrderTests and, for spread tables, the checks that count messages up to
// a marker: each record publishes from its own slot's master there, so its message may come after the marker.
var spreadClusterOrderTests = func() map[string]string {
	m := map[string]string{"ChangeCap": "marker order across masters (each record has its own slot)"}
	for k, v := range clusterOrderTests {
		m[k] = v
	}
	return m
}()

// clusterOrderTests are the conformance checks that assume one total order of
// the messages published through any node (a marker published after a
// message arrives after it), which a Cluster does not give.
var clusterOrderTests = map[string]string{
	"UpdateRaces":                          "marker order across masters",
	"UpdateCanceledContext":                "marker order across masters",
	"UpdateAndPublishConcurrentOneWinner":  "marker order across masters",
	"UpdateAndPublishConcurrentAllApplied": "marker order across masters",
	"Change":                               "marker order across masters",
	"SubscribeShared":                      "message order across channels published through different masters",
	"PubSub":                               "message order across channels published through different masters",
}

// TestConformanceSpread runs the table checks on spread tables laid out as on a Cluster, against one real
// server (Options.Spread), and TestConformanceCluster runs them on a Cluster.
func TestConformanceSpread(t *testing.T) {
	url, ok := storetest.RedisURL()
	if !ok {
		t.Skipf("no Redis server: set %s or run one on 127.0.0.1:6379", storetest.EnvRedisURL)
	}
	storetest.RunSpread(t, func(t *testing.T) *store.Store { return storetest.OpenSpread(t, url) }, nil)
}
