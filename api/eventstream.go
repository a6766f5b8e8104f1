package api

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/winkk/passport/authn"
)

// A login page's event stream waits for minutes and says one or two words. Holding a goroutine, net/http's
// read and write buffers and a background reader for each would cost some 60 KiB per waiting browser (10,000
// browsers: 600 MB). So once its answer's headers are written, a stream leaves net/http: the handler takes
// the connection over (Hijack) and returns, and the stream is a small record in the hub, woken by the store's
// pub/sub through a callback (authn.Logins.Notify) or by its timer, and served by a few shared workers.
//
// Without a reader, a stream learns that its browser left from a probe (gone): every sweepEvery the hub peeks
// at each connection without waiting, and at once when a new stream finds its cap full (reap); a browser
// that closed its connection has sent FIN. A failed write (the heartbeat every heartbeatEvery) ends a stream
// too.

// heartbeatEvery is how often an idle stream writes a comment: proxies keep it open, and a browser that left
// is noticed.
const heartbeatEvery = 15 * time.Second

// hubWorkers serve the streams' wake-ups and heartbeats.
const hubWorkers = 8

// hubWriteTimeout bounds one write of a stream. Events are a few dozen bytes, so only a client that stopped
// reading with its receive window and our send buffer full ever waits.
const hubWriteTimeout = 5 * time.Second

// sweepEvery is how often the hub looks for browsers that left. A look is one system call per stream, about
// a microsecond.
const sweepEvery = time.Second

// probeFor is how long goneByDeadline reads a connection to learn whether its browser closed it.
const probeFor = time.Millisecond

// eventStream is one waiting browser.
type eventStream struct {
	id, secret string
	keys       []string // the stream caps it counts against
	release    func()   // of the caps
	stop       func()   // of the store subscription

	// conn is the taken-over connection; nil when the stream is served inside its request (fallback), which
	// w and rc then write to.
	conn net.Conn
	// chunked: conn came from a Server.Listener (a *homeConn) and the answer is chunked: the stream's last
	// event ends the answer, and the connection goes back to net/http for the browser's next request. false:
	// the answer ends when the connection closes.
	chunked bool
	head    []byte // the answer's status line and headers, not yet written: they go out with the first write
	w       io.Writer
	rc      *http.ResponseController

	dirty, beat, queued atomic.Bool
	// live: the stream's connection is set up and it is registered, so workers may serve it. The login's
	// subscription comes first; its messages only mark the stream until then, and serve acts on them.
	live atomic.Bool
	// news is the latest message of the login's channel not yet acted on (see authn.LoginChange).
	news atomic.Pointer[string]

	mu     sync.Mutex // guards what follows, and serializes writes
	last   string     // the state last sent
	closed bool
	timer  *time.Timer   // expiry of the login, or a retry after a store error
	done   chan struct{} // closed when the stream ends
}

// hub holds the event streams of a Server.
type hub struct {
	s *Server

	regMu sync.Mutex
	all   map[*eventStream]struct{}
	byKey map[string]map[*eventStream]struct{}

	qMu   sync.Mutex
	qCond *sync.Cond
	queue []*eventStream
	quit  bool
}

func newHub(s *Server) *hub {
	h := &hub{s: s, all: map[*eventStream]struct{}{}, byKey: map[string]map[*eventStream]struct{}{}}
	h.qCond = sync.NewCond(&h.qMu)
	for range hubWorkers {
		go h.work()
	}
	go h.run()
	return h
}

// run writes the heartbeats and, when the server closes, tells every browser to reload.
func (h *hub) run() {
	t := time.NewTicker(heartbeatEvery)
	defer t.Stop()
	sweep := time.NewTicker(sweepEvery)
	defer sweep.Stop()
	for {
		select {
		case <-sweep.C:
			h.reap("")
		case <-t.C:
			for _, st := range h.snapshot("") {
				st.beat.Store(true)
				h.enqueue(st)
			}
		case <-h.s.closing:
			for _, st := range h.snapshot("") {
				h.send(st, "reload", "shutdown")
				h.end(st)
			}
			h.qMu.Lock()
			h.quit = true
			h.qCond.Broadcast()
			h.qMu.Unlock()
			return
		}
	}
}

// snapshot returns the streams counted under key ("" for all).
func (h *hub) snapshot(key string) []*eventStream {
	h.regMu.Lock()
	defer h.regMu.Unlock()
	set := h.all
	if key != "" {
		set = h.byKey[key]
	}
	out := make([]*eventStream, 0, len(set))
	for st := range set {
		out = append(out, st)
	}
	return out
}

// mark says that st's login may have changed. It never blocks: it is called by the store's pub/sub reader.
// A stream not yet served is only marked: serve looks at it once it can be written to.
func (h *hub) mark(st *eventStream) {
	st.dirty.Store(true)
	if st.live.Load() {
		h.enqueue(st)
	}
}

func (h *hub) enqueue(st *eventStream) {
	if !st.queued.CompareAndSwap(false, true) {
		return
	}
	h.qMu.Lock()
	h.queue = append(h.queue, st)
	h.qMu.Unlock()
	h.qCond.Signal()
}

func (h *hub) work() {
	for {
		h.qMu.Lock()
		for len(h.queue) == 0 && !h.quit {
			h.qCond.Wait()
		}
		if h.quit {
			h.qMu.Unlock()
			return
		}
		st := h.queue[0]
		h.queue[0] = nil
		h.queue = h.queue[1:]
		if len(h.queue) == 0 {
			h.queue = nil // let the backing array go after a burst
		}
		h.qMu.Unlock()
		st.queued.Store(false)
		if st.dirty.Swap(false) {
			h.check(st)
		}
		if st.beat.Swap(false) {
			if err := h.write(st, ": keep-alive\n\n"); err != nil {
				h.end(st)
			}
		}
	}
}

// check sends st's login's state if it changed; the stream ends once the login no longer waits. The state
// comes from the latest message of the login's channel when that says it (the login as written), else from
// reading the login (its expiry timer, a re-established connection).
func (h *hub) check(st *eventStream) {
	if msg := st.news.Swap(nil); msg != nil {
		if c, ok := authn.ParseLoginChange(*msg); ok {
			h.show(st, c)
			return
		}
	}
	ctx, cancel := h.s.storeCtx(context.Background())
	defer cancel()
	l, err := h.s.svc.Logins.Get(ctx, st.id, st.secret)
	switch {
	case errors.Is(err, authn.ErrNotFound) || errors.Is(err, authn.ErrForbidden):
		h.send(st, "reload", "gone")
		h.end(st)
		return
	case err != nil:
		// The store is out of reach for now: the login is not gone. Keep the page waiting and look again; a
		// pub/sub connection re-established also wakes the stream.
		h.s.log.Warn("login events: store unavailable; retrying", "login", st.id, "err", err)
		h.after(st, recheckEvery)
		return
	}
	h.show(st, authn.ChangeOf(l))
}

// show sends the state of c, the login as it stands, if it is not the one last sent; it ends the stream once
// the login no longer waits, else wakes it at the login's expiry.
func (h *hub) show(st *eventStream, c authn.LoginChange) {
	now := h.s.cfg.Clock()
	state := c.Current(now)
	st.mu.Lock()
	was := st.last
	changed := string(state) != was
	st.last = string(state)
	st.mu.Unlock()
	final := state != authn.StateIdentify && state != authn.StatePending
	if changed {
		var err error
		if final {
			err = h.finish(st, "state", string(state))
		} else {
			err = h.send(st, "state", string(state))
		}
		if err != nil {
			h.end(st)
			return
		}
		if was == string(authn.StatePending) && (state == authn.StateApproved || state == authn.StateDenied) && !c.DecidedAt.IsZero() {
			// The page was waiting when the phone answered: how long this server took to tell it.
			h.s.metrics.told.WithLabelValues(string(state)).Observe(max(h.s.cfg.Clock().Sub(c.DecidedAt), 0).Seconds())
		}
	}
	if final {
		h.end(st)
		return
	}
	h.after(st, c.ExpiresAt.Sub(now))
}

// after wakes st after d (its login's expiry, or a retry).
func (h *hub) after(st *eventStream, d time.Duration) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return
	}
	if st.timer == nil {
		st.timer = time.AfterFunc(d, func() { h.mark(st) })
		return
	}
	st.timer.Reset(d)
}

func (h *hub) send(st *eventStream, event, data string) error {
	return h.write(st, "event: "+event+"\ndata: "+data+"\n\n")
}

// write sends text at once; an error means the client is gone or stopped reading.
func (h *hub) write(st *eventStream, text string) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return net.ErrClosed
	}
	return st.writeLocked(text, false)
}

// finish sends the stream's last event and ends the stream: its connection goes back to net/http when it
// can (chunked), else it is closed. An error means the event was not sent; the stream has ended either way.
func (h *hub) finish(st *eventStream, event, data string) error {
	return h.close(st, "event: "+event+"\ndata: "+data+"\n\n")
}

// writeLocked writes text, and the answer's end when last, in one system call. Called with st.mu held.
func (st *eventStream) writeLocked(text string, last bool) error {
	if st.conn == nil {
		_ = st.rc.SetWriteDeadline(time.Now().Add(hubWriteTimeout))
		if _, err := io.WriteString(st.w, text); err != nil {
			return err
		}
		return st.rc.Flush()
	}
	_ = st.conn.SetWriteDeadline(time.Now().Add(hubWriteTimeout))
	if st.head == nil && !st.chunked {
		_, err := io.WriteString(st.conn, text)
		return err
	}
	b := make([]byte, 0, len(st.head)+len(text)+16)
	b = append(b, st.head...)
	st.head = nil
	if !st.chunked {
		b = append(b, text...)
	} else {
		b = strconv.AppendInt(b, int64(len(text)), 16)
		b = append(b, "\r\n"...)
		b = append(b, text...)
		b = append(b, "\r\n"...)
		if last {
			b = append(b, "0\r\n\r\n"...)
		}
	}
	_, err := st.conn.Write(b)
	return err
}

// add registers st under its keys.
func (h *hub) add(st *eventStream) {
	h.regMu.Lock()
	defer h.regMu.Unlock()
	h.all[st] = struct{}{}
	for _, k := range st.keys {
		if h.byKey[k] == nil {
			h.byKey[k] = map[*eventStream]struct{}{}
		}
		h.byKey[k][st] = struct{}{}
	}
}

// end closes st once: its connection, subscription, timer and caps. Never called with a hub lock held (the
// subscription's stop takes the store's pub/sub lock, under which mark runs).
func (h *hub) end(st *eventStream) { _ = h.close(st, "") }

// close ends st once, after writing last when it is not empty: its subscription, timer and caps, and its
// connection, handed back to net/http when last was written and ends a chunked answer, else closed.
func (h *hub) close(st *eventStream, last string) error {
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return net.ErrClosed
	}
	st.closed = true
	if st.timer != nil {
		st.timer.Stop()
	}
	var err error
	if last != "" {
		err = st.writeLocked(last, true)
	}
	if st.conn != nil {
		if err != nil || last == "" || !st.chunked || !st.giveBack() {
			_ = st.conn.Close()
		}
	}
	st.mu.Unlock()
	h.regMu.Lock()
	delete(h.all, st)
	for _, k := range st.keys {
		if set := h.byKey[k]; set != nil {
			delete(set, st)
			if len(set) == 0 {
				delete(h.byKey, k)
			}
		}
	}
	h.regMu.Unlock()
	st.stop()
	st.release()
	close(st.done)
	return err
}

// giveBack hands the stream's connection, its answer complete, to net/http for the next request. Called with
// st.mu held, once st is closed.
func (st *eventStream) giveBack() bool {
	if err := st.conn.SetDeadline(time.Time{}); err != nil {
		return false
	}
	hc := st.conn.(*homeConn) // chunked only on one
	return hc.home.giveBack(hc)
}

// reap ends the streams under key ("" for all) whose browser has closed its connection, and says how many
// it ended.
func (h *hub) reap(key string) int {
	n := 0
	for _, st := range h.snapshot(key) {
		if st.conn != nil && st.gone() {
			h.end(st)
			n++
		}
	}
	return n
}

// gone probes whether the browser of a stream still open closed its connection. The probe runs under st.mu:
// a stream that has ended may have handed its connection back to net/http, which then reads it.
func (st *eventStream) gone() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return !st.closed && gone(st.conn)
}

// goneByDeadline says whether the peer of conn has closed it, reading for at most probeFor: where a peek
// without waiting is not available.
func goneByDeadline(conn net.Conn) bool {
	var b [1]byte
	_ = conn.SetReadDeadline(time.Now().Add(probeFor))
	_, err := conn.Read(b[:])
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// serve takes the stream over from net/http and returns, leaving the stream to the hub, which writes the
// answer's headers on the connection itself with the first event. Where the connection cannot be taken over (HTTP/2), the stream is
// served inside the request, which then waits until it ends.
func (h *hub) serve(c echo.Context, st *eventStream) error {
	hdr := c.Response().Header()
	hdr.Set(echo.HeaderContentType, "text/event-stream")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Accel-Buffering", "no")
	st.done = make(chan struct{})
	conn, brw, err := http.NewResponseController(c.Response()).Hijack()
	if err != nil {
		return h.serveInline(c, st)
	}
	req := c.Request()
	if _, ok := conn.(*homeConn); ok && brw.Reader.Buffered() == 0 && req.ProtoAtLeast(1, 1) && !req.Close {
		// The answer is chunked: its last chunk ends it, and the connection serves the next request.
		hdr.Set("Transfer-Encoding", "chunked")
		st.chunked = true
	} else {
		// The answer has no length: it ends when the connection closes. (Bytes the browser sent after its
		// request, already read by net/http, are not served.)
		hdr.Set("Connection", "close")
	}
	st.conn = conn
	_ = conn.SetDeadline(time.Time{})
	// The status line and headers go out with the first event, in one write: Header.Write on the bare
	// connection would make four system calls of every header line.
	var head bytes.Buffer
	head.WriteString("HTTP/1.1 200 OK\r\n")
	_ = hdr.Write(&head) // a bytes.Buffer takes every write
	head.WriteString("\r\n")
	st.head = head.Bytes()
	h.add(st)
	st.live.Store(true)
	h.mark(st)
	return nil
}

func (h *hub) serveInline(c echo.Context, st *eventStream) error {
	w := c.Response()
	st.w, st.rc = w, http.NewResponseController(w)
	w.WriteHeader(http.StatusOK)
	h.add(st)
	st.live.Store(true)
	h.mark(st)
	select {
	case <-st.done:
	case <-c.Request().Context().Done():
		h.end(st)
	}
	return nil
}
