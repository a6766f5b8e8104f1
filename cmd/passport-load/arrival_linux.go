package main

import (
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// stamped turns on the kernel's receive timestamps (SO_TIMESTAMPNS) on c, a TCP connection, and returns it
// reading through recvmsg(2) so that each read keeps the time its last bytes reached this machine. Where the
// option cannot be set, c is returned as it is and its arrivals are not known.
func stamped(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil || askStamps(rc) != nil {
		return c
	}
	return &arrivalConn{Conn: c, rc: rc, oob: make([]byte, unix.CmsgSpace(int(unsafe.Sizeof(unix.Timespec{}))))}
}

// keepStamping holds the kernel's receive timestamps on until stop is called. Linux stamps what arrives only
// while some socket asks for it, and turns that on from a deferred work item after the first one does, so the
// first bytes a newly stamped connection receives may come unstamped. Called before the logins start, it leaves
// the kernel time to turn stamping on, and keeps it on between one connection's close and the next's dial.
func keepStamping() (stop func()) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return func() {}
	}
	if rc, err := pc.(*net.UDPConn).SyscallConn(); err == nil {
		_ = askStamps(rc)
	}
	return func() { _ = pc.Close() }
}

// askStamps sets SO_TIMESTAMPNS on the socket of rc: the kernel then stamps what it receives.
func askStamps(rc syscall.RawConn) error {
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1) }); err != nil {
		return err
	}
	return serr
}

// arrivalConn is a TCP connection that reads with recvmsg(2) and keeps the kernel's receive time of the last
// bytes it read. It embeds net.Conn, not *net.TCPConn, so that no promoted WriteTo or splice reads around it.
type arrivalConn struct {
	net.Conn
	rc   syscall.RawConn
	oob  []byte       // used by one Read at a time, as net.Conn's reads are
	last atomic.Int64 // Unix nanoseconds of the last read's bytes reaching this machine; 0 before any
}

func (c *arrivalConn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	var n, oobn int
	var rerr error
	if err := c.rc.Read(func(fd uintptr) bool {
		n, oobn, _, _, rerr = unix.Recvmsg(int(fd), b, c.oob, 0)
		return rerr != unix.EAGAIN
	}); err != nil {
		return 0, err // the poller's: a deadline passed, or the connection was closed
	}
	if rerr != nil {
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("recvmsg", rerr)}
	}
	if n == 0 {
		return 0, io.EOF
	}
	var ns int64 // unknown: the kernel stamped none of these bytes (see keepStamping)
	if at, ok := receiveTime(c.oob[:oobn]); ok {
		ns = at.UnixNano()
	}
	c.last.Store(ns)
	return n, nil
}

// arrived is when the bytes of the last read reached this machine, as its kernel stamped them; ok is false before
// any read, and after one the kernel did not stamp.
func (c *arrivalConn) arrived() (time.Time, bool) {
	ns := c.last.Load()
	return time.Unix(0, ns), ns != 0
}

// receiveTime finds the SCM_TIMESTAMPNS control message in oob.
func receiveTime(oob []byte) (time.Time, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}, false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= int(unsafe.Sizeof(unix.Timespec{})) {
			ts := (*unix.Timespec)(unsafe.Pointer(&m.Data[0]))
			return time.Unix(ts.Unix()), true
		}
	}
	return time.Time{}, false
}
