package store_test

import (
	"testing"

	"github.com/winkk/passport/store/storetest"
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
