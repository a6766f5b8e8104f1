//go:build unix

package api

import (
	"errors"
	"net"
	"syscall"
)

// gone says whether the peer of conn has closed it (or reset it), without waiting and without consuming
// anything: one recv with MSG_PEEK|MSG_DONTWAIT. A browser's event stream sends nothing after its request, so
// anything readable there is its FIN.
func gone(conn net.Conn) bool {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return goneByDeadline(conn)
	}
	raw, err := sc.SyscallConn()
	if errors.Is(err, errors.ErrUnsupported) { // a wrapper (homeConn) of a connection without a descriptor
		return goneByDeadline(conn)
	}
	if err != nil {
		return true
	}
	var closed bool
	var b [1]byte
	err = raw.Read(func(fd uintptr) bool {
		n, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case rerr == nil:
			closed = n == 0 // 0 bytes: end of stream
		case errors.Is(rerr, syscall.EAGAIN) || errors.Is(rerr, syscall.EINTR):
		default:
			closed = true // reset, or the descriptor is gone
		}
		return true // never wait for readiness
	})
	return closed || err != nil
}
