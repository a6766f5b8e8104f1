package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Channels are named prefix+"ch:"+channel.
func (s *Store) channelName(ch string) string { return s.prefix + "ch:" + ch }

const (
	// subscriptionBuffer is how many undelivered messages a subscriber may
	// have queued; while its buffer is full, newer messages to it are
	// dropped (see [Store.Subscribe]).
	subscriptionBuffer = 64
	// pubsubPingEvery is how often the shared pub/sub connection is pinged
	// to detect a dead peer, and pubsubPingTimeout how long the answer may
	// take before the connection is replaced.
	pubsubPingEvery   = 3 * time.Second
	pubsubPingTimeout = 5 * time.Second
	// pubsubMaxBackoff caps the wait between reconnection attempts.
	pubsubMaxBackoff = time.Second
)

// errClosed is returned by Subscribe on a closed Store.
var errClosed = errors.New("store is closed")

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
// channel is closed after cancel is called, when ctx is done or when the
// Store is closed; cancel is idempotent and returns once the subscription is
// released: its channel is closed, and the UNSUBSCRIBE of the channels
// nobody else in this Store still listens to is queued (cancel does no I/O
// and does not wait for the server). It is an error to pass no channels, or
// a ctx that is already done.
//
// All subscriptions of a Store share one pub/sub connection, opened by the
// first Subscribe: the first subscriber of a channel costs one round trip
// (SUBSCRIBE, awaited), later ones none; the last one to leave sends
// UNSUBSCRIBE. Subscribe waits for the server only as long as ctx allows.
//
// Messages are signals, not data. Each subscriber has a buffer of 64
// messages; while it is full, newer messages for that subscriber are
// dropped, so a slow reader may miss messages but never blocks the others,
// and it always receives at least one message after any Publish made while
// it was subscribed (a full buffer holds one it has not read yet). Messages
// arrive in the order the server published them.
//
// If the connection breaks, it is re-established and every channel is
// subscribed again automatically, but messages published while it was down
// are lost (and a Subscribe in flight at that moment fails). Callers must
// therefore look at the state they wait on again now and then rather than
// rely on a message for every change.
func (s *Store) Subscribe(ctx context.Context, channels ...string) (<-chan string, func(), error) {
	sub := &subscriber{out: make(chan string, subscriptionBuffer)}
	release, err := s.subscribe(ctx, sub, channels)
	if err != nil {
		return nil, nil, err
	}
	// Release the subscription when ctx ends even if the caller never
	// cancels (at once if it already has).
	stop := context.AfterFunc(ctx, release)
	cancel := func() {
		stop()
		release()
	}
	return sub.out, cancel, nil
}

// SubscribeFunc is [Store.Subscribe] for holders of many subscriptions that
// cannot spare a goroutine for each: instead of a channel, fn is called with
// the payload of each message published to any of channels, and once more,
// with "", whenever the shared connection was re-established after a break
// (messages published while it was down are lost, so that call says "look
// again"). fn runs on
// the goroutine that reads the connection, with its lock held: it must
// return at once, without blocking, and must not call cancel.
//
// ctx bounds only the wait for the server's confirmation; the subscription
// lasts until cancel is called (idempotent, no I/O) or the Store is closed.
func (s *Store) SubscribeFunc(ctx context.Context, fn func(payload string), channels ...string) (cancel func(), err error) {
	if fn == nil {
		return nil, errors.New("store: subscribe: nil func")
	}
	return s.subscribe(ctx, &subscriber{fn: fn}, channels)
}

// subscribe registers sub for channels and waits, as long as ctx allows, until
// the server holds every subscription. It returns the idempotent release.
func (s *Store) subscribe(ctx context.Context, sub *subscriber, channels []string) (func(), error) {
	if len(channels) == 0 {
		return nil, errors.New("store: subscribe: no channels")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: subscribe: %w", err)
	}
	fail := func(err error) error {
		return fmt.Errorf("store: subscribe %s: %w", strings.Join(channels, ","), err)
	}
	seen := make(map[string]bool, len(channels))
	for _, c := range channels {
		if n := s.channelName(c); !seen[n] {
			seen[n] = true
			sub.names = append(sub.names, n)
		}
	}
	m, err := s.pubsub()
	if err != nil {
		return nil, fail(err)
	}
	waits, err := m.add(sub)
	if err != nil {
		return nil, fail(err)
	}
	for _, a := range waits {
		select {
		case <-a.done:
			err = a.err
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err != nil {
			m.remove(sub)
			return nil, fail(err)
		}
	}
	var once sync.Once
	return func() { once.Do(func() { m.remove(sub) }) }, nil
}

// pubsub returns the Store's multiplexer, starting it on first use.
func (s *Store) pubsub() (*mux, error) {
	s.psMu.Lock()
	defer s.psMu.Unlock()
	if s.psClosed {
		return nil, errClosed
	}
	if s.mux == nil {
		every, timeout := pubsubPingEvery, pubsubPingTimeout
		if s.psPingEvery > 0 {
			every, timeout = s.psPingEvery, s.psPingTimeout
		}
		s.mux = newMux(s.pubsubClient(), pubsubConnName(s.prefix), every, timeout)
	}
	return s.mux, nil
}

// closePubSub ends the multiplexer, if it was started, closing every
// subscriber's channel. Later Subscribe calls fail.
func (s *Store) closePubSub() {
	s.psMu.Lock()
	m := s.mux
	s.psClosed = true
	s.psMu.Unlock()
	if m != nil {
		m.close()
	}
}

// pubsubConnName is the client name (CLIENT SETNAME) of the Store's pub/sub
// connection: the prefix followed by "pubsub", with characters Redis refuses
// in a name replaced by "_".
func pubsubConnName(prefix string) string {
	return strings.Map(func(r rune) rune {
		if r < '!' || r > '~' {
			return '_'
		}
		return r
	}, prefix) + "pubsub"
}

// mux multiplexes every subscription of a Store over one go-redis PubSub
// (one connection). Callers never do I/O: add and remove queue SUBSCRIBE and
// UNSUBSCRIBE commands, which a writer goroutine sends in queue order
// (consecutive ones of a kind as one command), and a reader goroutine reads
// the connection and hands each message to the local subscribers of its
// channel, without ever blocking on them.
//
// Confirmation. SUBSCRIBE and UNSUBSCRIBE replies come back one per channel,
// in the order the commands were sent. The first local subscriber of a
// channel queues SUBSCRIBE and it, and anyone joining meanwhile, waits on a
// shared attempt that the reader completes when it reads a "subscribe" reply
// for the channel — but only once the replies to every UNSUBSCRIBE of that
// channel queued earlier have been read (topic.unsubs is empty): a
// "subscribe" reply read then means the server holds the subscription and
// keeps it, as no UNSUBSCRIBE is queued while the channel has a local
// subscriber.
//
// Reconnection. go-redis replaces a broken connection and subscribes again
// to every channel it was last told to subscribe (the active topics whose
// SUBSCRIBE was sent). Replies to commands sent on the dead connection never
// come, so when a read or a write reports a connection error, connLost
// forgets the UNSUBSCRIBEs in flight, fails the SUBSCRIBE attempts in flight
// and marks every topic unconfirmed (later subscribers wait for the server
// again). As a safety net against a replacement that reported no error, each
// ping carries its queue number: its reply proves that every command sent
// before it on the live connection has been answered, so older UNSUBSCRIBEs
// still pending were lost and older SUBSCRIBEs of active topics that were
// sent hold.
type mux struct {
	ps      *redis.PubSub
	name    string        // of the connection, best effort
	closing chan struct{} // closed by close
	wake    chan struct{} // (capacity 1) the queue is not empty
	// readerDone and writerDone are closed when the goroutines exit.
	readerDone, writerDone chan struct{}
	// pingEvery and pingTimeout: see pubsubPingEvery.
	pingEvery, pingTimeout time.Duration

	mu     sync.Mutex
	closed bool
	seq    uint64    // numbers the queued commands
	queue  []command // for the writer
	topics map[string]*topic
	losses uint64 // connLost calls
	// lost and ponged are closed and replaced each time connLost runs and
	// a ping is answered (for tests).
	lost, ponged chan struct{}
}

// command is one command for the writer.
type command struct {
	kind  string   // "subscribe", "unsubscribe", "ping" or "setname"
	names []string // channels of (un)subscribe
	seq   uint64
}

// maxBatch caps the channels of one SUBSCRIBE or UNSUBSCRIBE command.
const maxBatch = 1000

// topic is the state of one (prefixed) channel.
type topic struct {
	subs map[*subscriber]struct{}
	// active: the last command queued for the channel is SUBSCRIBE, so
	// go-redis resubscribes it after a reconnection once it is sent. True
	// whenever subs is not empty.
	active bool
	// confirmed: the server holds the subscription.
	confirmed bool
	// attempt is the SUBSCRIBE in flight that new subscribers wait on, nil
	// if none.
	attempt *attempt
	// subSeq is the queue number of the last SUBSCRIBE queued, and sent
	// whether the writer sent it without error.
	subSeq uint64
	sent   bool
	// unsubs are the queue numbers of UNSUBSCRIBEs whose reply is pending,
	// oldest first.
	unsubs []uint64
	// lost: the connection broke while the channel had subscribers, so
	// messages may have been missed; once the server holds the subscription
	// again, its SubscribeFunc subscribers are called to look again.
	lost bool
}

// attempt is one awaited SUBSCRIBE: done is closed when the server confirmed
// it (err nil) or it failed.
type attempt struct {
	done chan struct{}
	err  error
}

func (t *topic) confirm() {
	t.confirmed = true
	if t.lost {
		t.lost = false
		for sub := range t.subs {
			if sub.fn != nil {
				sub.fn("")
			}
		}
	}
	if t.attempt != nil {
		close(t.attempt.done)
		t.attempt = nil
	}
}

func (t *topic) fail(err error) {
	if t.attempt != nil {
		t.attempt.err = err
		close(t.attempt.done)
		t.attempt = nil
	}
}

// subscriber is one Subscribe call.
type subscriber struct {
	names []string // prefixed channel names, distinct
	// Exactly one of out and fn is set: out for Subscribe, fn for
	// SubscribeFunc.
	out chan string
	fn  func(payload string)
	// removed: out is closed and the subscriber is in no topic. Guarded by
	// mux.mu.
	removed bool
}

// signal hands payload to sub without blocking: into its buffer (dropped
// when full) or to its func. Called with mux.mu held.
func (sub *subscriber) signal(payload string) {
	if sub.fn != nil {
		sub.fn(payload)
		return
	}
	select {
	case sub.out <- payload:
	default:
	}
}

// end closes sub's channel, if it has one. Called with mux.mu held, once.
func (sub *subscriber) end() {
	sub.removed = true
	if sub.out != nil {
		close(sub.out)
	}
}

// newMux starts a multiplexer over a new PubSub of client, whose connection
// gets the client name name and is pinged as said by pingEvery and
// pingTimeout. The connection is opened by the first command.
func newMux(client redis.UniversalClient, name string, pingEvery, pingTimeout time.Duration) *mux {
	m := &mux{
		ps:          client.Subscribe(context.Background()),
		name:        name,
		closing:     make(chan struct{}),
		wake:        make(chan struct{}, 1),
		readerDone:  make(chan struct{}),
		writerDone:  make(chan struct{}),
		pingEvery:   pingEvery,
		pingTimeout: pingTimeout,
		topics:      make(map[string]*topic),
		lost:        make(chan struct{}),
		ponged:      make(chan struct{}),
	}
	// Best effort, for CLIENT LIST (again after each reconnection the
	// reader notices). The "OK" reply reaches the reader as a Pong, which it
	// ignores, and an error reply as an error it ignores.
	m.mu.Lock()
	m.enqueue(command{kind: "setname"})
	m.mu.Unlock()
	go m.write()
	go m.read()
	return m
}

// enqueue queues c for the writer and returns its queue number. Called with
// mu held.
func (m *mux) enqueue(c command) uint64 {
	m.seq++
	c.seq = m.seq
	m.queue = append(m.queue, c)
	select {
	case m.wake <- struct{}{}:
	default:
	}
	return c.seq
}

// add registers sub with each of its channels and queues SUBSCRIBE for those
// not yet subscribed nor being subscribed. It returns the attempts sub must
// wait for.
func (m *mux) add(sub *subscriber) ([]*attempt, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errClosed
	}
	var waits []*attempt
	var send []string
	for _, n := range sub.names {
		t := m.topics[n]
		if t == nil {
			t = &topic{subs: make(map[*subscriber]struct{})}
			m.topics[n] = t
		}
		t.subs[sub] = struct{}{}
		if t.confirmed {
			continue
		}
		if t.attempt == nil {
			t.attempt = &attempt{done: make(chan struct{})}
			t.active = true
			send = append(send, n)
		}
		waits = append(waits, t.attempt)
	}
	if len(send) > 0 {
		seq := m.enqueue(command{kind: "subscribe", names: send})
		for _, n := range send {
			t := m.topics[n]
			t.subSeq, t.sent = seq, false
		}
	}
	return waits, nil
}

// remove unregisters sub, closes its channel and queues UNSUBSCRIBE for the
// channels it was the last local subscriber of. Idempotent; a no-op once the
// mux is closed.
func (m *mux) remove(sub *subscriber) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if sub.removed {
		return
	}
	sub.end()
	var send []string
	for _, n := range sub.names {
		t := m.topics[n]
		if t == nil {
			continue
		}
		delete(t.subs, sub)
		if len(t.subs) == 0 && t.active {
			t.active, t.confirmed = false, false
			t.attempt = nil // nobody waits on it any more
			send = append(send, n)
		}
	}
	if len(send) > 0 {
		seq := m.enqueue(command{kind: "unsubscribe", names: send})
		for _, n := range send {
			t := m.topics[n]
			t.unsubs = append(t.unsubs, seq)
		}
	}
}

// write is the writer goroutine.
func (m *mux) write() {
	defer close(m.writerDone)
	// Not a caller's ctx: a cancelled write would make go-redis drop the
	// connection shared by everyone. The client's timeouts bound the calls.
	ctx := context.Background()
	for {
		select {
		case <-m.wake:
		case <-m.closing:
			return
		}
		m.mu.Lock()
		q := m.queue
		m.queue = nil
		m.mu.Unlock()
		for len(q) > 0 {
			c, n := q[0], 1
			names := c.names
			if c.kind == "subscribe" || c.kind == "unsubscribe" {
				for n < len(q) && q[n].kind == c.kind && len(names)+len(q[n].names) <= maxBatch {
					names = append(names[:len(names):len(names)], q[n].names...)
					n++
				}
			}
			batch := q[:n]
			q = q[n:]
			var err error
			switch c.kind {
			case "subscribe":
				err = m.ps.Subscribe(ctx, names...)
			case "unsubscribe":
				err = m.ps.Unsubscribe(ctx, names...)
			case "ping":
				err = m.ps.Ping(ctx, strconv.FormatUint(c.seq, 10))
			case "setname":
				err = m.ps.ClientSetName(ctx, m.name)
			}
			switch {
			case err != nil:
				select {
				case <-m.closing:
					return
				default:
				}
				m.connLost(err)
			case c.kind == "subscribe":
				m.sent(batch)
			}
		}
	}
}

// sent records that the SUBSCRIBE commands of batch went out.
func (m *mux) sent(batch []command) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range batch {
		for _, n := range c.names {
			if t := m.topics[n]; t != nil && t.subSeq == c.seq {
				t.sent = true
			}
		}
	}
}

// connLost handles a broken (and being replaced) connection; see mux.
func (m *mux) connLost(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	err = fmt.Errorf("pub/sub connection lost: %w", err)
	for n, t := range m.topics {
		t.confirmed = false
		t.lost = len(t.subs) > 0
		t.unsubs = nil
		t.fail(err)
		m.gc(n, t)
	}
	m.losses++
	close(m.lost)
	m.lost = make(chan struct{})
}

// gc forgets t (named n) once nothing refers to it. Called with mu held.
func (m *mux) gc(n string, t *topic) {
	if len(t.subs) == 0 && !t.active && len(t.unsubs) == 0 {
		delete(m.topics, n)
	}
}

// close ends the mux: pending Subscribe calls fail, every subscriber's
// channel is closed, and when it returns the connection is closed and the
// goroutines have exited.
func (m *mux) close() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		<-m.readerDone
		<-m.writerDone
		return
	}
	m.closed = true
	for _, t := range m.topics {
		t.fail(errClosed)
		for sub := range t.subs {
			if !sub.removed {
				sub.end()
			}
		}
	}
	m.topics = nil
	m.queue = nil
	m.mu.Unlock()
	close(m.closing)
	_ = m.ps.Close()
	<-m.readerDone
	<-m.writerDone
}

// read is the reader goroutine. It also times the pings.
func (m *mux) read() {
	defer close(m.readerDone)
	ctx := context.Background()
	var (
		pingSeq    uint64 // queue number of the unanswered ping; 0: none
		pingLosses uint64 // m.losses when it was queued
		pingSent   time.Time
		lastPing   = time.Now()
		failures   int
	)
	for {
		m.mu.Lock()
		if pingSeq != 0 && m.losses != pingLosses {
			pingSeq = 0 // the connection it went to is gone
		}
		idle := m.pingEvery - time.Since(lastPing)
		if pingSeq == 0 && idle <= 0 {
			lastPing = time.Now()
			pingSent = lastPing
			pingSeq, pingLosses = m.enqueue(command{kind: "ping"}), m.losses
		}
		m.mu.Unlock()
		var msg any
		var err error
		if pingSeq == 0 {
			// A timeout here leaves the connection alone (go-redis only
			// reconnects on a timeout when no timeout was expected).
			msg, err = m.ps.ReceiveTimeout(ctx, idle) // idle > 0
		} else {
			// The ping is unanswered: if this times out, go-redis replaces
			// the connection.
			dctx, cancel := context.WithDeadline(ctx, pingSent.Add(m.pingTimeout))
			msg, err = m.ps.Receive(dctx)
			cancel()
		}
		if err != nil {
			select {
			case <-m.closing:
				return
			default:
			}
			var ne net.Error
			var re redis.Error
			switch {
			case pingSeq == 0 && errors.As(err, &ne) && ne.Timeout():
				// Idle: time to ping.
			case errors.As(err, &re):
				// An error reply (e.g. to CLIENT SETNAME): the connection is fine.
			default:
				// go-redis has replaced the connection (or will on the next
				// call); name the new one before anyone learns of the loss.
				m.mu.Lock()
				m.enqueue(command{kind: "setname"})
				m.mu.Unlock()
				m.connLost(err)
				pingSeq = 0
				failures++
				if !m.backoff(failures) {
					return
				}
			}
			continue
		}
		failures = 0
		switch msg := msg.(type) {
		case *redis.Message:
			m.deliver(msg.Channel, msg.Payload)
		case *redis.Subscription:
			m.subscription(msg.Kind, msg.Channel)
		case *redis.Pong:
			if pingSeq != 0 && msg.Payload == strconv.FormatUint(pingSeq, 10) {
				m.pong(pingSeq)
				pingSeq = 0
			}
		}
	}
}

// backoff waits before the next reconnection attempt: 100ms doubling up to
// pubsubMaxBackoff. It returns false if the mux closes meanwhile.
func (m *mux) backoff(failures int) bool {
	d := pubsubMaxBackoff
	if failures < 5 {
		d = min(pubsubMaxBackoff, (50*time.Millisecond)<<failures)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-m.closing:
		return false
	}
}

// deliver hands payload to every local subscriber of channel, dropping it
// for those whose buffer is full.
func (m *mux) deliver(channel, payload string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.topics[channel]
	if t == nil {
		return
	}
	for sub := range t.subs {
		sub.signal(payload)
	}
}

// subscription handles a SUBSCRIBE or UNSUBSCRIBE reply; see mux.
func (m *mux) subscription(kind, channel string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.topics[channel]
	if t == nil {
		return
	}
	switch kind {
	case "subscribe":
		if t.active && len(t.unsubs) == 0 {
			t.confirm()
		}
	case "unsubscribe":
		if len(t.unsubs) > 0 {
			t.unsubs = t.unsubs[1:]
		}
		if len(t.unsubs) == 0 {
			t.unsubs = nil
		}
		m.gc(channel, t)
	}
}

// pong handles the reply to the ping queued as number seq; see mux.
func (m *mux) pong(seq uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for n, t := range m.topics {
		i := 0
		for i < len(t.unsubs) && t.unsubs[i] < seq {
			i++
		}
		if i > 0 {
			t.unsubs = t.unsubs[i:]
			if len(t.unsubs) == 0 {
				t.unsubs = nil
			}
		}
		if t.active && !t.confirmed && len(t.unsubs) == 0 && t.sent && t.subSeq < seq {
			t.confirm()
		}
		m.gc(n, t)
	}
	close(m.ponged)
	m.ponged = make(chan struct{})
}
