package authn

import (
	"context"
	"time"

	"github.com/winkk/passport/store"
)

// A Change is one state change the services made to a record: created, changed or deleted. Every write of
// every service passes through the tables below, which report each change that landed to Config.OnChange:
// the one place where something that must follow every change (the audit log) attaches.
type Change struct {
	Table  string // the record's kind: TableApp, TableUser, ...
	ID     string
	Op     string // OpCreate, OpUpdate or OpDelete
	Before any    // the record as it was (a value of the table's type); nil for a create or when not read
	After  any    // the record as it is now; nil for a delete
}

// The kinds of records (Change.Table).
const (
	TableApp        = "app"
	TableUser       = "user"
	TableDevice     = "device"
	TableInvitation = "invitation"
	TableLogin      = "login"
	TableSession    = "session"
	TableKeys       = "idp"
	// TableConsoleSession holds the admin console's sessions.
	TableConsoleSession = "console_session"
)

// What a Change did (Change.Op).
const (
	OpCreate = "create"
	OpUpdate = "update"
	OpDelete = "delete"
)

// table is a store table whose writes report their changes (see Change). Reads are the store's own.
type table[T any] struct {
	*store.Table[T]
	c *core
}

func newTable[T any](c *core, name string) table[T] {
	return table[T]{Table: store.NewTable[T](c.st, name), c: c}
}

// newSpreadTable is newTable for the records written by every login (logins, sessions): on a Redis Cluster
// they spread over the masters (see store.NewSpreadTable); their index names keep the form kind:email[ rest],
// so that a user's indexes share a slot.
func newSpreadTable[T any](c *core, name string) table[T] {
	return table[T]{Table: store.NewSpreadTable[T](c.st, name), c: c}
}

// changed reports a change that landed.
func (t table[T]) changed(ctx context.Context, id, op string, before, after *T) {
	if t.c.cfg.OnChange == nil {
		return
	}
	ch := Change{Table: t.Name(), ID: id, Op: op}
	if before != nil {
		ch.Before = *before
	}
	if after != nil {
		ch.After = *after
	}
	t.c.cfg.OnChange(ctx, ch)
}

// Create is store.Table.Create, reported.
func (t table[T]) Create(ctx context.Context, id string, v T, ttl time.Duration, indexes ...string) error {
	return t.CreateWith(ctx, id, v, ttl, store.Effects{AddTo: indexes})
}

// CreateWith is store.Table.CreateWith, reported.
func (t table[T]) CreateWith(ctx context.Context, id string, v T, ttl time.Duration, also store.Effects) error {
	err := t.Table.CreateWith(ctx, id, v, ttl, also)
	if err == nil {
		t.changed(ctx, id, OpCreate, nil, &v)
	}
	return err
}

// CreateAdmitted is store.Table.CreateAdmitted, reported when it created the record.
func (t table[T]) CreateAdmitted(ctx context.Context, id string, v T, ttl time.Duration, a store.Admission) (store.Admitted, error) {
	res, err := t.Table.CreateAdmitted(ctx, id, v, ttl, a)
	if err == nil && res.Created {
		t.changed(ctx, id, OpCreate, nil, &v)
	}
	return res, err
}

// CreateIn is store.Table.CreateIn, reported when its result is read, once the batch has run.
func (t table[T]) CreateIn(b *store.Batch, id string, v T, ttl time.Duration, also store.Effects) *createIn[T] {
	return &createIn[T]{t: t, ctx: b.Context(), id: id, v: v, res: t.Table.CreateIn(b, id, v, ttl, also)}
}

// createIn is a create queued in a batch (table.CreateIn).
type createIn[T any] struct {
	t        table[T]
	ctx      context.Context
	id       string
	v        T
	res      *store.Result[bool]
	reported bool
}

// Get is store.Result.Get of the create, which it reports the first time it reads it landed.
func (c *createIn[T]) Get() (inPlace bool, err error) {
	inPlace, err = c.res.Get()
	if err == nil && !c.reported {
		c.reported = true
		c.t.changed(c.ctx, c.id, OpCreate, nil, &c.v)
	}
	return inPlace, err
}

// Put is store.Table.Put, reported (as an update: the record may or may not have existed).
func (t table[T]) Put(ctx context.Context, id string, v T, ttl time.Duration) error {
	err := t.Table.Put(ctx, id, v, ttl)
	if err == nil {
		t.changed(ctx, id, OpUpdate, nil, &v)
	}
	return err
}

// Update is store.Table.Update, reported.
func (t table[T]) Update(ctx context.Context, id string, fn func(old T) (T, error)) (T, error) {
	return t.Change(ctx, id, nil, fn, store.Effects{})
}

// Change is store.Table.Change, reported with the record as fn last saw it. fn may run more than once (see
// store.Table.Change); only the write that landed is reported.
func (t table[T]) Change(ctx context.Context, id string, seen *T, fn func(old T) (T, error), also store.Effects) (T, error) {
	var before T
	v, err := t.Table.Change(ctx, id, seen, func(old T) (T, error) {
		before = old
		return fn(old)
	}, also)
	if err == nil {
		t.changed(ctx, id, OpUpdate, &before, &v)
	}
	return v, err
}

// Delete is store.Table.Delete, reported.
func (t table[T]) Delete(ctx context.Context, id string) error {
	err := t.Table.Delete(ctx, id)
	if err == nil {
		t.changed(ctx, id, OpDelete, nil, nil)
	}
	return err
}

// Take is store.Table.Take, reported as a delete of the record taken.
func (t table[T]) Take(ctx context.Context, id string) (T, error) {
	v, err := t.Table.Take(ctx, id)
	if err == nil {
		t.changed(ctx, id, OpDelete, &v, nil)
	}
	return v, err
}
