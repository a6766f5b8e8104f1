package api_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/winkk/passport/api/apitest"
	"github.com/winkk/passport/api/deviceapi"
	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/authn/audit"
	"github.com/winkk/passport/authn/deviceproof"
	"github.com/winkk/passport/store"
)

// enrollWith enrolls a new phone with invitation token, whoever made it.
func (e *env) enrollWith(token string) (*phone, error) {
	c := &deviceapi.Client{BaseURL: e.URL, Signer: &deviceproof.Signer{Key: e.newKey(), Clock: e.clock.Now}}
	res, err := c.EnrollByInvitation(context.Background(), deviceapi.EnrollByInvitationRequest{Token: token, Name: "New phone", Platform: "ios"})
	if err != nil {
		return nil, err
	}
	c.Signer.KeyID = res.Device.ID
	return &phone{Client: c, ID: res.Device.ID, Email: res.Device.Email, Offline: res.OfflineCode}, nil
}

// TestPhoneInvitesNextPhone: an enrolled phone invites its user's next phone, which enrolls with the token
// and approves a login; the user is mailed, the old phone sees the new one, the audit log and the admin API
// say which phone vouched for which. A used, expired, tampered or over-the-limit invitation is refused, and
// a suspended user's phone cannot invite.
func TestPhoneInvitesNextPhone(t *testing.T) {
	t.Parallel()
	e := newAuditEnv(t, apitest.Options{})
	jira := e.newApp("Jira", atlassianAudience, acsURL)
	old := e.enroll(employee)
	ctx := t.Context()
	drainMails(e.env)

	inv, err := old.CreateDeviceInvitation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ttl := inv.ExpiresAt.Sub(e.clock.Now()); ttl > 15*time.Minute || ttl < 14*time.Minute || !strings.Contains(inv.EnrollURL, inv.Token) {
		t.Fatalf("invitation: %+v (lives %s)", inv, ttl)
	}
	next, err := e.enrollWith(inv.Token)
	if err != nil || next.Email != employee {
		t.Fatalf("enroll with a phone's invitation: %v", err)
	}
	// Used once only.
	if _, err := e.enrollWith(inv.Token); apiCode(err) != "410 invitation_invalid" {
		t.Errorf("a used invitation: %s", apiCode(err))
	}
	// The new phone approves a login.
	b := newBrowser(t)
	waiting := b.identify(b.startLogin(e.sp(jira), ""), employee)
	if _, err := next.ApproveByNumber(ctx, waiting.number(t)); err != nil {
		t.Fatal(err)
	}
	resp, _ := samlForm(t, b.get(waiting.URL), acsURL)
	e.bothAccept(t, jira, resp, employee, []string{b.requestID})

	// The old phone sees it; the admin API and the audit log name the phone that vouched.
	list, err := old.ListDevices(ctx)
	if err != nil || len(list.Devices) != 2 || list.Devices[1].ID != next.ID {
		t.Fatalf("the old phone's device list: %+v %v", list, err)
	}
	var view struct {
		InvitedBy string `json:"invited_by"`
	}
	e.do("GET", "/api/v1/admin/users/"+employee+"/devices/"+next.ID, adminToken, nil, http.StatusOK, &view)
	if view.InvitedBy != old.ID {
		t.Errorf("admin view: invited_by %q, want %q", view.InvitedBy, old.ID)
	}
	created := e.events(t, "type=invitation.created&email="+employee, func(es []audit.Event) bool { return len(es) == 2 })
	if ev := created[0]; ev.Actor != "device:"+old.ID || ev.DeviceID != old.ID || ev.Details["invited_by"] != old.ID {
		t.Errorf("invitation.created by a phone: %+v", ev)
	}
	enrolled := e.events(t, "type=device.enrolled&email="+employee, func(es []audit.Event) bool { return len(es) == 2 })
	if ev := enrolled[0]; ev.DeviceID != next.ID || ev.Details["invited_by"] != old.ID {
		t.Errorf("device.enrolled of the invited phone: %+v", ev)
	}
	// The mail: a new phone was added, and with which phone's invitation.
	select {
	case m := <-e.mails.Mails:
		if !strings.Contains(m.To, employee) || !strings.Contains(m.Body, "New phone") || !strings.Contains(m.Body, old.ID) || !strings.Contains(m.Body, `"Test phone"`) {
			t.Errorf("new-device mail: %+v", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no mail about the new phone")
	}

	// Tampered, and expired.
	inv2, err := old.CreateDeviceInvitation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.enrollWith(inv2.Token + "a"); apiCode(err) != "410 invitation_invalid" {
		t.Errorf("a tampered invitation: %s", apiCode(err))
	}
	e.clock.Advance(16 * time.Minute)
	if _, err := e.enrollWith(inv2.Token); apiCode(err) != "410 invitation_invalid" {
		t.Errorf("an expired invitation: %s", apiCode(err))
	}
	// At most three open at once.
	for range 3 {
		if _, err := next.CreateDeviceInvitation(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := old.CreateDeviceInvitation(ctx); apiCode(err) != "429 rate_limited" {
		t.Errorf("a fourth open invitation: %s", apiCode(err))
	}
	// Asked for at once, by both phones, still three at most: the cap is checked as the invitation is stored.
	e.clock.Advance(16 * time.Minute)
	var made atomic.Int32
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Go(func() {
			ph := old
			if i%2 == 1 {
				ph = next
			}
			if _, err := ph.CreateDeviceInvitation(ctx); err == nil {
				made.Add(1)
			} else if apiCode(err) != "429 rate_limited" {
				t.Errorf("concurrent invitation: %v", err)
			}
		})
	}
	wg.Wait()
	if made.Load() != authn.MaxDeviceInvitations {
		t.Errorf("%d invitations made at once, want %d", made.Load(), authn.MaxDeviceInvitations)
	}
	// A suspended user's phones cannot invite.
	e.do("PATCH", "/api/v1/admin/users/"+employee, adminToken, map[string]any{"status": "suspended"}, http.StatusOK, nil)
	if _, err := old.CreateDeviceInvitation(ctx); apiCode(err) != "403 forbidden" {
		t.Errorf("a suspended user's phone invites: %s", apiCode(err))
	}
}

// TestInvitationIndexGoesWithUser: a deleted user's invitations leave no index behind in the store.
func TestInvitationIndexGoesWithUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	invs := store.NewTable[struct{}](e.svc.Store(), "invitation")
	for _, email := range []string{"gone@example.com", "left@example.com"} {
		e.invite(email)
		e.invite(email)
		if ids, err := invs.IndexIDs(ctx, "user:"+email); err != nil || len(ids) != 2 {
			t.Fatalf("%s: the invitation index holds %v (%v)", email, ids, err)
		}
	}
	e.do("DELETE", "/api/v1/admin/users/gone@example.com", adminToken, nil, http.StatusNoContent, nil)
	if ids, err := invs.IndexIDs(ctx, "user:gone@example.com"); err != nil || len(ids) != 0 {
		t.Errorf("a deleted user's invitation index holds %v (%v)", ids, err)
	}
	if ids, err := invs.IndexIDs(ctx, "user:left@example.com"); err != nil || len(ids) != 2 {
		t.Errorf("another user's invitation index holds %v (%v)", ids, err)
	}
}
