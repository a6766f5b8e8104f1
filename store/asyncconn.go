package store

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// asyncWriteConn is a net.Conn whose Write queues the bytes and returns at
// once; a goroutine writes them to the underlying connection in order. It
// gives the embedded server's pipe the one property of a socket that the
// shared pub/sub connection relies on (see Store.embeddedPubSubClient).
// Reads, deadlines for reads and Close go to the underlying connection;
// write deadlines are ignored. After a failed write every Write returns that
// error.
type asyncWriteConn struct {
	net.Conn
	mu      sync.Mutex
	wake    *sync.Cond
	pending []byte
	err     error // sticky write error
	closed  bool
	done    chan struct{} // closed when the writer goroutine exits
	// blackhole makes Write discard its bytes, as if the peer had
	// vanished (tests).
	blackhole atomic.Bool
}

func newAsyncWriteConn(c net.Conn) *asyncWriteConn {
	a := &asyncWriteConn{Conn: c, done: make(chan struct{})}
	a.wake = sync.NewCond(&a.mu)
	go a.writeLoop()
	return a
}

func (a *asyncWriteConn) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.err != nil:
		return 0, a.err
	case a.closed:
		return 0, net.ErrClosed
	}
	if a.blackhole.Load() {
		return len(p), nil
	}
	a.pending = append(a.pending, p...)
	a.wake.Signal()
	return len(p), nil
}

func (a *asyncWriteConn) writeLoop() {
	defer close(a.done)
	var buf []byte
	for {
		a.mu.Lock()
		for len(a.pending) == 0 && !a.closed {
			a.wake.Wait()
		}
		if a.closed {
			a.mu.Unlock()
			return
		}
		buf, a.pending = a.pending, buf[:0]
		a.mu.Unlock()
		if _, err := a.Conn.Write(buf); err != nil {
			a.mu.Lock()
			a.err = err
			a.mu.Unlock()
			return
		}
	}
}

// Close closes the underlying connection (failing a write in progress) and
// waits for the writer goroutine; queued bytes are discarded.
func (a *asyncWriteConn) Close() error {
	a.mu.Lock()
	a.closed = true
	a.wake.Signal()
	a.mu.Unlock()
	err := a.Conn.Close()
	<-a.done
	return err
}

// SetDeadline sets the read deadline only: writes do not block.
func (a *asyncWriteConn) SetDeadline(t time.Time) error { return a.Conn.SetReadDeadline(t) }

// SetWriteDeadline is a no-op: writes do not block.
func (a *asyncWriteConn) SetWriteDeadline(time.Time) error { return nil }
