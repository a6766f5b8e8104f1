package api

import (
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"time"
)

// A login page's event stream leaves net/http (see hub), and used to end by closing its connection: the
// browser then opened a new one for the page that follows, which on an HTTP/1.1 browser, or a load balancer
// keeping connections to the IdP, is a connection set up and torn down for every sign-in (about 3% of the
// IdP's CPU per login at saturation, in accept(2), close(2) and net/http's set-up of a connection). So a
// stream taken over from a connection of a Listener is written with chunked encoding, ends with the last
// chunk, and hands its connection back to net/http through that Listener, whose Accept returns it to be
// served again, as net/http serves a kept-alive connection's next request.

// Listener wraps ln, the listener the http.Server serving s serves: connections it accepts can be handed
// back by the login page's event streams once they end, and Accept returns them again. Close closes ln and
// every connection handed back and not yet taken.
func (s *Server) Listener(ln net.Listener) net.Listener {
	l := &reuseListener{Listener: ln, back: make(chan net.Conn, reuseBacklog), acc: make(chan net.Conn),
		stopped: make(chan struct{}), closed: make(chan struct{})}
	go l.acceptLoop()
	return l
}

// reuseBacklog is how many handed-back connections may wait for net/http's Accept; past it, a stream closes
// its connection as before.
const reuseBacklog = 256

// reuseListener is what Listener returns.
type reuseListener struct {
	net.Listener
	back    chan net.Conn // handed back, not yet accepted again
	acc     chan net.Conn // accepted by acceptLoop
	stopped chan struct{} // closed when acceptLoop stops, err then says why
	err     error
	closed  chan struct{} // closed by Close

	mu   sync.Mutex // guards shut and sends on back
	shut bool
}

// acceptLoop accepts on the wrapped listener, so that Accept can wait for a new connection and a handed-back
// one at once. It stops on the wrapped listener's first error, which Accept then returns: net/http's Serve
// gives up on an error that is not temporary, and a temporary one (too many open files) is retried here,
// after a pause, as Serve would.
func (l *reuseListener) acceptLoop() {
	defer close(l.stopped)
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			var t interface{ Temporary() bool }
			if errors.As(err, &t) && t.Temporary() {
				select {
				case <-time.After(acceptRetry):
					continue
				case <-l.closed:
					return
				}
			}
			l.err = err
			return
		}
		select {
		case l.acc <- &homeConn{Conn: c, home: l}:
		case <-l.closed:
			_ = c.Close()
			return
		}
	}
}

// acceptRetry is the pause after a temporary Accept error (net/http's first).
const acceptRetry = 5 * time.Millisecond

// Accept returns a handed-back connection first, when one waits (its browser's next request is on its way),
// else whichever comes: a handed-back one or a new one.
func (l *reuseListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.back:
		return c, nil
	default:
	}
	select {
	case c := <-l.back:
		return c, nil
	case c := <-l.acc:
		return c, nil
	case <-l.stopped:
		if l.err == nil {
			return nil, net.ErrClosed
		}
		return nil, l.err
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// Close closes the wrapped listener and the connections handed back and not taken again.
func (l *reuseListener) Close() error {
	l.mu.Lock()
	first := !l.shut
	l.shut = true
	l.mu.Unlock()
	if first {
		close(l.closed)
	}
	err := l.Listener.Close()
	for {
		select {
		case c := <-l.back:
			_ = c.(*homeConn).Conn.Close()
		default:
			if !first {
				return nil
			}
			return err
		}
	}
}

// giveBack hands c, idle and between requests, to Accept; false when the listener is closed or its backlog is
// full (the caller then closes c).
func (l *reuseListener) giveBack(c *homeConn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.shut {
		return false
	}
	select {
	case l.back <- c:
		return true
	default:
		return false
	}
}

// homeConn is a connection accepted by a reuseListener, which it can be handed back to. It keeps the wrapped
// connection's system-call access (the hub's probe peeks at it) and half-close (net/http's graceful close).
type homeConn struct {
	net.Conn
	home *reuseListener
}

func (c *homeConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.ErrUnsupported
	}
	return sc.SyscallConn()
}

func (c *homeConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// ReadFrom keeps the wrapped connection's (sendfile and splice for a TCP connection) for net/http's copies.
func (c *homeConn) ReadFrom(r io.Reader) (int64, error) { return io.Copy(c.Conn, r) }
