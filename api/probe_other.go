//go:build !unix

package api

import "net"

// gone says whether the peer of conn has closed it: see goneByDeadline.
func gone(conn net.Conn) bool { return goneByDeadline(conn) }
