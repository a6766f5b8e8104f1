package api_test

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/winkk/passport/api/apitest"
	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/authn/audit"
)

// Offline codes through the real server: the phone's TOTP secret comes from its enrollment answer, the code
// is computed here by an independent RFC 6238 implementation, and typed into the login page's code form.

// totpCode is RFC 6238 (HMAC-SHA-1, 6 digits, 30 s steps) at t, written from the RFC rather than taken from
// the library the server uses.
func totpCode(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	key, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secret)
	if err != nil {
		t.Fatalf("offline secret %q is not base32: %v", secret, err)
	}
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(at.Unix()/30))
	m := hmac.New(sha1.New, key)
	m.Write(msg[:])
	sum := m.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	v := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	return fmt.Sprintf("%06d", v%1_000_000)
}

// midStep moves the server's clock to 5 seconds into a 30-second step, so that a code computed now is in
// the server's current step for the next 25 seconds whatever the wall clock.
func midStep(e *env) {
	now := e.clock.Now()
	e.clock.Advance((5*time.Second - now.Sub(now.Truncate(30*time.Second)) + 30*time.Second) % (30 * time.Second))
}

// code is phone ph's offline code at the server's time plus steps periods.
func (ph *phone) code(t *testing.T, e *env, steps int) string {
	t.Helper()
	if ph.Offline == nil || ph.Offline.Secret == "" {
		t.Fatalf("phone %s got no offline-code secret at enrollment", ph.ID)
	}
	return totpCode(t, ph.Offline.Secret, e.clock.Now().Add(time.Duration(steps)*30*time.Second))
}

// typeCode follows the waiting page's "Use a code from the app instead", types code into the form it shows
// and returns the page it ends on.
func (b *browser) typeCode(waiting *page, code string) *page {
	b.t.Helper()
	if _, ok := waiting.testID("use-code"); !ok {
		b.t.Fatalf("the waiting page offers no code:\n%s", waiting.Body)
	}
	self := strings.TrimSuffix(waiting.URL, "/")
	withForm := b.get(self + "?use=code")
	action, fields, ok := withForm.form()
	if _, hasInput := fields["code"]; !ok || !hasInput || !strings.HasSuffix(self, strings.TrimSuffix(action, "/code")) {
		b.t.Fatalf("no code form (action %q):\n%s", action, withForm.Body)
	}
	return b.postForm(self+"/code", url.Values{"code": {code}})
}

// codeRefused checks that p is the waiting page again, saying why the code was refused, with status.
func codeRefused(t *testing.T, p *page, status int) string {
	t.Helper()
	msg, ok := p.testID("code-error")
	if p.Status != status || !ok {
		t.Fatalf("code not refused as expected: status %d (want %d), code-error %v:\n%s", p.Status, status, ok, p.Body)
	}
	if _, ok := p.testID("match-number"); !ok {
		t.Fatalf("a refused code did not leave the login waiting:\n%s", p.Body)
	}
	return msg
}

// TestOfflineCodeSignsIn: a correct code signs the user in exactly as an approval would (Response checked by
// xmlsec1 and two SP libraries, session, login.approved with method offline_code naming the phone whose code
// matched); the same code a second time is refused; a code typed into one login completes only that one.
func TestOfflineCodeSignsIn(t *testing.T) {
	t.Parallel()
	e := newAuditEnv(t, apitest.Options{})
	jira := e.newApp("Jira", atlassianAudience, acsURL)
	ph := e.enroll(employee)
	other := e.enroll(employee) // a second phone of the same user
	midStep(e.env)
	if ph.Offline.Algorithm != "SHA1" || ph.Offline.Digits != 6 || ph.Offline.Period != 30 || !strings.HasPrefix(ph.Offline.URI, "otpauth://totp/") {
		t.Fatalf("offline-code parameters: %+v", ph.Offline)
	}

	// Two logins of the user wait at once; the code typed into the first completes only the first.
	b := newBrowser(t)
	waiting := b.identify(b.startLogin(e.sp(jira), ""), employee)
	b2 := newBrowser(t)
	waiting2 := b2.identify(b2.startLogin(e.sp(jira), ""), employee)
	code := ph.code(t, e.env, 0)
	done := b.typeCode(waiting, code)
	resp, _ := samlForm(t, done, acsURL)
	e.bothAccept(t, jira, resp, employee, []string{b.requestID})
	if _, ok := b2.get(waiting2.URL).testID("match-number"); !ok {
		t.Fatal("a code typed into one login completed another")
	}
	// The browser is signed in: its IdP session answers a second app at once.
	conf := e.newApp("Confluence", "https://example.atlassian.net/wiki", "http://127.0.0.1:9/wiki/callback")
	again := b.startLoginSession(e.sp(conf))
	samlForm(t, again, conf.ACSURL)

	// The same code again, on the other waiting login: refused, and the login still waits.
	codeRefused(t, b2.typeCode(waiting2, code), http.StatusBadRequest)
	// The other phone's code completes it, in its name.
	resp2, _ := samlForm(t, b2.typeCode(waiting2, other.code(t, e.env, 0)), acsURL)
	e.bothAccept(t, jira, resp2, employee, []string{b2.requestID})

	approved := e.events(t, "type=login.approved&email="+employee, func(es []audit.Event) bool { return len(es) == 2 })
	for i, want := range []string{other.ID, ph.ID} { // newest first
		ev := approved[i]
		if ev.Details["method"] != authn.MethodOfflineCode || ev.DeviceID != want || ev.Actor != "device:"+want || ev.ClientIP != "127.0.0.1" {
			t.Errorf("login.approved by code: %+v", ev)
		}
		if _, ok := ev.Details["phone_ip"]; ok {
			t.Errorf("a code typed in the browser is recorded as the phone's address: %+v", ev)
		}
	}
	e.events(t, "type=login.succeeded&email="+employee, func(es []audit.Event) bool { return len(es) == 3 }) // two codes, one from the session
}

// startLoginSession starts a login at an app for a browser that holds an IdP session: the Response comes at
// once, without the email step.
func (b *browser) startLoginSession(sp interface {
	BuildAuthURL(string) (string, error)
}) *page {
	b.t.Helper()
	u, err := sp.BuildAuthURL("")
	if err != nil {
		b.t.Fatal(err)
	}
	return b.get(u)
}

// TestOfflineCodeRefusals: codes from outside the allowed skew, another user's phone, malformed input and a
// browser without the login's cookie are refused; a login for an account that cannot be asked refuses a
// correct-looking code exactly as a wrong one (no probing); one step of skew each way is accepted.
func TestOfflineCodeRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	jira := e.newApp("Jira", atlassianAudience, acsURL)
	ada := e.enroll(employee)
	bob := e.enroll("bob@example.com")
	midStep(e)

	b := newBrowser(t)
	waiting := b.identify(b.startLogin(e.sp(jira), ""), employee)
	wrong := codeRefused(t, b.typeCode(waiting, ada.code(t, e, -3)), http.StatusBadRequest)
	codeRefused(t, b.typeCode(waiting, ada.code(t, e, 3)), http.StatusBadRequest)
	codeRefused(t, b.typeCode(waiting, bob.code(t, e, 0)), http.StatusBadRequest)
	codeRefused(t, b.typeCode(waiting, "12ab56"), http.StatusBadRequest)
	// Another browser cannot type a code into this login.
	if p := newBrowser(t).postForm(waiting.URL+"/code", url.Values{"code": {ada.code(t, e, 0)}}); p.Status != http.StatusForbidden {
		t.Fatalf("a code from a browser without the login's cookie: status %d", p.Status)
	}
	// One step either way is accepted: the phone's clock may be off by up to a period.
	samlForm(t, b.typeCode(waiting, ada.code(t, e, -1)), acsURL)
	b2 := newBrowser(t)
	samlForm(t, b2.typeCode(b2.identify(b2.startLogin(e.sp(jira), ""), employee), ada.code(t, e, 1)), acsURL)

	// Unknown, suspended and phone-less accounts: the same refusal, word for word, as a wrong code.
	e.do("POST", "/api/v1/admin/users", adminToken, map[string]any{"email": "nophone@example.com"}, http.StatusCreated, nil)
	sus := e.enroll("sus@example.com")
	e.do("PATCH", "/api/v1/admin/users/sus@example.com", adminToken, map[string]any{"status": "suspended"}, http.StatusOK, nil)
	for _, c := range []struct{ email, code string }{
		{"nobody@example.com", ada.code(t, e, 0)}, {"nophone@example.com", ada.code(t, e, 0)}, {"sus@example.com", sus.code(t, e, 0)},
	} {
		d := newBrowser(t)
		w := d.identify(d.startLogin(e.sp(jira), ""), c.email)
		if msg := codeRefused(t, d.typeCode(w, c.code), http.StatusBadRequest); msg != wrong {
			t.Errorf("%s: a code is refused with %q, a wrong code with %q", c.email, msg, wrong)
		}
	}
}

// TestOfflineCodeLockout: wrong codes lock codes out after the limit, saying until when, for that user from
// that network only: the same user from another network, and another user from the same network, still
// sign in with a code; pushes are not affected.
func TestOfflineCodeLockout(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	jira := e.newApp("Jira", atlassianAudience, acsURL)
	ada := e.enroll(employee)
	bob := e.enroll("bob@example.com")
	midStep(e)

	stranger := newBrowserFrom(t, "127.0.0.3")
	w := stranger.identify(stranger.startLogin(e.sp(jira), ""), employee)
	for i := range 4 {
		codeRefused(t, stranger.typeCode(w, fmt.Sprintf("%06d", 100000+i)), http.StatusBadRequest)
	}
	locked := codeRefused(t, stranger.typeCode(w, "999999"), http.StatusTooManyRequests)
	if !strings.Contains(locked, "until") || !strings.Contains(locked, "UTC") {
		t.Errorf("the lock-out does not say until when: %q", locked)
	}
	// Even the right code is refused from that network now.
	codeRefused(t, stranger.typeCode(w, ada.code(t, e, 0)), http.StatusTooManyRequests)

	// The employee's own network: unaffected.
	own := newBrowser(t)
	samlForm(t, own.typeCode(own.identify(own.startLogin(e.sp(jira), ""), employee), ada.code(t, e, 0)), acsURL)
	// Another user from the locked network: unaffected.
	other := newBrowserFrom(t, "127.0.0.3")
	samlForm(t, other.typeCode(other.identify(other.startLogin(e.sp(jira), ""), "bob@example.com"), bob.code(t, e, 0)), acsURL)
	// And the locked login can still be approved on the phone.
	if _, err := ada.ApproveByNumber(t.Context(), w.number(t)); err != nil {
		t.Fatalf("approve on the phone after a code lock-out: %v", err)
	}
	samlForm(t, stranger.get(w.URL), acsURL)
}

// TestOfflineCodeBurst: thirty wrong codes posted at once from one network are not all compared: each takes
// its place in the count first, so no more than the limit are answered "wrong code"; the rest are refused
// as locked, and none fails on the server's side.
func TestOfflineCodeBurst(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	jira := e.newApp("Jira", atlassianAudience, acsURL)
	e.enroll(employee)
	midStep(e)
	stranger := newBrowserFrom(t, "127.0.0.4")
	w := stranger.identify(stranger.startLogin(e.sp(jira), ""), employee)
	stranger.typeCode(w, "000000") // one try through the form, as a browser would
	var wrong, locked, other atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 30 {
		wg.Go(func() {
			<-start
			switch stranger.postForm(strings.TrimSuffix(w.URL, "/")+"/code", url.Values{"code": {fmt.Sprintf("%06d", 100001+i)}}).Status {
			case http.StatusBadRequest:
				wrong.Add(1)
			case http.StatusTooManyRequests:
				locked.Add(1)
			default:
				other.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	// The first try above was wrong too: at most three more "wrong" before the fifth locks.
	if wrong.Load() > 3 || other.Load() != 0 || wrong.Load()+locked.Load() != 30 {
		t.Errorf("a burst of 30 wrong codes: %d wrong, %d locked, %d other; want at most 3 compared as wrong", wrong.Load(), locked.Load(), other.Load())
	}
}

// TestOfflineCodesOff: with offline codes off, enrollment hands out no secret, the page offers no code and a
// posted code is refused.
func TestOfflineCodesOff(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *authn.Config) { c.DisableOfflineCodes = true })
	jira := e.newApp("Jira", atlassianAudience, acsURL)
	ph := e.enroll(employee)
	if ph.Offline != nil {
		t.Fatalf("enrollment gave an offline-code secret with codes off: %+v", ph.Offline)
	}
	b := newBrowser(t)
	waiting := b.identify(b.startLogin(e.sp(jira), ""), employee)
	if _, ok := waiting.testID("use-code"); ok || strings.Contains(waiting.Body, `name="code"`) {
		t.Fatalf("the page offers a code with codes off:\n%s", waiting.Body)
	}
	if p := b.get(waiting.URL + "?use=code"); strings.Contains(p.Body, `name="code"`) {
		t.Fatalf("the page shows a code form with codes off:\n%s", p.Body)
	}
	if p := b.postForm(waiting.URL+"/code", url.Values{"code": {"123456"}}); p.Status != http.StatusForbidden {
		t.Fatalf("a code posted with codes off: status %d", p.Status)
	}
	if _, ok := b.get(waiting.URL).testID("match-number"); !ok {
		t.Fatal("the refused code changed the login")
	}
}

// TestOfflineSecretNeverShown: with a key-encryption key, the secret is stored sealed; neither the secret nor
// a code typed appears in the audit log, the admin API's device views or the server's log.
func TestOfflineSecretNeverShown(t *testing.T) {
	t.Parallel()
	kek := []byte("0123456789abcdef0123456789abcdef")
	e := newAuditEnv(t, apitest.Options{Authn: func(c *authn.Config) { c.KeyEncryptionKey = kek }})
	jira := e.newApp("Jira", atlassianAudience, acsURL)
	ph := e.enroll(employee)
	midStep(e.env)
	b := newBrowser(t)
	waiting := b.identify(b.startLogin(e.sp(jira), ""), employee)
	wrongCode := "000000"
	if ph.code(t, e.env, 0) == wrongCode || ph.code(t, e.env, 1) == wrongCode || ph.code(t, e.env, -1) == wrongCode {
		wrongCode = "000001"
	}
	codeRefused(t, b.typeCode(waiting, wrongCode), http.StatusBadRequest)
	code := ph.code(t, e.env, 0)
	samlForm(t, b.typeCode(waiting, code), acsURL)
	e.events(t, "type=login.succeeded", func(es []audit.Event) bool { return len(es) == 1 })

	stored, err := e.svc.Devices.Get(t.Context(), employee, ph.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.OTP == nil || stored.OTP.Seal == "" || stored.OTP.Clear != "" || stored.OfflineSecret != "" {
		t.Fatalf("the device record does not hold the secret sealed: %+v", stored.OTP)
	}
	var places = map[string]string{"server log": e.logs.String()}
	for what, path := range map[string]string{"admin device view": "/api/v1/admin/users/" + employee + "/devices/" + ph.ID,
		"admin device list": "/api/v1/admin/users/" + employee + "/devices", "audit export": "/api/v1/admin/events/export"} {
		req, _ := http.NewRequest("GET", e.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", what, r.StatusCode, body)
		}
		places[what] = string(body)
	}
	for what, s := range places {
		for name, secret := range map[string]string{"secret": ph.Offline.Secret, "code": `"` + code + `"`, "wrong code": `"` + wrongCode + `"`, "code=": "=" + code} {
			if strings.Contains(s, secret) {
				t.Errorf("the %s holds the %s", what, name)
			}
		}
	}
}
