package push

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Message is one push to one device. Only the challenge ID travels as data, plus a generic alert:
// nothing sensitive passes through FCM.
type Message struct {
	Token       string        // the device's FCM registration token
	ChallengeID string        // opaque ID the phone exchanges for the challenge over the device API
	Title, Body string        // generic alert, e.g. "Sign-in request", "Open Passport to review a sign-in"
	TTL         time.Duration // the challenge's remaining life; the push is never retried past it
}

// Sender delivers one Message. Implementations are safe for concurrent use and own their retries:
// the error returned is final. It is nil on delivery to FCM (not to the phone), and otherwise
// matches (errors.Is) ErrTokenDead, ErrQuota, ErrUnavailable, ErrExpired, ErrInvalidMessage, the
// context's error, or is another wrapped failure.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

var (
	// ErrTokenDead means FCM rejected the registration token for good (UNREGISTERED, an
	// INVALID_ARGUMENT about the token, SENDER_ID_MISMATCH): the caller marks the token dead and
	// stops pushing to it until the device sends a new one. Never retried.
	ErrTokenDead = errors.New("push: registration token is dead")
	// ErrQuota means FCM kept answering QUOTA_EXCEEDED (HTTP 429) after backoff.
	ErrQuota = errors.New("push: fcm quota exceeded")
	// ErrUnavailable means FCM kept failing transiently (UNAVAILABLE, INTERNAL, other 5xx,
	// attempt timeouts, network errors) until the attempts, the TTL or the context ran out.
	ErrUnavailable = errors.New("push: fcm unavailable")
	// ErrExpired means the message's TTL ran out before it could be handed to FCM.
	ErrExpired = errors.New("push: challenge expired before delivery")
	// ErrInvalidMessage means the Message itself is unusable (no token, no challenge ID, TTL <= 0).
	ErrInvalidMessage = errors.New("push: invalid message")
)

// validate checks what every FCM push needs.
func (m Message) validate() error {
	switch {
	case m.Token == "":
		return fmt.Errorf("%w: no registration token", ErrInvalidMessage)
	case m.ChallengeID == "":
		return fmt.Errorf("%w: no challenge id", ErrInvalidMessage)
	case m.TTL <= 0:
		return fmt.Errorf("%w: ttl %v is not positive", ErrInvalidMessage, m.TTL)
	}
	return nil
}

// fanOutLimit bounds the goroutines FanOut runs at once: a user has a handful of devices, and a
// bound keeps a pathological list from opening hundreds of connections to FCM.
const fanOutLimit = 8

// FanOut sends msgs concurrently through s, at most 8 at a time, and returns one error per
// message (nil on success), index-aligned with msgs. Retries are the Sender's (FCM retries each
// message on its own schedule), so one slow or dead device does not hold up the others. FanOut
// returns when every send has returned; a cancelled ctx makes the sends still waiting for a
// slot return ctx's error without calling s.
func FanOut(ctx context.Context, s Sender, msgs []Message) []error {
	errs := make([]error, len(msgs))
	sem := make(chan struct{}, fanOutLimit)
	var wg sync.WaitGroup
	for i := range msgs {
		if err := acquire(ctx, sem); err != nil {
			errs[i] = fmt.Errorf("push: fan out: %w", err)
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = s.Send(ctx, msgs[i])
		})
	}
	wg.Wait()
	return errs
}

// acquire takes a slot unless ctx is done; a done ctx always wins, so a cancelled fan-out calls
// no Sender at all.
func acquire(ctx context.Context, sem chan struct{}) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

var (
	_ Sender = (*FCM)(nil)
	_ Sender = LogSender{}
)
