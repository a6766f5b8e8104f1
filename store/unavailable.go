package store

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"
)

// Unavailable reports whether err says the store could not serve a request for now, as opposed to refusing it
// or failing on it: the server is out of reach (connection refused or reset, a dial or I/O timeout), did not
// answer before the caller's deadline, is closed, is starting up (LOADING), is a replica in the middle of a
// failover (READONLY, MASTERDOWN, NOREPLICAS) or belongs to a Cluster that is resharding or down (CLUSTERDOWN,
// TRYAGAIN), or every Sentinel is out of reach. Trying the same request again a moment later may succeed.
//
// It looks through wrapping (errors.Is/As), so the errors of every Store method can be given to it. A
// cancelled context (the caller went away) is not unavailability.
func Unavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, redis.ErrClosed),
		errors.Is(err, redis.ErrPoolTimeout),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		redis.IsLoadingError(err),
		redis.IsReadOnlyError(err),
		redis.IsMasterDownError(err),
		redis.IsClusterDownError(err),
		redis.IsTryAgainError(err),
		redis.IsNoReplicasError(err),
		redis.IsMaxClientsError(err):
		return true
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return true
	}
	if _, ok := errors.AsType[*net.OpError](err); ok {
		return true // any failure of the connection itself: dial, read, write
	}
	// go-redis reports a Sentinel set it cannot reach, a Cluster without a reachable node and a connection it
	// had to give up in plain text.
	msg := err.Error()
	for _, s := range []string{
		"all sentinels specified in configuration are unreachable",
		"redis: cluster has no nodes",
		"redis: connection is not usable",
		"redis: connection unusable",
	} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
