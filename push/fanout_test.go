package push

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/winkk/passport/push/fcmtest"
)

func TestFanOutFCM(t *testing.T) {
	const devices = 5
	fake := fcmtest.New(t)
	// Hold every answer until all five requests are in flight: a sequential FanOut would never
	// get there and each attempt would end on SendTimeout instead.
	var arrived atomic.Int32
	allIn := make(chan struct{})
	fake.OnSend(func(fcmtest.Message) {
		if arrived.Add(1) == devices {
			close(allIn)
		}
		<-allIn
	})
	fake.Script(func(_ int, m fcmtest.Message) fcmtest.Reply {
		if m.Message.Token == "token-2" {
			return fcmtest.Fail(404, fcmtest.BodyUnregistered)
		}
		return fcmtest.OK
	})
	f := mustFCM(t, testConfig(t, fake, newFakeClock()))

	msgs := make([]Message, devices)
	for i := range msgs {
		msgs[i] = testMessage(fmt.Sprintf("token-%d", i))
	}
	errs := FanOut(context.Background(), f, msgs)
	if len(errs) != devices {
		t.Fatalf("got %d results, want %d", len(errs), devices)
	}
	for i, err := range errs {
		if i == 2 {
			if !errors.Is(err, ErrTokenDead) {
				t.Errorf("result %d = %v, want ErrTokenDead", i, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("result %d = %v, want nil", i, err)
		}
	}
	if got := fake.Attempts(); got != devices {
		t.Errorf("FCM saw %d sends, want %d (no retry of the dead token)", got, devices)
	}
}

// senderFunc adapts a function to Sender.
type senderFunc func(ctx context.Context, m Message) error

func (f senderFunc) Send(ctx context.Context, m Message) error { return f(ctx, m) }

func TestFanOut(t *testing.T) {
	t.Run("no messages", func(t *testing.T) {
		called := false
		errs := FanOut(context.Background(), senderFunc(func(context.Context, Message) error {
			called = true
			return nil
		}), nil)
		if len(errs) != 0 || called {
			t.Errorf("FanOut(nil) = %v, called %v; want empty, not called", errs, called)
		}
	})
	t.Run("results stay aligned with their messages", func(t *testing.T) {
		msgs := make([]Message, 40)
		for i := range msgs {
			msgs[i] = Message{ChallengeID: fmt.Sprint(i)}
		}
		errs := FanOut(context.Background(), senderFunc(func(_ context.Context, m Message) error {
			return errors.New(m.ChallengeID)
		}), msgs)
		for i, err := range errs {
			if err == nil || err.Error() != fmt.Sprint(i) {
				t.Errorf("errs[%d] = %v, want %d", i, err, i)
			}
		}
	})
	t.Run("at most fanOutLimit sends at once", func(t *testing.T) {
		var inFlight, peak atomic.Int32
		entered := make(chan struct{}, 100)
		gate := make(chan struct{})
		s := senderFunc(func(context.Context, Message) error {
			n := inFlight.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			entered <- struct{}{}
			<-gate
			inFlight.Add(-1)
			return nil
		})
		done := make(chan []error)
		go func() { done <- FanOut(context.Background(), s, make([]Message, 3*fanOutLimit)) }()
		for range fanOutLimit {
			<-entered
		}
		close(gate)
		<-done
		if got := peak.Load(); got != fanOutLimit {
			t.Errorf("peak concurrency %d, want %d", got, fanOutLimit)
		}
	})
	t.Run("cancelled context sends nothing", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		var calls atomic.Int32
		errs := FanOut(ctx, senderFunc(func(context.Context, Message) error {
			calls.Add(1)
			return nil
		}), make([]Message, 3))
		for i, err := range errs {
			if !errors.Is(err, context.Canceled) {
				t.Errorf("errs[%d] = %v, want context.Canceled", i, err)
			}
		}
		if calls.Load() != 0 {
			t.Errorf("sender called %d times, want 0", calls.Load())
		}
	})
	t.Run("one slow device does not hold up the others", func(t *testing.T) {
		release := make(chan struct{})
		var mu sync.Mutex
		finished := map[string]bool{}
		others := make(chan struct{}, 2)
		s := senderFunc(func(_ context.Context, m Message) error {
			if m.ChallengeID == "slow" {
				<-release
			} else {
				others <- struct{}{}
			}
			mu.Lock()
			finished[m.ChallengeID] = true
			mu.Unlock()
			return nil
		})
		done := make(chan []error)
		go func() {
			done <- FanOut(context.Background(), s, []Message{{ChallengeID: "slow"}, {ChallengeID: "a"}, {ChallengeID: "b"}})
		}()
		<-others
		<-others // both fast sends ran while the slow one is still blocked
		close(release)
		for i, err := range <-done {
			if err != nil {
				t.Errorf("errs[%d] = %v", i, err)
			}
		}
		if len(finished) != 3 {
			t.Errorf("finished %v, want all three", finished)
		}
	})
}
