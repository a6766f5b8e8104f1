//go:build !linux

package main

import (
	"net"
	"time"
)

// stamped returns c as it is: the kernel's receive timestamps are read on Linux only, so here arrivals are not
// known and the report leaves them out.
func stamped(c net.Conn) net.Conn { return c }

// keepStamping has nothing to hold on here.
func keepStamping() (stop func()) { return func() {} }

// arrivalConn is never made here; it exists so that the code asking a connection for its arrivals builds.
type arrivalConn struct{ net.Conn }

func (c *arrivalConn) arrived() (time.Time, bool) { return time.Time{}, false }
