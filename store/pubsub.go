package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Channels are named prefix+"ch:"+channel.
func (s *Store) channelName(ch string) string { return s.prefix + "ch:" + ch }

// subscriptionBuffer is how many undelivered messages a subscriber may have
// queued before the forwarding goroutine blocks.
const subscriptionBuffer = 64

// Publish sends msg to every current subscriber of channel. Pub/sub is
// fire-and-forget: with no subscriber the message is lost. Use it for
// "something changed, look again" signals, not for data.
func (s *Store) Publish(ctx context.Context, channel, msg string) error {
	if err := s.rdb.Publish(ctx, s.channelName(channel), msg).Err(); err != nil {
		return fmt.Errorf("store: publish: %w", err)
	}
	return nil
}

// Subscribe returns a channel of messages published to any of channels and a
// cancel func. The subscription is confirmed by the server before Subscribe
// returns, so a Publish that starts after it is never missed. The message
// channel is closed after cancel is called or ctx is done; cancel is
// idempotent and waits for the subscription to be released.
func (s *Store) Subscribe(ctx context.Context, channels ...string) (<-chan string, func(), error) {
	if len(channels) == 0 {
		return nil, nil, errors.New("store: subscribe: no channels")
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("store: subscribe: %w", err)
	}
	names := make([]string, len(channels))
	for i, c := range channels {
		names[i] = s.channelName(c)
	}
	ps := s.rdb.Subscribe(ctx, names...)
	// Wait for one confirmation per channel (SUBSCRIBE replies once per channel).
	pending := make(map[string]bool, len(names))
	for _, n := range names {
		pending[n] = true
	}
	var early []string // messages on channels confirmed before the last confirmation
	for len(pending) > 0 {
		m, err := ps.Receive(ctx)
		if err != nil {
			_ = ps.Close()
			return nil, nil, fmt.Errorf("store: subscribe %s: %w", strings.Join(channels, ","), err)
		}
		switch m := m.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				delete(pending, m.Channel)
			}
		case *redis.Message:
			early = append(early, m.Payload)
		}
	}

	out := make(chan string, subscriptionBuffer)
	done := make(chan struct{})
	finished := make(chan struct{})
	in := ps.Channel()
	go func() {
		defer close(finished)
		defer close(out)
		for _, p := range early {
			select {
			case out <- p:
			case <-done:
				return
			case <-ctx.Done():
				return
			}
		}
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case m, ok := <-in:
				if !ok {
					return
				}
				select {
				case out <- m.Payload:
				case <-done:
					return
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	var once sync.Once
	cancel := func() {
		once.Do(func() {
			close(done)
			_ = ps.Close()
			<-finished
		})
	}
	// Release the connection when ctx ends even if the caller never cancels.
	go func() {
		select {
		case <-ctx.Done():
			cancel()
		case <-done:
		}
	}()
	return out, cancel, nil
}
