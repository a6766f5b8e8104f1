package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/winkk/passport/api/apitest"
	"github.com/winkk/passport/api/deviceapi"
	"github.com/winkk/passport/authn/audit"
)

// auditEnv is a test server whose audit log the test can read.
type auditEnv struct {
	*env
	s *apitest.Server
}

func newAuditEnv(t *testing.T, o apitest.Options) *auditEnv {
	t.Helper()
	s := apitest.StartWith(t, nil, o)
	return &auditEnv{env: envOf(t, s), s: s}
}

// events waits until the audit log's events selected by query (the admin API's query string) satisfy done,
// and returns them (newest first), failing after a few seconds.
func (e *auditEnv) events(t *testing.T, query string, done func([]audit.Event) bool) []audit.Event {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var page struct {
			Events     []audit.Event `json:"events"`
			NextCursor string        `json:"next_cursor"`
		}
		e.do("GET", "/api/v1/admin/events?"+query, adminToken, nil, http.StatusOK, &page)
		if done(page.Events) {
			return page.Events
		}
		if time.Now().After(deadline) {
			t.Fatalf("events?%s never got there; last: %s", query, eventTypes(page.Events))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func eventTypes(es []audit.Event) string {
	var ts []string
	for _, e := range es {
		ts = append(ts, e.Type)
	}
	return strings.Join(ts, " ")
}

// oldestFirst reverses a page.
func oldestFirst(es []audit.Event) []audit.Event {
	out := slices.Clone(es)
	slices.Reverse(out)
	return out
}

// TestAuditLogin: the steps of a whole login, a denial and a report are recorded in order, each with who,
// which user, application and device, the browser's address and user agent, the outcome and reason.
func TestAuditLogin(t *testing.T) {
	t.Parallel()
	e := newAuditEnv(t, apitest.Options{})
	jira := e.newApp("Jira", atlassianAudience, acsURL)
	ph := e.enroll(employee)
	ctx := context.Background()

	b := newBrowser(t)
	waiting := b.identify(b.startLogin(e.sp(jira), ""), employee)
	if _, err := ph.ApproveByNumber(ctx, waiting.number(t)); err != nil {
		t.Fatal(err)
	}
	samlForm(t, b.get(waiting.URL), acsURL)
	want := []string{audit.LoginStarted, audit.LoginPushed, audit.LoginApproved, audit.LoginSucceeded}
	// The login is the app's: filter by it (login.started comes before anyone typed an email).
	got := oldestFirst(e.events(t, "type=login.*&app_id="+jira.ID, func(es []audit.Event) bool { return len(es) >= 4 }))
	if types := eventTypes(got); types != strings.Join(want, " ") {
		t.Fatalf("a login's events: %s, want %s", types, strings.Join(want, " "))
	}
	loginID := got[0].Details["login_id"]
	for _, ev := range got {
		if ev.AppID != jira.ID || (ev.Email != employee) != (ev.Type == audit.LoginStarted) || ev.ClientIP != "127.0.0.1" || ev.UserAgent == "" || ev.Details["login_id"] != loginID || ev.ID == "" || ev.Time.IsZero() {
			t.Errorf("%s: %+v", ev.Type, ev)
		}
	}
	approved := got[2]
	if approved.DeviceID != ph.ID || approved.Actor != "device:"+ph.ID || approved.Outcome != audit.OutcomeSuccess ||
		approved.Details["method"] != "push" || approved.Details["phone_ip"] != "127.0.0.1" {
		t.Errorf("login.approved: %+v", approved)
	}
	if got[3].Details["session_id"] == nil {
		t.Errorf("login.succeeded names no session: %+v", got[3])
	}

	for _, report := range []bool{false, true} {
		b := newBrowser(t)
		b.identify(b.startLogin(e.sp(jira), ""), employee)
		ch := ph.waitChallenge(t)
		if _, err := ph.AnswerChallenge(ctx, ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionDeny, Report: report}); err != nil {
			t.Fatal(err)
		}
	}
	last := e.events(t, "type=login.*&email="+employee, func(es []audit.Event) bool {
		return len(es) >= 7 && es[0].Type == audit.LoginReported
	})
	var denied, reported *audit.Event
	for i := range last {
		switch last[i].Type {
		case audit.LoginDenied:
			denied = &last[i]
		case audit.LoginReported:
			reported = &last[i]
		}
	}
	if denied == nil || denied.Reason != "denied" || denied.Outcome != audit.OutcomeFailure || denied.DeviceID != ph.ID {
		t.Errorf("login.denied: %+v", denied)
	}
	if reported == nil || reported.Reason != "reported" || reported.DeviceID != ph.ID || reported.ClientIP != "127.0.0.1" {
		t.Errorf("login.reported: %+v", reported)
	}
}

// TestAuditAdminChanges: every administrator's change is recorded with its actor, and a refused admin
// credential too.
func TestAuditAdminChanges(t *testing.T) {
	t.Parallel()
	e := newAuditEnv(t, apitest.Options{})
	app := e.newApp("Confluence", "https://sp.example.test/c", "http://127.0.0.1:9/c/acs")
	ph := e.enroll("grace@example.com")
	e.do("PATCH", "/api/v1/admin/users/grace@example.com", adminToken, map[string]any{"status": "suspended"}, http.StatusOK, nil)
	e.do("DELETE", "/api/v1/admin/users/grace@example.com/devices/"+ph.ID, adminToken, nil, http.StatusNoContent, nil)
	e.do("DELETE", "/api/v1/admin/apps/"+app.ID, adminToken, nil, http.StatusNoContent, nil)
	e.do("POST", "/api/v1/admin/keys/next", adminToken, nil, http.StatusOK, nil)
	e.do("POST", "/api/v1/admin/keys/activate", adminToken, nil, http.StatusOK, nil)
	if st, _, _ := e.call("GET", "/api/v1/admin/apps", "wrong-token", "", ""); st != http.StatusUnauthorized {
		t.Fatalf("a wrong token: %d", st)
	}
	want := []string{audit.AppCreated, audit.AppUpdated, audit.UserCreated, audit.InvitationCreated, audit.DeviceEnrolled,
		audit.UserUpdated, audit.DeviceRemoved, audit.AppDeleted, audit.KeyStaged, audit.KeyActivated, audit.AdminDenied}
	got := oldestFirst(e.events(t, "limit=100", func(es []audit.Event) bool { return len(es) > 0 && es[0].Type == audit.AdminDenied }))
	var types []string
	for _, ev := range got {
		types = append(types, ev.Type)
	}
	for _, w := range want {
		if !slices.Contains(types, w) {
			t.Errorf("no %s among %v", w, types)
		}
	}
	for _, ev := range got {
		switch ev.Type {
		case audit.AppCreated, audit.AppUpdated, audit.AppDeleted, audit.UserUpdated, audit.KeyStaged, audit.KeyActivated, audit.InvitationCreated:
			if ev.Actor != "admin:token" {
				t.Errorf("%s by %q, want admin:token", ev.Type, ev.Actor)
			}
		case audit.DeviceEnrolled:
			if ev.DeviceID != ph.ID || ev.Email != "grace@example.com" {
				t.Errorf("device.enrolled: %+v", ev)
			}
		case audit.DeviceRemoved:
			if ev.DeviceID != ph.ID || ev.Actor != "admin:token" || ev.Email != "grace@example.com" {
				t.Errorf("device.removed: %+v", ev)
			}
		case audit.AdminDenied:
			if ev.Outcome != audit.OutcomeFailure || ev.Reason != "invalid_token" || ev.ClientIP == "" {
				t.Errorf("admin.denied: %+v", ev)
			}
		}
	}
	for _, ev := range got {
		if ev.Type == audit.UserUpdated && (!slices.Contains(toStrings(ev.Details["changed"]), "status") || ev.Details["status"] != "suspended") {
			t.Errorf("user.updated: %+v", ev)
		}
	}
}

func toStrings(v any) []string {
	var out []string
	if vs, ok := v.([]any); ok {
		for _, x := range vs {
			s, _ := x.(string)
			out = append(out, s)
		}
	}
	return out
}

// TestAuditPaging: filters, newest first, cursor paging with no duplicate and no gap while events keep
// arriving, and the export oldest first.
func TestAuditPaging(t *testing.T) {
	t.Parallel()
	e := newAuditEnv(t, apitest.Options{})
	const n = 60
	for i := range n {
		e.do("POST", "/api/v1/admin/users", adminToken, map[string]any{"email": fmt.Sprintf("u%02d@example.com", i)}, http.StatusCreated, nil)
	}
	// Every one of them written before paging starts (the log writes in batches): a page of 50 could be full
	// while the newest are still queued, and those would then arrive after the first page, unseen.
	e.events(t, "type=user.created&limit=100", func(es []audit.Event) bool { return len(es) == n })
	// Page through while more users are created.
	stop := make(chan struct{})
	var wrote sync.WaitGroup
	var more atomic.Int64
	wrote.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			e.do("POST", "/api/v1/admin/users", adminToken, map[string]any{"email": fmt.Sprintf("late%03d@example.com", i)}, http.StatusCreated, nil)
			more.Add(1)
		}
	})
	var seen []string
	cursor := ""
	for pages := 0; ; pages++ {
		var page struct {
			Events     []audit.Event `json:"events"`
			NextCursor string        `json:"next_cursor"`
		}
		e.do("GET", "/api/v1/admin/events?type=user.created&limit=7&cursor="+url.QueryEscape(cursor), adminToken, nil, http.StatusOK, &page)
		for i, ev := range page.Events {
			if i > 0 && ev.ID >= page.Events[i-1].ID && len(ev.ID) >= len(page.Events[i-1].ID) {
				t.Fatalf("not newest first: %s after %s", ev.ID, page.Events[i-1].ID)
			}
			seen = append(seen, ev.Email)
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
		if pages > 50 {
			t.Fatal("paging does not end")
		}
	}
	close(stop)
	wrote.Wait()
	var first []string
	for _, em := range seen {
		if strings.HasPrefix(em, "u") {
			first = append(first, em)
		}
	}
	if len(first) != n {
		t.Fatalf("paged through %d of the %d users created before paging (duplicates or gaps): %v", len(first), n, first)
	}
	for i, em := range first {
		if want := fmt.Sprintf("u%02d@example.com", n-1-i); em != want {
			t.Fatalf("page order: %s at %d, want %s", em, i, want)
		}
	}
	if more.Load() == 0 {
		t.Fatal("no event arrived while paging: the test proves nothing")
	}
	t.Run("filters", func(t *testing.T) {
		one := e.events(t, "email=u07@example.com", func(es []audit.Event) bool { return len(es) == 1 })
		if one[0].Type != audit.UserCreated {
			t.Errorf("by email: %+v", one)
		}
		future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		var page struct{ Events []audit.Event }
		e.do("GET", "/api/v1/admin/events?since="+future, adminToken, nil, http.StatusOK, &page)
		if len(page.Events) != 0 {
			t.Errorf("since an hour ahead: %d events", len(page.Events))
		}
		for _, bad := range []string{"since=yesterday", "limit=0", "limit=501", "cursor=nope"} {
			if st, _, body := e.call("GET", "/api/v1/admin/events?"+bad, adminToken, "", ""); st != http.StatusBadRequest || !strings.Contains(string(body), "invalid_request") {
				t.Errorf("%s: %d %s", bad, st, body)
			}
		}
	})
	t.Run("export", func(t *testing.T) {
		req, _ := http.NewRequest("GET", e.URL+"/api/v1/admin/events/export", nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "application/x-ndjson" {
			t.Fatalf("%d %s", resp.StatusCode, ct)
		}
		var prev string
		count := 0
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var ev audit.Event
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Fatalf("line %d: %v", count, err)
			}
			if prev != "" && ev.ID <= prev && len(ev.ID) <= len(prev) {
				t.Fatalf("not oldest first: %s after %s", ev.ID, prev)
			}
			prev = ev.ID
			count++
		}
		if count < n {
			t.Errorf("exported %d events, want at least %d", count, n)
		}
	})
}

// TestAuditRetention: events older than the retention are trimmed as new ones arrive, with no job to run.
func TestAuditRetention(t *testing.T) {
	t.Parallel()
	e := newAuditEnv(t, apitest.Options{Audit: func(c *audit.Config) { c.Retention = 300 * time.Millisecond }})
	e.do("POST", "/api/v1/admin/users", adminToken, map[string]any{"email": "old@example.com"}, http.StatusCreated, nil)
	e.events(t, "email=old@example.com", func(es []audit.Event) bool { return len(es) == 1 })
	time.Sleep(600 * time.Millisecond)
	e.do("POST", "/api/v1/admin/users", adminToken, map[string]any{"email": "new@example.com"}, http.StatusCreated, nil)
	e.events(t, "", func(es []audit.Event) bool {
		return len(es) == 1 && es[0].Email == "new@example.com"
	})
}

// TestAuditHoldsNoSecret: no event holds a token, code, cookie, key or assertion the test used.
func TestAuditHoldsNoSecret(t *testing.T) {
	t.Parallel()
	e := newAuditEnv(t, apitest.Options{})
	jira := e.newApp("Jira", atlassianAudience, acsURL)
	var inv struct{ Token string }
	e.do("POST", "/api/v1/admin/invitations", adminToken, map[string]any{"email": "sec@example.com"}, http.StatusCreated, &inv)
	ph := e.enroll(employee)
	b := newBrowser(t)
	waiting := b.identify(b.startLogin(e.sp(jira), ""), employee)
	if _, err := ph.ApproveByNumber(context.Background(), waiting.number(t)); err != nil {
		t.Fatal(err)
	}
	resp, _ := samlForm(t, b.get(waiting.URL), acsURL)
	secrets := map[string]string{"admin token": adminToken, "invitation token": inv.Token, "FCM token": ph.FCMToken,
		"SAMLResponse": resp[len(resp)/2 : len(resp)/2+64]}
	for _, where := range []string{e.URL + "/saml/", waiting.URL} {
		u, _ := url.Parse(where)
		for _, ck := range b.c.Jar.Cookies(u) {
			secrets["cookie "+ck.Name] = ck.Value
		}
	}
	if len(secrets) < 6 {
		t.Fatalf("the test holds too few secrets to look for: %v", secrets)
	}
	e.events(t, "type=login.succeeded", func(es []audit.Event) bool { return len(es) == 1 })
	req, _ := http.NewRequest("GET", e.URL+"/api/v1/admin/events/export", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	all, _ := io.ReadAll(r.Body)
	r.Body.Close()
	for what, s := range secrets {
		if s != "" && strings.Contains(string(all), s) {
			t.Errorf("the audit log holds the %s", what)
		}
	}
}

// TestAlerts: a reported sign-in is mailed to the administrators in words and posted, signed, to the
// webhook; a webhook that is down does not delay the login, and is tried again.
func TestAlerts(t *testing.T) {
	t.Parallel()
	const secret = "hook-secret"
	var mu sync.Mutex
	var posts [][]byte
	var fails atomic.Int64
	fails.Store(2) // the receiver is down for the first two attempts
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get(audit.SignatureHeader) != audit.Sign(secret, body) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		if fails.Add(-1) >= 0 {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		mu.Lock()
		posts = append(posts, body)
		mu.Unlock()
	}))
	defer hook.Close()
	e := newAuditEnv(t, apitest.Options{Audit: func(c *audit.Config) {
		c.Alerts.Emails = []string{"security@example.com"}
		c.Alerts.WebhookURL, c.Alerts.WebhookSecret = hook.URL, secret
	}})
	jira := e.newApp("Jira", atlassianAudience, acsURL)
	ph := e.enroll(employee)
	drainMails(e.env)
	b := newBrowserFrom(t, "127.0.0.2")
	b.identify(b.startLogin(e.sp(jira), ""), employee)
	ch := ph.waitChallenge(t)
	start := time.Now()
	if _, err := ph.AnswerChallenge(context.Background(), ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionDeny, Report: true}); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("reporting took %v: the alerts held it up", took)
	}
	select {
	case m := <-e.mails.Mails:
		for _, want := range []string{employee, "Jira", "127.0.0.2", "this wasn't me", "UTC"} {
			if !strings.Contains(m.Subject+m.Body, want) {
				t.Errorf("the alert mail does not say %q:\n%s\n%s", want, m.Subject, m.Body)
			}
		}
		if m.To != "security@example.com" {
			t.Errorf("mailed to %s", m.To)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no alert mail")
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		mu.Lock()
		n := len(posts)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the webhook never received the alert")
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	var ev audit.Event
	if err := json.Unmarshal(posts[0], &ev); err != nil || ev.Type != audit.LoginReported || ev.Email != employee || ev.ID == "" {
		t.Errorf("posted %s (%v)", posts[0], err)
	}
	mu.Unlock()
}

// drainMails empties the test SMTP server's inbox of what earlier steps sent (new-device mails).
func drainMails(e *env) {
	for {
		select {
		case <-e.mails.Mails:
		case <-time.After(200 * time.Millisecond):
			return
		}
	}
}

// TestAuditExpiredAndPaused: a challenge left to expire is recorded when Passport next looks at it, once;
// a paused sign-in is recorded with until when; both show in /metrics by type.
func TestAuditExpiredAndPaused(t *testing.T) {
	t.Parallel()
	e := newAuditEnv(t, apitest.Options{})
	jira := e.newApp("Jira", atlassianAudience, acsURL)
	e.enroll(employee)
	b := newBrowser(t)
	waiting := b.identify(b.startLogin(e.sp(jira), ""), employee)
	waiting.number(t)
	e.clock.Advance(e.svc.Logins.TTL() + time.Second)
	b.get(waiting.URL) // the page finds it expired
	b.get(waiting.URL) // and again: recorded once
	expired := e.events(t, "type=login.expired", func(es []audit.Event) bool { return len(es) >= 1 })
	time.Sleep(100 * time.Millisecond)
	if again := e.events(t, "type=login.expired", func([]audit.Event) bool { return true }); len(again) != 1 {
		t.Errorf("%d login.expired events for one login", len(again))
	}
	if ev := expired[0]; ev.Email != employee || ev.Actor != audit.ActorSystem || ev.Outcome != audit.OutcomeFailure {
		t.Errorf("login.expired: %+v", ev)
	}
	for range 4 { // fill the network's pending cap (3), then one more
		b := newBrowser(t)
		b.identify(b.startLogin(e.sp(jira), ""), employee)
	}
	paused := e.events(t, "type=login.paused", func(es []audit.Event) bool { return len(es) == 1 })
	if ev := paused[0]; ev.Reason != "too_pending" || ev.Details["paused_until"] == nil || ev.Details["network"] != "127.0.0.1" {
		t.Errorf("login.paused: %+v", ev)
	}
	// The log counts a batch once Redis has answered its append, a moment after the events can be read.
	wants := []string{`passport_audit_events_total{type="login.expired"} 1`, `passport_audit_events_total{type="login.paused"} 1`,
		`passport_audit_events_total{type="key.activated"} 0`, "passport_audit_record_failures_total 0"}
	metrics := metricsWith(t, e.URL, wants...)
	for _, want := range wants {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
