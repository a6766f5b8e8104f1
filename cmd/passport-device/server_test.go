package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/winkk/passport/api"
	"github.com/winkk/passport/api/apitest"
	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/authn/audit"
	"github.com/winkk/passport/store/storetest/redisproc"
)

// cli runs passport-device against a real server and returns its exit code and stdout.
func cli(t *testing.T, stdin io.Reader, args ...string) (int, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code := run(ctx, args, stdin, &out, &errOut)
	if code != 0 {
		t.Logf("passport-device %v: exit %d: %s", args, code, errOut.String())
	}
	return code, out.String()
}

func invite(t *testing.T, s *apitest.Server, email string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", s.URL+"/api/v1/admin/invitations", strings.NewReader(`{"email":"`+email+`"}`))
	req.Header.Set("Authorization", "Bearer "+apitest.AdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var inv struct{ Token string }
	if err := json.NewDecoder(resp.Body).Decode(&inv); err != nil || inv.Token == "" {
		t.Fatalf("invitation: %v", err)
	}
	return inv.Token
}

// parkPending starts a login for email on a fresh app and returns it, waiting on the phone.
func parkPending(t *testing.T, s *apitest.Server, email string) authn.Login {
	t.Helper()
	ctx := context.Background()
	name, aud, acs := "Jira", "https://sp.example.test/"+strconv.FormatInt(time.Now().UnixNano(), 36), "https://sp.example.test/acs"
	app, err := s.Svc.Apps.Create(ctx, authn.AppPatch{Name: &name, Audience: &aud, ACSURL: &acs})
	if err != nil {
		t.Fatal(err)
	}
	l, _, err := s.Svc.Logins.Park(ctx, authn.StartLogin{AppID: app.ID, RequestID: "_r", ClientIP: "192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	if l, err = s.Svc.Logins.Identify(ctx, l, email, "cli-test"); err != nil || l.State != authn.StatePending {
		t.Fatalf("identify: %v %s", err, l.State)
	}
	return l
}

// TestAgainstServer drives passport-device through everything the phone app does, against the real server.
func TestAgainstServer(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t)
	dir := t.TempDir()
	first, second := filepath.Join(dir, "first.json"), filepath.Join(dir, "second.json")
	const email = "ada@example.com"

	if code, _ := cli(t, nil, "enroll", "--server", s.URL, "--token", invite(t, s, email), "--state", first, "--name", "Pixel", "--fcm-token", "tok-1"); code != 0 {
		t.Fatal("enroll by invitation failed")
	}
	if fi, err := os.Stat(first); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v %v", fi.Mode(), err)
	}

	// Self-service: the code is read from the terminal once the mail has arrived.
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		code, _ := cli(t, pr, "enroll", "--server", s.URL, "--email", email, "--state", second, "--name", "iPhone")
		done <- code
	}()
	var code string
	for code == "" {
		select {
		case m := <-s.Mails.Mails:
			code = regexp.MustCompile(`\b\d{6}\b`).FindString(m.Body)
		case <-time.After(20 * time.Second):
			t.Fatal("no code mailed")
		}
	}
	io.WriteString(pw, code+"\n")
	if <-done != 0 {
		t.Fatal("enroll by email failed")
	}

	var list struct {
		Devices []struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		}
	}
	_, out := cli(t, nil, "devices", "--state", first)
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list.Devices) != 2 {
		t.Fatalf("devices: %s", out)
	}
	secondID := list.Devices[1].ID

	if c, out := cli(t, nil, "push-token", "--state", second, "--fcm-token", "tok-2"); c != 0 || !strings.Contains(out, `"push_status": "ok"`) && !strings.Contains(out, `"push_status":"ok"`) {
		t.Errorf("push-token: %d %s", c, out)
	}
	if c, _ := cli(t, nil, "rename", "--state", first, "--device", secondID, "--name", "Old iPhone"); c != 0 {
		t.Error("rename failed")
	}

	t.Run("approve with the number", func(t *testing.T) {
		l := parkPending(t, s, email)
		if c, _ := cli(t, nil, "pending", "--state", second); c != 0 {
			t.Error("pending failed")
		}
		if c, _ := cli(t, nil, "approve", "--state", second, "--number", strconv.Itoa(l.Number), "--timeout", "10s"); c != 0 {
			t.Fatal("approve failed")
		}
		if c, _ := cli(t, nil, "approve", "--state", first, "--number", strconv.Itoa(l.Number), "--timeout", "1s"); c == 0 {
			t.Error("a second approval of nothing pending exited 0")
		}
	})

	t.Run("wrong number exits non-zero", func(t *testing.T) {
		l := parkPending(t, s, email)
		if c, _ := cli(t, nil, "approve", "--state", first, "--number", strconv.Itoa(l.Number%89+10), "--timeout", "10s"); c != 1 {
			t.Errorf("wrong number: exit %d, want 1", c)
		}
	})

	t.Run("deny and report", func(t *testing.T) {
		parkPending(t, s, email)
		if c, out := cli(t, nil, "deny", "--state", first, "--report", "--timeout", "10s"); c != 0 || !strings.Contains(out, "denied") {
			t.Errorf("deny --report: %d %s", c, out)
		}
		if !strings.Contains(s.Logs.String(), "did not start") {
			t.Error("the report is not logged")
		}
	})

	if c, _ := cli(t, nil, "remove", "--state", first, "--device", secondID); c != 0 {
		t.Fatal("remove failed")
	}
	if c, _ := cli(t, nil, "devices", "--state", second); c != 1 {
		t.Errorf("a removed device still works: exit %d", c)
	}
}

// TestApproveThroughStoreStall: approve sends its approval again while the server answers 503 (its store
// stalls, as in a failover), and succeeds once the store answers.
func TestApproveThroughStoreStall(t *testing.T) {
	t.Parallel()
	srv := redisproc.Start(t)
	s := apitest.StartWith(t, redisproc.Open(t, srv.URL()), apitest.Options{
		API: func(c *api.Config) { c.Limits.RequestTimeout = 300 * time.Millisecond },
	})
	state := filepath.Join(t.TempDir(), "phone.json")
	const email = "ada@example.com"
	if code, _ := cli(t, nil, "enroll", "--server", s.URL, "--token", invite(t, s, email), "--state", state); code != 0 {
		t.Fatal("enroll failed")
	}
	l := parkPending(t, s, email)
	srv.Pause(t, 1500*time.Millisecond)
	// Exit 0 only once the server answered the approval with state approved.
	if code, out := cli(t, nil, "approve", "--state", state, "--number", strconv.Itoa(l.Number), "--timeout", "20s"); code != 0 || !strings.Contains(out, `"approved"`) {
		t.Fatalf("approve through the stall: exit %d: %s", code, out)
	}
	if !strings.Contains(s.Logs.String(), `"code":"temporarily_unavailable"`) {
		t.Error("the server never answered 503 during the stall: the test did not stall it")
	}
}

// TestCodeAgainstServer: the offline code passport-device prints completes a waiting login on the real
// server; a device enrolled while the server had codes off says it has none.
func TestCodeAgainstServer(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t)
	state := filepath.Join(t.TempDir(), "phone.json")
	const email = "ada@example.com"
	code, out := cli(t, nil, "enroll", "--server", s.URL, "--token", invite(t, s, email), "--state", state)
	if code != 0 || !strings.Contains(out, `"offline_codes": true`) {
		t.Fatalf("enroll: exit %d: %s", code, out)
	}
	if st := mustReadState(t, state); st.OfflineCode == nil || strings.Contains(out, st.OfflineCode.Secret) {
		t.Fatalf("the state file keeps no secret, or enroll printed it: %s", out)
	}
	// Mid-step, so that the code printed is the server's current one for long enough.
	now := s.Clock.Now()
	s.Clock.Advance((5*time.Second - now.Sub(now.Truncate(30*time.Second)) + 30*time.Second) % (30 * time.Second))
	l := parkPending(t, s, email)
	code, out = cli(t, nil, "code", "--state", state)
	if code != 0 || !regexp.MustCompile(`^[0-9]{6}\n$`).MatchString(out) {
		t.Fatalf("code: exit %d: %q", code, out)
	}
	approved, err := s.Svc.Logins.ApproveByCode(context.Background(), l, strings.TrimSpace(out), "cli-test")
	if err != nil || approved.State != authn.StateApproved || approved.Method != authn.MethodOfflineCode {
		t.Fatalf("the printed code does not approve the login: %v %s", err, approved.State)
	}

	off := apitest.Start(t, func(c *authn.Config) { c.DisableOfflineCodes = true })
	state2 := filepath.Join(t.TempDir(), "phone2.json")
	if code, _ := cli(t, nil, "enroll", "--server", off.URL, "--token", invite(t, off, email), "--state", state2); code != 0 {
		t.Fatal("enroll with codes off failed")
	}
	if code, _ := cli(t, nil, "code", "--state", state2); code != 1 {
		t.Fatalf("code without a secret: exit %d, want 1", code)
	}
}

// TestAddDeviceAgainstServer: add-device prints an invitation with which a second state file enrolls for
// the same account, recorded as invited by the first phone.
func TestAddDeviceAgainstServer(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t)
	dir := t.TempDir()
	first, second := filepath.Join(dir, "old.json"), filepath.Join(dir, "new.json")
	const email = "ada@example.com"
	if code, _ := cli(t, nil, "enroll", "--server", s.URL, "--token", invite(t, s, email), "--state", first); code != 0 {
		t.Fatal("enroll failed")
	}
	code, out := cli(t, nil, "add-device", "--state", first)
	var inv struct {
		Token     string    `json:"token"`
		EnrollURL string    `json:"enroll_url"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &inv) != nil || inv.Token == "" || !strings.Contains(inv.EnrollURL, inv.Token) {
		t.Fatalf("add-device: exit %d: %s", code, out)
	}
	if code, _ := cli(t, nil, "enroll", "--server", s.URL, "--token", inv.Token, "--state", second); code != 0 {
		t.Fatal("enroll with the phone's invitation failed")
	}
	old, next := mustReadState(t, first), mustReadState(t, second)
	d, err := s.Svc.Devices.Get(context.Background(), email, next.DeviceID)
	if err != nil || next.Email != email || d.InvitedBy != old.DeviceID {
		t.Fatalf("the new phone: %+v, %+v, %v", next, d, err)
	}
}

// TestApproveNamesWhatWasShown: approve --number signs the context of the sign-in it approves, so the receipt
// in the audit log says what the phone was shown, even with another sign-in of the account (one a stranger
// started) pending beside it.
func TestApproveNamesWhatWasShown(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t)
	state := filepath.Join(t.TempDir(), "phone.json")
	const email = "ada@example.com"
	if code, _ := cli(t, nil, "enroll", "--server", s.URL, "--token", invite(t, s, email), "--state", state); code != 0 {
		t.Fatal("enroll failed")
	}
	parkPending(t, s, email) // planted: listed first or second, never approved (one login.approved below)
	mine := parkPending(t, s, email)
	if code, out := cli(t, nil, "approve", "--state", state, "--number", strconv.Itoa(mine.Number), "--timeout", "10s"); code != 0 {
		t.Fatalf("approve: exit %d: %s", code, out)
	}
	s.Audit.Close() // writes what is queued
	events, _, err := s.Audit.List(context.Background(), audit.Filter{Type: audit.LoginApproved, Email: email})
	if err != nil || len(events) != 1 {
		t.Fatalf("login.approved events: %v %v", events, err)
	}
	body, _ := events[0].Details["receipt_body"].(string)
	var signed struct {
		Number      int    `json:"number"`
		ContextHash string `json:"context_hash"`
	}
	if err := json.Unmarshal([]byte(body), &signed); err != nil || signed.Number != mine.Number || signed.ContextHash == "" {
		t.Fatalf("the receipt's body %q names no context (%v)", body, err)
	}
	if events[0].Details["receipt"] == nil {
		t.Error("no receipt in the event")
	}
}
