package authn_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/winkk/passport/authn"
)

// TestEveryChangeIsReported: the state changes of a whole login, and of the records around it, reach
// Config.OnChange once each, after they landed, with the record before and after.
func TestEveryChangeIsReported(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var changes []authn.Change
	svc := mustServiceWith(t, authn.Config{OnChange: func(_ context.Context, c authn.Change) {
		mu.Lock()
		defer mu.Unlock()
		changes = append(changes, c)
	}})
	ctx := context.Background()
	seen := func() []authn.Change {
		mu.Lock()
		defer mu.Unlock()
		out := changes
		changes = nil
		return out
	}
	app := mustApp(t, svc)
	if got := seen(); len(got) != 1 || got[0].Table != authn.TableApp || got[0].Op != authn.OpCreate || got[0].ID != app.ID || got[0].After.(authn.App).Name != app.Name {
		t.Fatalf("creating an app reported %+v", got)
	}
	d := mustEnroll(t, svc, "watched@example.com")
	kinds := map[string]bool{}
	for _, c := range seen() {
		kinds[c.Table+" "+c.Op] = true
	}
	for _, want := range []string{"user create", "invitation create", "invitation delete", "device create"} {
		if !kinds[want] {
			t.Errorf("enrolling reported %v, want %q among them", kinds, want)
		}
	}
	l, _ := mustPending(t, svc, app, "watched@example.com")
	var toPending *authn.Change
	for _, c := range seen() {
		if c.Table == authn.TableLogin && c.Op == authn.OpUpdate {
			toPending = &c
		}
	}
	if toPending == nil || toPending.Before.(authn.Login).State != authn.StateIdentify || toPending.After.(authn.Login).State != authn.StatePending {
		t.Fatalf("identifying reported %+v, want the login from identify to pending", toPending)
	}
	if _, err := svc.Logins.ApproveByNumber(ctx, d, l.Number); err != nil {
		t.Fatal(err)
	}
	got := seen()
	if len(got) != 1 || got[0].After.(authn.Login).State != authn.StateApproved || got[0].ID != l.ID {
		t.Fatalf("approving reported %+v", got)
	}
	// The phone sending its approval again is told it, and nothing is written or reported again.
	if again, err := svc.Logins.ApproveByNumber(ctx, d, l.Number); err != nil || again.State != authn.StateApproved || again.ID != l.ID {
		t.Fatalf("the approval sent again: %+v, %v; want the approval made", again, err)
	}
	if got := seen(); len(got) != 0 {
		t.Fatalf("an approval sent again reported %+v", got)
	}
	// A refused change reports nothing.
	if _, err := svc.Logins.Answer(ctx, d, l.ID, authn.Decision{}); !errors.Is(err, authn.ErrChallengeClosed) {
		t.Fatalf("denying an approved login: %v, want ErrChallengeClosed", err)
	}
	if got := seen(); len(got) != 0 {
		t.Fatalf("a refused answer reported %+v", got)
	}
	if err := svc.Apps.Delete(ctx, app.ID); err != nil {
		t.Fatal(err)
	}
	if got := seen(); len(got) == 0 || got[len(got)-1].Op != authn.OpDelete || got[len(got)-1].ID != app.ID {
		t.Fatalf("deleting an app reported %+v", got)
	}
}

// TestLoginChangeMessage: a login's change message carries its state, expiry and, once decided, the time of
// the decision (to the millisecond), and reads back as written. A message as servers wrote it before the
// decision's time was added still reads; anything else is no change (the page then reads the login again).
func TestLoginChangeMessage(t *testing.T) {
	t.Parallel()
	expires := time.UnixMilli(1_800_000_000_123).UTC()
	decided := time.UnixMilli(1_799_999_990_456).UTC()
	for _, c := range []authn.LoginChange{
		{State: authn.StatePending, ExpiresAt: expires},
		{State: authn.StateApproved, ExpiresAt: expires, DecidedAt: decided},
	} {
		got, ok := authn.ParseLoginChange(c.String())
		if !ok || got != c {
			t.Errorf("%q read back as %+v (%v), want %+v", c.String(), got, ok, c)
		}
	}
	if got := (authn.LoginChange{State: authn.StateApproved, ExpiresAt: expires, DecidedAt: decided}).String(); got != "state approved 1800000000123 1799999990456" {
		t.Errorf("message %q", got)
	}
	if got, ok := authn.ParseLoginChange("state approved 1800000000123"); !ok || got != (authn.LoginChange{State: authn.StateApproved, ExpiresAt: expires}) {
		t.Errorf("the message without the decision's time read as %+v (%v)", got, ok)
	}
	for _, msg := range []string{"", "state", "state approved", "state approved x", "state approved 1 x", "state approved 1 2 3", "status approved 1 2"} {
		if got, ok := authn.ParseLoginChange(msg); ok {
			t.Errorf("%q read as a change: %+v", msg, got)
		}
	}
}
