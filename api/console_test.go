package api_test

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/winkk/passport/api/deviceapi"
	"github.com/winkk/passport/api/qrimage/qrtest"
	"github.com/winkk/passport/authn/audit"
	"github.com/winkk/passport/authn/deviceproof"
)

// The admin console over plain HTTP: sign-in by phone, the session and its limits, CSRF, the forms and what
// they change, seen through the JSON API and the audit log.

// makeAdmin gives email the admin role through the JSON admin API (creating the user first when needed).
func (e *env) makeAdmin(email string) {
	e.t.Helper()
	e.do("PATCH", "/api/v1/admin/users/"+url.PathEscape(email), adminToken, map[string]any{"roles": []string{"admin"}}, http.StatusOK, nil)
}

// enrollAdmin enrolls a phone for email and makes the user an administrator.
func (e *env) enrollAdmin(email string) *phone {
	e.t.Helper()
	ph := e.enroll(email)
	e.makeAdmin(email)
	return ph
}

// consoleSignIn signs b in to the console with ph's approval, starting at path (which needs a session); it
// returns the page the browser lands on after the approval.
func (e *env) consoleSignIn(b *browser, path string, ph *phone) *page {
	e.t.Helper()
	p := b.get(e.URL + path)
	if !strings.Contains(p.URL, "/admin/signin") {
		e.t.Fatalf("GET %s without a session landed on %s (%d), not the sign-in", path, p.URL, p.Status)
	}
	return e.consoleApprove(b, p, ph, ph.Email)
}

// consoleApprove types email on the console's sign-in page p, approves the number on ph, and returns the page
// after the approval.
func (e *env) consoleApprove(b *browser, p *page, ph *phone, email string) *page {
	e.t.Helper()
	_, form, ok := p.form()
	if !ok {
		e.t.Fatalf("no sign-in form on %s:\n%s", p.URL, p.Body)
	}
	w := b.postForm(e.URL+"/admin/signin", url.Values{"email": {email}, "next": {form.Get("next")}})
	n := w.number(e.t)
	if ph != nil {
		if _, err := ph.ApproveByNumber(context.Background(), n); err != nil {
			e.t.Fatalf("approve %d: %v", n, err)
		}
	}
	return b.get(w.URL)
}

// csrfOf is the CSRF token of the page's forms.
func csrfOf(t *testing.T, p *page) string {
	t.Helper()
	n := p.find(func(n *htmlNode) bool { return n.Data == "input" && attr(n, "name") == "csrf" })
	if n == nil || attr(n, "value") == "" {
		t.Fatalf("no CSRF token on %s:\n%s", p.URL, p.Body)
	}
	return attr(n, "value")
}

func h1(p *page) string {
	n := p.find(func(n *htmlNode) bool { return n.Data == "h1" })
	if n == nil {
		return ""
	}
	return text(n)
}

func (e *env) events(typ, email string) []audit.Event {
	e.t.Helper()
	var out struct {
		Events []audit.Event `json:"events"`
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		e.do("GET", "/api/v1/admin/events?type="+url.QueryEscape(typ)+"&email="+url.QueryEscape(email), adminToken, nil, http.StatusOK, &out)
		if len(out.Events) > 0 || time.Now().After(deadline) {
			return out.Events
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestConsoleSignIn(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ph := e.enrollAdmin("root@example.com")
	b := newBrowser(t)

	p := b.get(e.URL + "/admin/apps")
	if u := mustURL(t, p.URL); u.Path != "/admin/signin" || u.Query().Get("next") != "/admin/apps" {
		t.Fatalf("no session: landed on %s, want the sign-in with next=/admin/apps", p.URL)
	}
	if c := e.consoleApprove(b, p, ph, ph.Email); mustURL(t, c.URL).Path != "/admin/apps" || c.Status != http.StatusOK || h1(c) != "Applications" {
		t.Fatalf("after the approval: %d %s %q, want the Applications tab", c.Status, c.URL, h1(c))
	}
	// The session cookie: HttpOnly, SameSite=Strict, only for /admin (the server is http: not Secure).
	var found bool
	for _, ck := range b.c.Jar.Cookies(mustURL(t, e.URL+"/admin")) {
		if ck.Name == "passport_admin" {
			found = true
		}
	}
	if !found {
		t.Fatal("no console session cookie in the browser")
	}
	if cks := b.c.Jar.Cookies(mustURL(t, e.URL+"/login/x")); len(cks) != 0 {
		t.Errorf("the console cookie is sent outside /admin: %v", cks)
	}
	// The sign-in went through the login state machine: pushed, approved by the phone, succeeded.
	for _, typ := range []string{audit.LoginPushed, audit.LoginApproved, audit.LoginSucceeded} {
		ev := e.events(typ, ph.Email)
		if len(ev) != 1 || ev[0].AppID != "_console" {
			t.Errorf("%s events of the console sign-in: %+v", typ, ev)
		}
	}
	// Signing out ends the session: the next page asks to sign in again.
	home := b.get(e.URL + "/admin")
	out := b.postForm(e.URL+"/admin/signout", url.Values{"csrf": {csrfOf(t, home)}})
	if mustURL(t, out.URL).Path != "/admin/signin" {
		t.Fatalf("sign-out landed on %s", out.URL)
	}
	if again := b.get(e.URL + "/admin/users"); mustURL(t, again.URL).Path != "/admin/signin" {
		t.Fatalf("after signing out /admin/users showed %s", again.URL)
	}
}

func TestConsoleSetCookieAttributes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ph := e.enrollAdmin("root@example.com")
	b := newBrowser(t)
	b.get(e.URL + "/admin")
	w := b.postForm(e.URL+"/admin/signin", url.Values{"email": {ph.Email}, "next": {"/admin"}})
	if _, err := ph.ApproveByNumber(context.Background(), w.number(t)); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", w.URL, nil)
	for _, ck := range b.c.Jar.Cookies(mustURL(t, w.URL)) {
		req.AddCookie(ck)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("approved sign-in page: status %d, want 303", resp.StatusCode)
	}
	var set string
	for _, c := range resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(c, "passport_admin=") {
			set = c
		}
	}
	for _, want := range []string{"Path=/admin", "HttpOnly", "SameSite=Strict", "Max-Age=28800"} {
		if !strings.Contains(set, want) {
			t.Errorf("console cookie %q lacks %s", set, want)
		}
	}
}

func TestConsoleNotAdmin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ph := e.enroll("worker@example.com") // a user, not an administrator
	b := newBrowser(t)
	p := e.consoleSignIn(b, "/admin", ph)
	if msg, _ := p.testID("signin-error"); p.Status != http.StatusForbidden || !strings.Contains(msg, "not an administrator") {
		t.Fatalf("non-admin after approval: %d %q\n%s", p.Status, msg, p.Body)
	}
	for _, ck := range b.c.Jar.Cookies(mustURL(t, e.URL+"/admin")) {
		if ck.Name == "passport_admin" {
			t.Fatal("a non-admin got a console session cookie")
		}
	}
	if again := b.get(e.URL + "/admin"); mustURL(t, again.URL).Path != "/admin/signin" {
		t.Fatalf("non-admin reached %s", again.URL)
	}
	if ev := e.events(audit.LoginFailed, ph.Email); len(ev) != 1 || ev[0].Reason != "not_admin" {
		t.Errorf("login.failed events: %+v", ev)
	}

	// No account probing: an unknown address sees a number too, and nothing reaches any phone.
	other := newBrowser(t)
	sp := other.get(e.URL + "/admin")
	w := other.postForm(e.URL+"/admin/signin", url.Values{"email": {"nobody@example.com"}, "next": {"/admin"}})
	_ = sp
	if w.Status != http.StatusOK {
		t.Fatalf("unknown address: status %d", w.Status)
	}
	w.number(t)
	if st, _ := w.testID("signin-email"); st != "nobody@example.com" {
		t.Errorf("the waiting page shows %q, want the address typed", st)
	}

	// The sign-in form posted from another site is refused.
	req, _ := http.NewRequest("POST", e.URL+"/admin/signin", strings.NewReader("email=worker%40example.com"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	req2 := req.Clone(context.Background())
	req2.Body = io.NopCloser(strings.NewReader("email=worker%40example.com"))
	req2.Header.Set("Origin", "null")
	req2.Header.Set("Sec-Fetch-Site", "cross-site")
	for _, r := range []*http.Request{req, req2} {
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("sign-in posted from another site (Origin %q): status %d, want 403", r.Header.Get("Origin"), resp.StatusCode)
		}
	}
}

func TestConsoleCSRFAndHostileInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ph := e.enrollAdmin("root@example.com")
	b := newBrowser(t)
	p := e.consoleSignIn(b, "/admin/apps/new", ph)
	token := csrfOf(t, p)
	form := url.Values{"name": {"CSRF victim"}, "url": {"https://example.atlassian.net"}, "interface": {"saml2"}}

	// Without the token, or with another: 403, nothing created.
	for _, bad := range []string{"", "forged"} {
		f := url.Values{}
		for k, v := range form {
			f[k] = v
		}
		if bad != "" {
			f.Set("csrf", bad)
		}
		r := b.postForm(e.URL+"/admin/apps", f)
		if r.Status != http.StatusForbidden {
			t.Errorf("POST with csrf=%q: status %d, want 403", bad, r.Status)
		}
	}
	var list struct {
		Apps []appView `json:"apps"`
	}
	e.do("GET", "/api/v1/admin/apps", adminToken, nil, http.StatusOK, &list)
	if len(list.Apps) != 0 {
		t.Fatalf("a POST without the CSRF token created %+v", list.Apps)
	}

	// Hostile values are shown as text, never as markup; a javascript: ACS URL is refused next to its field.
	hostile := `<script>alert(1)</script><img src=x onerror=alert(2)>`
	r := b.postForm(e.URL+"/admin/apps", url.Values{"csrf": {token}, "name": {hostile}, "url": {"https://x.example"}, "interface": {"saml2"},
		"acs_url": {"javascript:alert(3)"}})
	if r.Status != http.StatusUnprocessableEntity || strings.Contains(r.Body, "<script>alert") || !strings.Contains(r.Body, "&lt;script&gt;") {
		t.Fatalf("hostile form: status %d\n%s", r.Status, r.Body)
	}
	r = b.postForm(e.URL+"/admin/apps", url.Values{"csrf": {token}, "name": {hostile}, "url": {"https://x.example"}, "interface": {"saml2"}})
	if r.Status != http.StatusOK || !strings.HasPrefix(mustURL(t, r.URL).Path, "/admin/apps/") {
		t.Fatalf("create: %d %s\n%s", r.Status, r.URL, r.Body)
	}
	for _, path := range []string{r.URL, e.URL + "/admin/apps", e.URL + "/admin", e.URL + "/admin/activity"} {
		pg := b.get(path)
		if strings.Contains(pg.Body, "<script>alert") || strings.Contains(pg.Body, "<img src=x") {
			t.Errorf("%s shows the hostile name as markup", path)
		}
	}
	if warn, ok := r.testID("app-warnings"); !ok || !strings.Contains(warn, "audience and acs_url must both be set") {
		t.Errorf("the new app's page does not warn that it is not configured: %q", warn)
	}
}

func TestConsoleSessionLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ph := e.enrollAdmin("root@example.com")
	b := newBrowser(t)
	e.consoleSignIn(b, "/admin", ph)

	// Idle for 30 minutes: back to the sign-in, then to the page asked for.
	e.clock.Advance(31 * time.Minute)
	p := b.get(e.URL + "/admin/users?q=root")
	if u := mustURL(t, p.URL); u.Path != "/admin/signin" || u.Query().Get("next") != "/admin/users?q=root" {
		t.Fatalf("idle session: landed on %s", p.URL)
	}
	after := e.consoleApprove(b, p, ph, ph.Email)
	if u := mustURL(t, after.URL); u.Path != "/admin/users" || u.Query().Get("q") != "root" || after.Status != http.StatusOK {
		t.Fatalf("after signing in again: %d %s, want /admin/users?q=root", after.Status, after.URL)
	}

	// Active all the time, the session still ends 8 hours after it began.
	for range 23 { // 7h40m of activity
		e.clock.Advance(20 * time.Minute)
		if pg := b.get(e.URL + "/admin/keys"); mustURL(t, pg.URL).Path != "/admin/keys" {
			t.Fatalf("an active session ended early, at %s", pg.URL)
		}
	}
	e.clock.Advance(20 * time.Minute)
	if pg := b.get(e.URL + "/admin/keys"); mustURL(t, pg.URL).Path != "/admin/signin" {
		t.Fatalf("a session older than 8 hours still shows %s", pg.URL)
	}

	// next never leads away from the console.
	for _, next := range []string{"https://evil.example/", "//evil.example/admin", "/admin/../login/x", "/\\evil.example", "javascript:alert(1)"} {
		pg := b.get(e.URL + "/admin/signin?next=" + url.QueryEscape(next))
		_, form, _ := pg.form()
		if got := form.Get("next"); got != "/admin" {
			t.Errorf("next=%q became %q, want /admin", next, got)
		}
	}
}

func TestConsoleUsersAndStepUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ph := e.enrollAdmin("root@example.com")
	b := newBrowser(t)
	p := e.consoleSignIn(b, "/admin/users", ph)
	token := csrfOf(t, p)

	// Create a user with groups; invite a phone: the QR code is on the page with the link and its expiry.
	r := b.postForm(e.URL+"/admin/users", url.Values{"csrf": {token}, "email": {"New.Hire@example.com"}, "given_name": {"New"}, "groups": {"eng\nops"}})
	if mustURL(t, r.URL).Path != "/admin/users/new.hire@example.com" {
		t.Fatalf("create user: %d %s\n%s", r.Status, r.URL, r.Body)
	}
	inv := b.postForm(e.URL+"/admin/users/new.hire@example.com/invite", url.Values{"csrf": {token}})
	img := inv.find(func(n *htmlNode) bool { return attr(n, "data-testid") == "invitation-qr" })
	link, _ := inv.testID("invitation-link")
	if img == nil || !strings.HasPrefix(link, e.URL+"/enroll?token=") {
		t.Fatalf("invitation page: no QR or link %q\n%s", link, inv.Body)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(attr(img, "src"), "data:image/png;base64,"))
	if err != nil {
		t.Fatal(err)
	}
	// Read by a decoder we did not write: it says the link shown.
	if read, err := qrtest.Read(raw); err != nil || read != link {
		t.Fatalf("the QR code reads %q (%v), want the link %q", read, err, link)
	}
	if w, h := attr(img, "width"), attr(img, "height"); w == "" || w != h || strings.Contains(w, ".") {
		t.Errorf("the QR code's image is %sx%s, want a square of whole pixels", w, h)
	}
	// The link works: a phone enrolls with its token.
	c := &deviceapi.Client{BaseURL: e.URL, Signer: &deviceproof.Signer{Key: e.newKey(), Clock: e.clock.Now}}
	if _, err := c.EnrollByInvitation(context.Background(), deviceapi.EnrollByInvitationRequest{Token: mustURL(t, link).Query().Get("token"), Name: "Hire's phone", Platform: "ios"}); err != nil {
		t.Fatalf("enroll with the console's invitation: %v", err)
	}

	// Suspend: the JSON API sees it, the audit log names the administrator.
	r = b.postForm(e.URL+"/admin/users/new.hire@example.com/status", url.Values{"csrf": {token}, "status": {"suspended"}})
	if st, _ := r.testID("user-status"); st != "suspended" {
		t.Fatalf("after suspend the page says %q", st)
	}
	var u struct {
		Status string   `json:"status"`
		Groups []string `json:"groups"`
	}
	e.do("GET", "/api/v1/admin/users/new.hire@example.com", adminToken, nil, http.StatusOK, &u)
	if u.Status != "suspended" || strings.Join(u.Groups, ",") != "eng,ops" {
		t.Fatalf("user as the API sees it: %+v", u)
	}
	if ev := e.events(audit.UserUpdated, "new.hire@example.com"); len(ev) == 0 || ev[0].Actor != "admin:root@example.com" {
		t.Errorf("user.updated events: %+v", ev)
	}

	// Revoking all of a user's phones asks for a fresh approval first: the first POST only leads to it.
	e.clock.Advance(6 * time.Minute)
	r = b.postForm(e.URL+"/admin/users/new.hire@example.com/devices/revoke", url.Values{"csrf": {token}})
	if !strings.Contains(r.URL, "/admin/signin/") {
		t.Fatalf("revoke all without a fresh approval: landed on %s", r.URL)
	}
	var devs struct {
		Devices []any `json:"devices"`
	}
	e.do("GET", "/api/v1/admin/users/new.hire@example.com/devices", adminToken, nil, http.StatusOK, &devs)
	if len(devs.Devices) != 1 {
		t.Fatalf("phones revoked without a fresh approval: %d left", len(devs.Devices))
	}
	if _, err := ph.ApproveByNumber(context.Background(), r.number(t)); err != nil {
		t.Fatal(err)
	}
	back := b.get(r.URL)
	if mustURL(t, back.URL).Path != "/admin/users/new.hire@example.com" {
		t.Fatalf("after the confirmation: %s", back.URL)
	}
	b.postForm(e.URL+"/admin/users/new.hire@example.com/devices/revoke", url.Values{"csrf": {token}})
	e.do("GET", "/api/v1/admin/users/new.hire@example.com/devices", adminToken, nil, http.StatusOK, &devs)
	if len(devs.Devices) != 0 {
		t.Fatalf("after a fresh approval, %d phones left", len(devs.Devices))
	}
}

func TestConsoleApplications(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ph := e.enrollAdmin("root@example.com")
	e.enroll("nophone.later@example.com")
	b := newBrowser(t)
	p := e.consoleSignIn(b, "/admin/apps/new", ph)
	token := csrfOf(t, p)

	r := b.postForm(e.URL+"/admin/apps", url.Values{"csrf": {token}, "name": {"Jira"}, "url": {"https://example.atlassian.net"}, "interface": {"saml2"}, "auth_type": {"push"}})
	appPath := mustURL(t, r.URL).Path
	id := strings.TrimPrefix(appPath, "/admin/apps/")

	// A value refused by the service is shown next to its field, with what was typed kept.
	bad := b.postForm(e.URL+appPath, url.Values{"csrf": {token}, "name": {"Jira"}, "acs_url": {"http://sp.example/acs"}, "audience": {"urn:x"},
		"attribute_profile": {"atlassian"}, "nameid_format": {"emailAddress"}, "sign": {"both"}})
	if bad.Status != http.StatusUnprocessableEntity || !strings.Contains(bad.Body, "http://sp.example/acs") || !strings.Contains(bad.Body, `class="error"`) {
		t.Fatalf("refused ACS URL: status %d\n%s", bad.Status, bad.Body)
	}
	// Settings saved through the form are the API's; the Atlassian warnings are shown on the page.
	ok := b.postForm(e.URL+appPath, url.Values{"csrf": {token}, "name": {"Jira"}, "audience": {"urn:not-atlassian"}, "acs_url": {"https://sp.example/acs"},
		"attribute_profile": {"atlassian"}, "nameid_format": {"persistent"}, "sign": {"assertion"}, "allowed_groups": {"eng\n\nops"},
		"relay_states": {"https://example.atlassian.net/"}})
	if w, _ := ok.testID("app-warnings"); !strings.Contains(w, "does not look like Atlassian") {
		t.Errorf("no Atlassian warning on the page: %q", w)
	}
	var a struct {
		Audience, ACSURL, NameIDFormat, AttributeProfile, Sign string
		AllowedGroups                                          []string `json:"allowed_groups"`
		RelayStates                                            []string `json:"relay_states"`
	}
	e.do("GET", "/api/v1/admin/apps/"+id, adminToken, nil, http.StatusOK, &a)
	if a.Audience != "urn:not-atlassian" || strings.Join(a.AllowedGroups, ",") != "eng,ops" || len(a.RelayStates) != 1 {
		t.Fatalf("app after the form: %+v", a)
	}

	// The SP's metadata, pasted, fills audience and ACS URL.
	md := `<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://sp.example/metadata"><SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://sp.example/saml/acs" index="0"/></SPSSODescriptor></EntityDescriptor>`
	b.postForm(e.URL+appPath+"/metadata", url.Values{"csrf": {token}, "metadata": {md}})
	var filled appView
	e.do("GET", "/api/v1/admin/apps/"+id, adminToken, nil, http.StatusOK, &filled)
	if filled.Audience != "https://sp.example/metadata" || filled.ACSURL != "https://sp.example/saml/acs" {
		t.Fatalf("after the metadata: audience %q, ACS %q", filled.Audience, filled.ACSURL)
	}
	if junk := b.postForm(e.URL+appPath+"/metadata", url.Values{"csrf": {token}, "metadata": {"<not metadata"}}); junk.Status >= 500 || junk.Status < 400 {
		t.Errorf("junk metadata: status %d", junk.Status)
	}

	// An unknown application is a clear 404 page.
	if nf := b.get(e.URL + "/admin/apps/nosuchapp"); nf.Status != http.StatusNotFound {
		t.Errorf("unknown application: status %d", nf.Status)
	}

	// Overview: today's approvals (the console sign-in was one), once the audit log has written it.
	e.events(audit.LoginApproved, ph.Email)
	ov := b.get(e.URL + "/admin")
	if s, _ := ov.testID("signins-today"); !strings.Contains(s, "1 approved") {
		t.Errorf("overview sign-ins today: %q", s)
	}
	// ... the applications still waiting for their Audience and ACS URL, and the users without a phone.
	var half struct{ ID string }
	e.do("POST", "/api/v1/admin/apps", adminToken, map[string]any{"name": "Half <done>", "interface": "saml2"}, http.StatusCreated, &half)
	e.do("POST", "/api/v1/admin/users", adminToken, map[string]any{"email": "nophone@example.com"}, http.StatusCreated, nil)
	ov = b.get(e.URL + "/admin")
	if s, _ := ov.testID("unconfigured"); !strings.Contains(s, "Half <done>") || !strings.Contains(ov.Body, "/admin/apps/"+half.ID) {
		t.Errorf("overview: the unconfigured application is not listed: %q", s)
	}
	if s, _ := ov.testID("without-phone"); !strings.Contains(s, "nophone@example.com") || strings.Contains(s, ph.Email) {
		t.Errorf("overview users without a phone: %q", s)
	}
	if _, ok := ov.testID("cert-expiring"); ok {
		t.Error("overview: a five-year certificate is said to be expiring")
	}

	// Deleting asks for a fresh approval first; after it, the same button deletes.
	e.clock.Advance(6 * time.Minute)
	r = b.postForm(e.URL+appPath+"/delete", url.Values{"csrf": {token}})
	e.do("GET", "/api/v1/admin/apps/"+id, adminToken, nil, http.StatusOK, nil)
	if _, err := ph.ApproveByNumber(context.Background(), r.number(t)); err != nil {
		t.Fatal(err)
	}
	if back := b.get(r.URL); mustURL(t, back.URL).Path != appPath {
		t.Fatalf("after the confirmation: %s", back.URL)
	}
	if gone := b.postForm(e.URL+appPath+"/delete", url.Values{"csrf": {token}}); mustURL(t, gone.URL).Path != "/admin/apps" {
		t.Fatalf("delete after a fresh approval landed on %s", gone.URL)
	}
	e.do("GET", "/api/v1/admin/apps/"+id, adminToken, nil, http.StatusNotFound, nil)
	if ev := e.events(audit.AppDeleted, ""); len(ev) != 1 || ev[0].Actor != "admin:root@example.com" {
		t.Errorf("app.deleted events: %+v", ev)
	}
}

func TestConsoleRolesAndSuspendedAdmin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ph := e.enroll("root@example.com")
	// Roles are checked like groups: only "admin" exists.
	e.do("PATCH", "/api/v1/admin/users/root@example.com", adminToken, map[string]any{"roles": []string{"root"}}, http.StatusBadRequest, nil)
	e.makeAdmin("root@example.com")
	var u struct {
		Roles []string `json:"roles"`
	}
	e.do("GET", "/api/v1/admin/users/root@example.com", adminToken, nil, http.StatusOK, &u)
	if len(u.Roles) != 1 || u.Roles[0] != "admin" {
		t.Fatalf("roles: %v", u.Roles)
	}
	// The phone is told what it approves: the console, not an application.
	b := newBrowser(t)
	p := b.get(e.URL + "/admin")
	w := b.postForm(e.URL+"/admin/signin", url.Values{"email": {ph.Email}, "next": {"/admin"}})
	if ch := ph.waitChallenge(t); ch.AppName != "Passport admin console" {
		t.Errorf("the phone shows %q", ch.AppName)
	}
	_ = p
	if _, err := ph.ApproveByNumber(context.Background(), w.number(t)); err != nil {
		t.Fatal(err)
	}
	if home := b.get(w.URL); h1(home) != "Overview" {
		t.Fatalf("after sign-in: %s %q", home.URL, h1(home))
	}
	// Suspended, or no longer an administrator: the console session ends at the next request.
	e.do("PATCH", "/api/v1/admin/users/root@example.com", adminToken, map[string]any{"roles": []string{}}, http.StatusOK, nil)
	if pg := b.get(e.URL + "/admin"); mustURL(t, pg.URL).Path != "/admin/signin" {
		t.Fatalf("a former administrator still sees %s", pg.URL)
	}
	e.makeAdmin("root@example.com")
	e.consoleSignIn(b, "/admin/users", ph)
	e.do("PATCH", "/api/v1/admin/users/root@example.com", adminToken, map[string]any{"status": "suspended"}, http.StatusOK, nil)
	if pg := b.get(e.URL + "/admin/users"); mustURL(t, pg.URL).Path != "/admin/signin" {
		t.Fatalf("a suspended administrator still sees %s", pg.URL)
	}
}

func TestConsoleActivity(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ph := e.enrollAdmin("root@example.com")
	for i := range 55 {
		e.do("POST", "/api/v1/admin/users", adminToken, map[string]any{"email": "u" + strconv.Itoa(i) + "@example.com"}, http.StatusCreated, nil)
	}
	b := newBrowser(t)
	e.events(audit.UserCreated, "u54@example.com") // written
	p := e.consoleSignIn(b, "/admin/activity?type=user.created", ph)
	rows := func(p *page) []string {
		var out []string
		p.find(func(n *htmlNode) bool {
			if n.Data == "tr" && n.Parent != nil && n.Parent.Data == "tbody" {
				out = append(out, text(n))
			}
			return false
		})
		return out
	}
	first := rows(p)
	next := p.find(func(n *htmlNode) bool { return attr(n, "data-testid") == "next-page" })
	if len(first) != 50 || next == nil {
		t.Fatalf("first page: %d rows, next link %v", len(first), next != nil)
	}
	second := b.get(e.URL + attr(next, "href"))
	seen := map[string]bool{}
	for _, r := range append(first, rows(second)...) {
		if !strings.Contains(r, "user.created") || seen[r] {
			t.Errorf("row %q: not a user.created event, or shown twice", r)
		}
		seen[r] = true
	}
	if len(seen) != 56 { // the 55 users, and root@example.com (created by its invitation)
		t.Errorf("%d distinct user.created rows over two pages, want 56", len(seen))
	}
	// Filters: one user; a time range in the future shows nothing; a malformed time is a clear 422.
	if one := rows(b.get(e.URL + "/admin/activity?email=u7@example.com")); len(one) != 1 || !strings.Contains(one[0], "u7@example.com") {
		t.Errorf("email filter: %q", one)
	}
	future := e.clock.Now().Add(48 * time.Hour).UTC().Format("2006-01-02T15:04")
	if none := b.get(e.URL + "/admin/activity?since=" + future); len(rows(none)) != 0 || !strings.Contains(none.Body, "No events.") {
		t.Errorf("a future since still lists %d events", len(rows(none)))
	}
	if bad := b.get(e.URL + "/admin/activity?since=yesterday"); bad.Status != http.StatusUnprocessableEntity {
		t.Errorf("a malformed time: status %d", bad.Status)
	}
}

func TestConsoleSignInRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ph := e.enrollAdmin("root@example.com")
	b := newBrowser(t)
	b.get(e.URL + "/admin")

	// A malformed address: the form again, saying why, with what was typed.
	bad := b.postForm(e.URL+"/admin/signin", url.Values{"email": {"root@@example.com"}, "next": {"/admin"}})
	if msg, _ := bad.testID("form-error"); bad.Status != http.StatusUnprocessableEntity || msg == "" || !strings.Contains(bad.Body, "root@@example.com") {
		t.Errorf("malformed address: %d %q", bad.Status, msg)
	}

	// Denied on the phone: said so, no session.
	w := b.postForm(e.URL+"/admin/signin", url.Values{"email": {ph.Email}, "next": {"/admin"}})
	ch := ph.waitChallenge(t)
	if _, err := ph.AnswerChallenge(context.Background(), ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionDeny}); err != nil {
		t.Fatal(err)
	}
	if d := b.get(w.URL); d.Status != http.StatusForbidden || !strings.Contains(d.Body, "denied on the phone") {
		t.Errorf("denied: %d\n%s", d.Status, d.Body)
	}

	// Another browser cannot use the sign-in's URL.
	w = b.postForm(e.URL+"/admin/signin", url.Values{"email": {ph.Email}, "next": {"/admin"}})
	if other := newBrowser(t).get(w.URL); other.Status != http.StatusNotFound {
		t.Errorf("another browser on the sign-in URL: status %d", other.Status)
	}

	// Nobody answers: expired.
	e.clock.Advance(6 * time.Minute)
	if x := b.get(w.URL); x.Status != http.StatusForbidden || !strings.Contains(x.Body, "expired") {
		t.Errorf("expired: %d\n%s", x.Status, x.Body)
	}
	if ev := e.events(audit.LoginExpired, ph.Email); len(ev) != 1 {
		t.Errorf("login.expired events: %d", len(ev))
	}
	for _, ck := range b.c.Jar.Cookies(mustURL(t, e.URL+"/admin")) {
		if ck.Name == "passport_admin" {
			t.Fatal("a refused sign-in left a console session cookie")
		}
	}
}

// TestConsoleOverviewCertificateExpiring: within 30 days of the signing certificate's end, the overview
// says so and leads to the Keys tab.
func TestConsoleOverviewCertificateExpiring(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ph := e.enrollAdmin("root@example.com")
	// The generated certificate is valid five years: come back 20 days before its end.
	e.clock.Advance(5*365*24*time.Hour - 20*24*time.Hour)
	b := newBrowser(t)
	ov := e.consoleSignIn(b, "/admin", ph)
	s, ok := ov.testID("cert-expiring")
	if !ok || !strings.Contains(s, "expires on") || !strings.Contains(ov.Body, `href="/admin/keys"`) {
		t.Fatalf("overview 20 days before the certificate's end: %q (%v)\n%s", s, ok, ov.Body)
	}
}

// TestConsoleSignInBounded: the sign-in form, which anyone may post, takes no more than the login page's.
func TestConsoleSignInBounded(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	resp, err := http.PostForm(e.URL+"/admin/signin", url.Values{"email": {strings.Repeat("a", 9000) + "@example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("a 9 KiB sign-in form: status %d, want 413", resp.StatusCode)
	}
}
