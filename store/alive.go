package store

import (
	"context"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// go-redis checks a connection each time it takes one from its pool for a command or a pipeline: it peeks
// at the socket (recvfrom(2) with MSG_PEEK), so that a connection the server closed while it sat idle is
// dropped before it is used. That is a system call on every round trip, though a busy server's connections
// were answered a moment before: 2.7% of the IdP's CPU at 16 logins in flight with the deadline reset that
// goes with it (the reset stays: 0.6%), on a host where system calls are dear.
//
// So a connection that read a reply less than aliveFor ago is taken as alive without the peek, as HikariCP
// does for database connections (aliveBypassWindowMs); one idle for longer is peeked at as before. Only a
// connection the server closed within that window (a restart, CLIENT KILL) goes unnoticed: its command then
// fails with EOF and go-redis sends it again on another connection, as it always has for connections over
// TLS, which it never peeks at. The peek also finds bytes the server sent unasked, which the skip leaves
// for the command's read: a reply that came late cannot be there (go-redis closes a connection after a
// timeout), and a RESP3 push notification (a maintenance notice, where the server sends them) is read and
// handled by go-redis's reader before the command's reply in any case.

// aliveFor is how long after its last reply a connection is taken as alive without a peek.
const aliveFor = time.Second

// aliveHook wraps each connection a client dials (a go-redis hook; commands pass through).
type aliveHook struct {
	window atomic.Int64 // a time.Duration: aliveFor, or what a test sets; 0: always peek
	// peeks and skips count the pool's checks: those passed to the kernel and those answered without it.
	peeks, skips atomic.Int64
}

func (h *aliveHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := next(ctx, network, addr)
		if err != nil {
			return c, err
		}
		sc, ok := c.(syscall.Conn)
		if !ok { // over TLS, or the embedded server's pipe: go-redis does not peek at those
			return c, nil
		}
		return &aliveConn{Conn: c, sys: sc, hook: h}, nil
	}
}

func (h *aliveHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (h *aliveHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// clockStart anchors monotonic time for aliveConn (time.Since reads the monotonic clock).
var clockStart = time.Now()

// aliveConn is a connection to the server that remembers when it last read bytes.
type aliveConn struct {
	net.Conn
	sys      syscall.Conn
	hook     *aliveHook
	lastRead atomic.Int64 // time.Since(clockStart) when a read last returned bytes; 0: never
}

func (c *aliveConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.lastRead.Store(int64(time.Since(clockStart)))
	}
	return n, err
}

// SyscallConn is what go-redis's pool check asks for. Within the window after a reply it is one whose Read
// says "nothing to read, still open" without a system call; otherwise the connection's own.
func (c *aliveConn) SyscallConn() (syscall.RawConn, error) {
	if last := c.lastRead.Load(); last != 0 && time.Since(clockStart)-time.Duration(last) < time.Duration(c.hook.window.Load()) {
		c.hook.skips.Add(1)
		return aliveRaw{c.sys}, nil
	}
	c.hook.peeks.Add(1)
	return c.sys.SyscallConn()
}

// aliveRaw answers Read without calling f: the connection is open and has nothing waiting. Control and
// Write go to the connection.
type aliveRaw struct{ sys syscall.Conn }

func (r aliveRaw) Control(f func(fd uintptr)) error {
	raw, err := r.sys.SyscallConn()
	if err != nil {
		return err
	}
	return raw.Control(f)
}

func (aliveRaw) Read(func(fd uintptr) bool) error { return nil }

func (r aliveRaw) Write(f func(fd uintptr) bool) error {
	raw, err := r.sys.SyscallConn()
	if err != nil {
		return err
	}
	return raw.Write(f)
}
