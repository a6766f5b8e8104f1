package authn_test

import (
	"context"
	"sync"
	"testing"

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
	// A refused change reports nothing.
	if _, err := svc.Logins.ApproveByNumber(ctx, d, l.Number); err == nil {
		t.Fatal("approved twice")
	}
	if got := seen(); len(got) != 0 {
		t.Fatalf("a refused approval reported %+v", got)
	}
	if err := svc.Apps.Delete(ctx, app.ID); err != nil {
		t.Fatal(err)
	}
	if got := seen(); len(got) == 0 || got[len(got)-1].Op != authn.OpDelete || got[len(got)-1].ID != app.ID {
		t.Fatalf("deleting an app reported %+v", got)
	}
}
