package store_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/winkk/passport/store"
	"github.com/winkk/passport/store/storetest"
)

// pubsubBackends runs fn against the real Redis server (skipped if none) and
// the embedded store; open returns a fresh store.
func pubsubBackends(t *testing.T, fn func(t *testing.T, open func(t *testing.T) *store.Store)) {
	t.Run("redis", func(t *testing.T) {
		if _, ok := storetest.RedisURL(); !ok {
			t.Skipf("no Redis server: set %s or run one on 127.0.0.1:6379", storetest.EnvRedisURL)
		}
		fn(t, func(t *testing.T) *store.Store { return storetest.OpenRedis(t) })
	})
	t.Run("embedded", func(t *testing.T) {
		fn(t, func(t *testing.T) *store.Store { return storetest.OpenEmbedded(t) })
	})
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// mustSub subscribes to channels, failing tb otherwise; the subscription
// ends with the test at the latest.
func mustSub(tb testing.TB, s *store.Store, channels ...string) (<-chan string, func()) {
	tb.Helper()
	ch, cancel, err := s.Subscribe(context.Background(), channels...)
	if err != nil {
		tb.Fatalf("Subscribe(%q): %v", channels, err)
	}
	tb.Cleanup(cancel)
	return ch, cancel
}

func mustPublish(tb testing.TB, s *store.Store, channel, msg string) {
	tb.Helper()
	if err := s.Publish(context.Background(), channel, msg); err != nil {
		tb.Fatalf("Publish(%q): %v", channel, err)
	}
}

// recvMsg returns the next message on ch; errors (closed, nothing in 10s)
// are returned rather than fatal so that goroutines can use it.
func recvMsg(ch <-chan string) (string, error) {
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	select {
	case m, ok := <-ch:
		if !ok {
			return "", fmt.Errorf("channel closed")
		}
		return m, nil
	case <-timeout.C:
		return "", fmt.Errorf("no message within 10s")
	}
}

func mustRecv(tb testing.TB, ch <-chan string) string {
	tb.Helper()
	m, err := recvMsg(ch)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// mustWait fails tb if done is not closed within 30s (a deadlock).
func mustWait(tb testing.TB, what string, done <-chan struct{}) {
	tb.Helper()
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	select {
	case <-done:
	case <-timeout.C:
		tb.Fatalf("%s did not finish within 30s (deadlock?)", what)
	}
}

// goAll runs fn(0..n-1) in n goroutines started together and closes the
// returned channel when all have returned.
func goAll(n int, fn func(i int)) <-chan struct{} {
	done := make(chan struct{})
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			fn(i)
		})
	}
	close(start)
	go func() {
		wg.Wait()
		close(done)
	}()
	return done
}

func mustConns(tb testing.TB, s *store.Store, want int) {
	tb.Helper()
	n, err := store.PubSubConns(context.Background(), s)
	if err != nil {
		tb.Fatalf("PubSubConns: %v", err)
	}
	if n != want {
		tb.Fatalf("%d pub/sub connections, want %d", n, want)
	}
}

// mustServerSync returns once the server has processed every command the
// store's pub/sub connection sent before: the confirmation of a SUBSCRIBE
// on a fresh channel follows their replies on that one connection. The
// channel is "sync:"+tag.
func mustServerSync(tb testing.TB, s *store.Store, tag string) func() {
	tb.Helper()
	_, cancel := mustSub(tb, s, "sync:"+tag)
	return cancel
}

// TestPubSubSharedConnection: 200 concurrent subscribers of 50 channels
// share one connection (one server-side subscription per channel), and each
// receives its channel's messages and no other.
func TestPubSubSharedConnection(t *testing.T) {
	pubsubBackends(t, func(t *testing.T, open func(t *testing.T) *store.Store) {
		const nSubs, nChans = 200, 50
		s := open(t)
		ctx := testCtx(t)
		chans := make([]<-chan string, nSubs)
		cancels := make([]func(), nSubs)
		errs := make([]error, nSubs)
		mustWait(t, "subscribing", goAll(nSubs, func(i int) {
			chans[i], cancels[i], errs[i] = s.Subscribe(ctx, fmt.Sprint("c", i%nChans))
		}))
		for i, err := range errs {
			if err != nil {
				t.Fatalf("subscriber %d: %v", i, err)
			}
			t.Cleanup(cancels[i])
		}
		mustConns(t, s, 1)
		names := make([]string, nChans)
		for c := range nChans {
			names[c] = fmt.Sprint("c", c)
		}
		numsub, err := store.ServerNumSub(ctx, s, names...)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if numsub[n] != 1 {
				t.Fatalf("PUBSUB NUMSUB %s = %d, want 1 (one shared connection)", n, numsub[n])
			}
		}
		if n := store.LocalTopics(s); n != nChans {
			t.Fatalf("%d local topics, want %d", n, nChans)
		}
		// Interleave channels so that a message routed to the wrong
		// subscriber shows up before the right one.
		for round, kind := range []string{"msg", "end"} {
			for c := range nChans {
				mustPublish(t, s, names[c], fmt.Sprintf("%s%d", kind, c))
			}
			for i, ch := range chans {
				if got, want := mustRecv(t, ch), fmt.Sprintf("%s%d", kind, i%nChans); got != want {
					t.Fatalf("round %d: subscriber %d of %s received %q, want %q", round, i, names[i%nChans], got, want)
				}
			}
		}
		mustConns(t, s, 1)
	})
}

// TestPubSubChurn subscribes and cancels 1000 times from 8 goroutines over
// 4 channels (so the local count of each goes through 0 again and again)
// and checks that no subscription is left behind on the server or locally,
// and that the channels still work.
func TestPubSubChurn(t *testing.T) {
	pubsubBackends(t, func(t *testing.T, open func(t *testing.T) *store.Store) {
		const workers, rounds, nChans = 8, 125, 4
		s := open(t)
		ctx := testCtx(t)
		errs := make([]error, workers)
		mustWait(t, "churn", goAll(workers, func(w int) {
			for r := range rounds {
				channel := fmt.Sprint("churn", (w+r)%nChans)
				ch, cancel, err := s.Subscribe(ctx, channel)
				if err != nil {
					errs[w] = fmt.Errorf("round %d: %w", r, err)
					return
				}
				if r%25 == 0 { // now and then, check the subscription is live
					msg := fmt.Sprintf("w%d-r%d", w, r)
					if err := s.Publish(ctx, channel, msg); err != nil {
						errs[w] = err
					}
					for errs[w] == nil {
						m, err := recvMsg(ch)
						if err != nil {
							errs[w] = fmt.Errorf("round %d: waiting for %s: %w", r, msg, err)
						}
						if m == msg {
							break
						}
					}
				}
				cancel()
				if errs[w] != nil {
					return
				}
			}
		}))
		for w, err := range errs {
			if err != nil {
				t.Fatalf("worker %d: %v", w, err)
			}
		}
		cancelSync := mustServerSync(t, s, "churn")
		got, err := store.ServerChannels(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"sync:churn"}; !slices.Equal(got, want) {
			t.Fatalf("server channels after churn = %q, want %q", got, want)
		}
		if n := store.LocalTopics(s); n != 1 {
			t.Fatalf("%d local topics after churn, want 1 (the sync channel)", n)
		}
		cancelSync()
		for c := range nChans {
			channel := fmt.Sprint("churn", c)
			ch, _ := mustSub(t, s, channel)
			mustPublish(t, s, channel, "still works")
			if m := mustRecv(t, ch); m != "still works" {
				t.Fatalf("%s: received %q", channel, m)
			}
		}
		mustConns(t, s, 1)
	})
}

// TestPubSubReconnect breaks the shared connection: subscriptions survive
// (go-redis resubscribes) and new ones work.
func TestPubSubReconnect(t *testing.T) {
	pubsubBackends(t, func(t *testing.T, open func(t *testing.T) *store.Store) {
		s := open(t)
		ctx := testCtx(t)
		before, _ := mustSub(t, s, "before")
		lost := store.PubSubConnLost(s)
		if err := store.KillPubSubConn(ctx, s); err != nil {
			t.Fatal(err)
		}
		mustWait(t, "noticing the broken connection", lost)
		// Confirmed on the new connection, after the resubscription of
		// "before" that opens it.
		after, _ := mustSub(t, s, "after")
		for _, tc := range []struct {
			channel string
			ch      <-chan string
		}{{"before", before}, {"after", after}} {
			mustPublish(t, s, tc.channel, "hello "+tc.channel)
			if m := mustRecv(t, tc.ch); m != "hello "+tc.channel {
				t.Fatalf("%s: received %q", tc.channel, m)
			}
		}
		if s.Embedded() {
			mustConns(t, s, 2) // dialed twice
		} else {
			mustConns(t, s, 1) // open now
		}
	})
}

// TestPubSubClose: closing the Store closes every subscriber's channel;
// cancel still works and Subscribe fails afterwards.
func TestPubSubClose(t *testing.T) {
	pubsubBackends(t, func(t *testing.T, open func(t *testing.T) *store.Store) {
		// A store of our own: the ones from open are purged at cleanup,
		// which a closed store cannot do.
		u := ""
		if strings.HasSuffix(t.Name(), "/redis") {
			u, _ = storetest.RedisURL()
		}
		s, err := store.Open(t.Context(), store.Options{URL: u, Prefix: storetest.UniquePrefix(t)})
		if err != nil {
			t.Fatal(err)
		}
		ctx := testCtx(t)
		var chans []<-chan string
		var cancels []func()
		for i := range 20 {
			ch, cancel, err := s.Subscribe(ctx, fmt.Sprint("c", i%5), "common")
			if err != nil {
				t.Fatal(err)
			}
			chans = append(chans, ch)
			cancels = append(cancels, cancel)
		}
		cancels[0]()
		mustPublish(t, s, "common", "before close")
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		for _, ch := range chans {
			storetest.WaitClosed(t, ch)
		}
		for _, cancel := range cancels {
			cancel()
		}
		if _, _, err := s.Subscribe(ctx, "c0"); err == nil || !strings.Contains(err.Error(), "closed") {
			t.Fatalf("Subscribe after Close = %v, want a closed-store error", err)
		}
	})
}

// TestPubSubHealthCheck: the shared connection is pinged (and the answers
// recognised) without disturbing the subscriptions; on the embedded store,
// a connection that stops answering is replaced and the subscriptions
// carry on over the new one.
func TestPubSubHealthCheck(t *testing.T) {
	pubsubBackends(t, func(t *testing.T, open func(t *testing.T) *store.Store) {
		s := open(t)
		store.SetPubSubPing(s, 10*time.Millisecond, 200*time.Millisecond)
		ch, _ := mustSub(t, s, "h")
		for range 3 {
			mustWait(t, "a ping answered", store.PubSubPonged(s))
		}
		mustPublish(t, s, "h", "alive")
		if m := mustRecv(t, ch); m != "alive" {
			t.Fatalf("received %q", m)
		}
		mustConns(t, s, 1)
		if !s.Embedded() {
			return
		}
		t.Run("Silent", func(t *testing.T) {
			lost := store.PubSubConnLost(s)
			if err := store.SilencePubSubConn(s); err != nil {
				t.Fatal(err)
			}
			mustWait(t, "replacing the silent connection", lost)
			ch2, _ := mustSub(t, s, "h2")
			for _, tc := range []struct {
				channel string
				ch      <-chan string
			}{{"h", ch}, {"h2", ch2}} {
				mustPublish(t, s, tc.channel, "back "+tc.channel)
				if m := mustRecv(t, tc.ch); m != "back "+tc.channel {
					t.Fatalf("%s: received %q", tc.channel, m)
				}
			}
			mustConns(t, s, 2)
		})
	})
}

// TestSubscribeFunc: a func subscriber is called with each message's payload,
// once more with "" after the shared connection was re-established (it may
// have missed messages meanwhile), and never after cancel.
func TestSubscribeFunc(t *testing.T) {
	pubsubBackends(t, func(t *testing.T, open func(t *testing.T) *store.Store) {
		s := open(t)
		ctx := testCtx(t)
		calls := make(chan string, 16)
		cancel, err := s.SubscribeFunc(ctx, func(payload string) { calls <- payload }, "fn")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cancel)
		called := func(what, want string) {
			t.Helper()
			select {
			case got := <-calls:
				if got != want {
					t.Fatalf("fn called with %q for %s, want %q", got, what, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("fn not called for %s", what)
			}
		}
		mustPublish(t, s, "fn", "one")
		called("a message", "one")

		lost := store.PubSubConnLost(s)
		if err := store.KillPubSubConn(ctx, s); err != nil {
			t.Fatal(err)
		}
		mustWait(t, "noticing the broken connection", lost)
		called("the resubscription after the break", "")
		mustPublish(t, s, "fn", "two")
		called("a message on the new connection", "two")

		for len(calls) > 0 { // nothing more is due; drop any repeat
			<-calls
		}
		cancel()
		mustPublish(t, s, "fn", "three")
		// A channel subscriber of the same channel then receives "four" (and
		// perhaps "three", read from the shared connection after it joined):
		// had fn still been subscribed, it would have been called by then.
		ch, _ := mustSub(t, s, "fn")
		mustPublish(t, s, "fn", "four")
		for m := mustRecv(t, ch); m != "four"; m = mustRecv(t, ch) {
			if m != "three" {
				t.Fatalf("received %q", m)
			}
		}
		select {
		case <-calls:
			t.Fatal("fn called after cancel")
		default:
		}
		if _, err := s.SubscribeFunc(ctx, nil, "x"); err == nil {
			t.Error("SubscribeFunc with a nil func succeeded")
		}
	})
}
