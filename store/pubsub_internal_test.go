package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestSubscribeUnreachable: with the server gone, Subscribe fails (it does
// not wait for ctx to end), again and again.
func TestSubscribeUnreachable(t *testing.T) {
	s := mustNewStore(t, Options{URL: "redis://" + mustClosedPort(t) + "/0"})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for i := range 3 {
		_, _, err := s.Subscribe(ctx, "x")
		if err == nil {
			t.Fatalf("Subscribe #%d to an unreachable server succeeded", i+1)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Subscribe #%d waited for ctx: %v", i+1, err)
		}
	}
}
