package store

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"
)

// Batch sends several operations to the server in one round trip (a
// pipeline). It is not a transaction: each operation sees the data as it is
// when the server gets to it, exactly as if it had been called on its own,
// and its result is its own. Queue operations with the In methods
// ([Table.GetIn], [Table.ListIndexIn], [Store.GetValueIn], [Store.HitIn],
// [Store.ClaimIn]),
// call Run once, then read each [Result]. A Batch is not safe for concurrent
// use and cannot be reused.
//
// In Cluster mode the operations are grouped by node and sent to the nodes
// in parallel.
type Batch struct {
	ctx    context.Context
	pipe   redis.Pipeliner
	settle []func()
	ran    bool
}

// Batch starts a batch whose operations run under ctx.
func (s *Store) Batch(ctx context.Context) *Batch {
	return &Batch{ctx: ctx, pipe: s.rdb.Pipeline()}
}

// Context is the context the batch's operations run under.
func (b *Batch) Context() context.Context { return b.ctx }

// Run sends the queued operations and settles their results. An operation
// whose script the server had not loaded yet is run again on its own (the
// server did not run it); so is the rest of a large ListIndexIn. Each
// failure, a lost connection included, is reported by its Result.
func (b *Batch) Run() {
	if b.ran {
		panic("store: Batch.Run called twice")
	}
	b.ran = true
	if len(b.settle) > 0 {
		_, _ = b.pipe.Exec(b.ctx) // each command keeps its own error
	}
	for _, f := range b.settle {
		f()
	}
}

// Result is the outcome of one operation of a [Batch], known once the batch
// has run.
type Result[T any] struct {
	v   T
	err error
	set bool
}

// errNotRun is what a Result returns before its Batch has run.
var errNotRun = errors.New("store: batch has not run")

// Get returns the operation's value and error, as the operation called on its
// own would have.
func (r *Result[T]) Get() (T, error) {
	if !r.set {
		var zero T
		return zero, errNotRun
	}
	return r.v, r.err
}

// settle registers decode to produce r's outcome once b has run.
func settle[T any](b *Batch, decode func() (T, error)) *Result[T] {
	if b.ran {
		panic("store: operation queued on a Batch that has run")
	}
	r := &Result[T]{}
	b.settle = append(b.settle, func() { r.v, r.err = decode(); r.set = true })
	return r
}

// noScript reports whether err says the server did not know a script's
// digest (so it did not run it).
func noScript(err error) bool {
	return err != nil && redis.HasErrorPrefix(err, "NOSCRIPT")
}
