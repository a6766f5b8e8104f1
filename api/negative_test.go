package api_test

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	saml2 "github.com/russellhaering/gosaml2"

	"github.com/winkk/passport/api/deviceapi"
	"github.com/winkk/passport/authn/deviceproof"
	"github.com/winkk/passport/saml/samltest"
)

// loginTo parks a login for employee on app and returns the browser, the waiting page and the challenge.
func loginTo(t *testing.T, e *env, app appView, ph *phone) (*browser, *page, *deviceapi.Challenge) {
	t.Helper()
	b := newBrowser(t)
	waiting := b.identify(b.startLogin(e.sp(app), ""), ph.Email)
	waiting.number(t)
	ph.waitChallenge(t)
	// Earlier logins may still be pending: the newest is this one.
	list, err := ph.ListChallenges(context.Background())
	if err != nil || len(list.Challenges) == 0 {
		t.Fatalf("list challenges: %v", err)
	}
	return b, waiting, &list.Challenges[len(list.Challenges)-1]
}

// wantFailurePage checks the page says why the login failed and hands the SP a signed error Response with the
// given second-level status — never a Success.
func wantFailurePage(t *testing.T, e *env, p *page, sp *saml2.SAMLServiceProvider, wantText, wantStatus string) {
	t.Helper()
	msg, ok := p.testID("login-error")
	if !ok {
		t.Fatalf("no login-error on the page:\n%s", p.Body)
	}
	if !strings.Contains(strings.ToLower(msg), wantText) {
		t.Errorf("login-error %q does not say %q", msg, wantText)
	}
	action, form, ok := p.form()
	if !ok || action != sp.AssertionConsumerServiceURL {
		t.Fatalf("no error Response form to the ACS URL on the page:\n%s", p.Body)
	}
	xml, err := base64.StdEncoding.DecodeString(form.Get("SAMLResponse"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(xml, []byte(wantStatus)) || bytes.Contains(xml, []byte("status:Success")) {
		t.Errorf("error Response does not carry %s:\n%s", wantStatus, xml)
	}
	if _, err := sp.RetrieveAssertionInfo(form.Get("SAMLResponse")); err == nil {
		t.Error("gosaml2 accepted an error Response as a login")
	}
	samltest.XMLSecVerify(t, xml, e.key.Certificate)
	samltest.SchemaValid(t, samltest.ProtocolXSD, xml)
}

func TestApprovalRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.newApp("Jira", atlassianAudience, acsURL)
	ada := e.enroll(employee)
	ctx := context.Background()

	t.Run("wrong number denies the login", func(t *testing.T) {
		b, waiting, ch := loginTo(t, e, app, ada)
		wrong := waiting.number(t)%89 + 10
		_, err := ada.AnswerChallenge(ctx, ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionApprove, Number: wrong})
		if apiCode(err) != "422 number_mismatch" {
			t.Fatalf("wrong number: %s, want 422 number_mismatch", apiCode(err))
		}
		wantFailurePage(t, e, b.get(waiting.URL), e.sp(app), "did not match", "AuthnFailed")
		if _, err := ada.AnswerChallenge(ctx, ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionApprove, Number: waiting.number(t)}); apiCode(err) != "409 challenge_closed" {
			t.Errorf("right number after a wrong one: %s, want 409 challenge_closed", apiCode(err))
		}
	})

	t.Run("denied", func(t *testing.T) {
		b, waiting, ch := loginTo(t, e, app, ada)
		ans, err := ada.AnswerChallenge(ctx, ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionDeny})
		if err != nil || ans.State != deviceapi.StateDenied {
			t.Fatalf("deny: %v %+v", err, ans)
		}
		wantFailurePage(t, e, b.get(waiting.URL), e.sp(app), "denied", "AuthnFailed")
	})

	t.Run("second browser without the cookie", func(t *testing.T) {
		_, waiting, _ := loginTo(t, e, app, ada)
		if p := newBrowser(t).get(waiting.URL); p.Status != http.StatusForbidden {
			t.Errorf("other browser: status %d, want 403", p.Status)
		}
		resp, err := http.Get(waiting.URL + "/events")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("other browser events: status %d, want 403", resp.StatusCode)
		}
	})

	t.Run("approval replayed", func(t *testing.T) {
		_, waiting, ch := loginTo(t, e, app, ada)
		body := []byte(`{"decision":"approve","number":` + itoa(waiting.number(t)) + `}`)
		u := e.URL + "/api/v1/device/challenges/" + ch.ID + "/answer"
		proof, err := ada.Signer.Sign("POST", u, body)
		if err != nil {
			t.Fatal(err)
		}
		if st, _ := rawPost(t, u, proof, body); st != http.StatusOK {
			t.Fatalf("first answer: %d", st)
		}
		if st, code := rawPost(t, u, proof, body); st != http.StatusUnauthorized || code != "proof_replayed" {
			t.Errorf("replayed answer: %d %s, want 401 proof_replayed", st, code)
		}
	})

	// An approval by number reads the sign-ins that show its number in the round trip that claims its proof
	// (prefetchApproval): what it read must count for nothing unless the proof verified and its claim won.
	// Ben, not Ada: a user gets ten pushes an hour.
	ben := e.enroll("ben@example.com")
	// approvable: after what was refused, sign-in ch still waits, and ben approves it by the number it shows.
	approvable := func(t *testing.T, after string, ch *deviceapi.Challenge, shown *page) {
		t.Helper()
		if got, err := ben.GetChallenge(ctx, ch.ID); err != nil || got.State != deviceapi.StatePending {
			t.Errorf("after %s: %+v (%v), want pending", after, got, err)
		}
		if _, err := ben.ApproveByNumber(ctx, shown.number(t)); err != nil {
			t.Errorf("ben approves after %s: %v", after, err)
		}
	}
	t.Run("approval by number replayed", func(t *testing.T) {
		_, waiting, _ := loginTo(t, e, app, ben)
		body := []byte(`{"number":` + itoa(waiting.number(t)) + `}`)
		u := e.URL + deviceapi.PathApprove
		proof, err := ben.Signer.Sign("POST", u, body)
		if err != nil {
			t.Fatal(err)
		}
		if st, code := rawPost(t, u, proof, body); st != http.StatusOK {
			t.Fatalf("first approval: %d %s", st, code)
		}
		_, next, ch := loginTo(t, e, app, ben)
		if st, code := rawPost(t, u, proof, body); st != http.StatusUnauthorized || code != "proof_replayed" {
			t.Errorf("replayed approval: %d %s, want 401 proof_replayed", st, code)
		}
		// The replay's body, signed again, names the number the first approval took: no sign-in draws it
		// meanwhile, so the next one is still waiting for its own.
		approvable(t, "the replay", ch, next)
	})

	t.Run("approval by number signed by another key", func(t *testing.T) {
		_, waiting, ch := loginTo(t, e, app, ben)
		forged := &deviceapi.Client{BaseURL: e.URL, Signer: &deviceproof.Signer{Key: e.newKey(), KeyID: ben.ID, Clock: e.clock.Now}}
		if _, err := forged.ApproveByNumber(ctx, waiting.number(t)); apiCode(err) != "401 invalid_proof" {
			t.Errorf("forged proof: %s, want 401 invalid_proof", apiCode(err))
		}
		approvable(t, "the forged approval", ch, waiting)
	})

	t.Run("approval by number with a body that is not JSON", func(t *testing.T) {
		_, waiting, ch := loginTo(t, e, app, ben)
		u := e.URL + deviceapi.PathApprove
		for _, body := range []string{`{"number":` + itoa(waiting.number(t)) + `,`, `{"number":"` + itoa(waiting.number(t)) + `"}`, `{"number":7}`} {
			proof, err := ben.Signer.Sign("POST", u, []byte(body))
			if err != nil {
				t.Fatal(err)
			}
			if st, code := rawPost(t, u, proof, []byte(body)); st != http.StatusBadRequest || code != "invalid_request" {
				t.Errorf("approval %s: %d %s, want 400 invalid_request", body, st, code)
			}
		}
		approvable(t, "the bad approvals", ch, waiting)
	})

	t.Run("approval signed by another device", func(t *testing.T) {
		_, waiting, ch := loginTo(t, e, app, ada)
		// An attacker who knows the device id but not its key.
		forged := &deviceapi.Client{BaseURL: e.URL, Signer: &deviceproof.Signer{Key: e.newKey(), KeyID: ada.ID, Clock: e.clock.Now}}
		if _, err := forged.AnswerChallenge(ctx, ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionApprove, Number: waiting.number(t)}); apiCode(err) != "401 invalid_proof" {
			t.Errorf("forged proof: %s, want 401 invalid_proof", apiCode(err))
		}
	})

	t.Run("approval for another user's login", func(t *testing.T) {
		mallory := e.enroll("mallory@example.com")
		_, waiting, ch := loginTo(t, e, app, ada)
		if _, err := mallory.GetChallenge(ctx, ch.ID); apiCode(err) != "404 challenge_not_found" {
			t.Errorf("get: %s, want 404 challenge_not_found", apiCode(err))
		}
		if _, err := mallory.AnswerChallenge(ctx, ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionApprove, Number: waiting.number(t)}); apiCode(err) != "404 challenge_not_found" {
			t.Errorf("answer: %s, want 404 challenge_not_found", apiCode(err))
		}
		if list, err := mallory.ListChallenges(ctx); err != nil || len(list.Challenges) != 0 {
			t.Errorf("mallory sees challenges %+v (%v)", list, err)
		}
		// Ada can still approve her own login.
		if _, err := ada.AnswerChallenge(ctx, ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionApprove, Number: waiting.number(t)}); err != nil {
			t.Errorf("ada approves: %v", err)
		}
	})

	t.Run("invitation reused", func(t *testing.T) {
		token := e.invite("grace@example.com")
		first := &deviceapi.Client{BaseURL: e.URL, Signer: &deviceproof.Signer{Key: e.newKey(), Clock: e.clock.Now}}
		if _, err := first.EnrollByInvitation(ctx, deviceapi.EnrollByInvitationRequest{Token: token, Name: "one"}); err != nil {
			t.Fatalf("first use: %v", err)
		}
		second := &deviceapi.Client{BaseURL: e.URL, Signer: &deviceproof.Signer{Key: e.newKey(), Clock: e.clock.Now}}
		if _, err := second.EnrollByInvitation(ctx, deviceapi.EnrollByInvitationRequest{Token: token, Name: "two"}); apiCode(err) != "410 invitation_invalid" {
			t.Errorf("second use: %s, want 410 invitation_invalid", apiCode(err))
		}
	})

	// Last: it moves the clock.
	t.Run("expired", func(t *testing.T) {
		b, waiting, ch := loginTo(t, e, app, ada)
		e.clock.Advance(e.svc.Logins.TTL() + time.Second)
		wantFailurePage(t, e, b.get(waiting.URL), e.sp(app), "expired", "AuthnFailed")
		if _, err := ada.AnswerChallenge(ctx, ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionApprove, Number: waiting.number(t)}); apiCode(err) != "409 challenge_closed" {
			t.Errorf("late approval: %s, want 409 challenge_closed", apiCode(err))
		}
	})
}

func itoa(n int) string { return strconv.Itoa(n) }

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// rawPost sends a device call with a given proof and returns the status and error code.
func rawPost(t *testing.T, u, proof string, body []byte) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", u, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(deviceproof.Header, proof)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var eb deviceapi.ErrorBody
	_ = jsonUnmarshal(data, &eb)
	return resp.StatusCode, eb.Error.Code
}

// TestSSORefusals: a request that fails a check gets our error page, never a Response and never a login.
func TestSSORefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.newApp("Jira", atlassianAudience, acsURL)
	good := e.sp(app)

	deflate := func(b []byte) string {
		var buf bytes.Buffer
		w, _ := flate.NewWriter(&buf, flate.BestCompression)
		w.Write(b)
		w.Close()
		return base64.StdEncoding.EncodeToString(buf.Bytes())
	}
	redirect := func(samlRequest string) string {
		return app.SSOURL + "?" + url.Values{"SAMLRequest": {samlRequest}}.Encode()
	}
	withSP := func(change func(sp *saml2.SAMLServiceProvider)) string {
		sp := e.sp(app)
		change(sp)
		u, err := sp.BuildAuthURL("")
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	withDoc := func(change func(doc *etree.Document)) string {
		doc, err := good.BuildAuthRequestDocument()
		if err != nil {
			t.Fatal(err)
		}
		change(doc)
		u, err := good.BuildAuthURLFromDocument("", doc)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	replayed, err := good.BuildAuthURL("")
	if err != nil {
		t.Fatal(err)
	}
	if p := newBrowser(t).get(replayed); p.Status != http.StatusOK {
		t.Fatalf("first use of the request: %d", p.Status)
	}

	cases := []struct {
		name       string
		get        string
		post       url.Values
		wantStatus int
		wantText   string
	}{
		{name: "unregistered ACS URL", get: withSP(func(sp *saml2.SAMLServiceProvider) { sp.AssertionConsumerServiceURL = "https://evil.example/acs" }), wantStatus: 400, wantText: "not registered"},
		{name: "wrong Issuer", get: withSP(func(sp *saml2.SAMLServiceProvider) { sp.ServiceProviderIssuer = "https://evil.example/sp" }), wantStatus: 400, wantText: "service provider registered"},
		{name: "wrong Destination", get: withDoc(func(doc *etree.Document) { doc.Root().CreateAttr("Destination", "https://other.example/sso") }), wantStatus: 400, wantText: "different endpoint"},
		{name: "malformed base64", get: redirect("%%%not-base64%%%"), wantStatus: 400, wantText: "base64"},
		{name: "not deflated", get: redirect(base64.StdEncoding.EncodeToString([]byte("<samlp:AuthnRequest/>"))), wantStatus: 400, wantText: "compress"},
		{name: "deflate bomb", get: redirect(deflate(bytes.Repeat([]byte("A"), 50<<20))), wantStatus: 400, wantText: "too large"},
		{name: "not XML", get: redirect(deflate([]byte("hello"))), wantStatus: 400},
		{name: "oversized POST", post: url.Values{"SAMLRequest": {strings.Repeat("A", 600<<10)}}, wantStatus: 413},
		{name: "replayed request", get: replayed, wantStatus: 409, wantText: "already used"},
		{name: "unknown application", get: strings.Replace(replayed, "/saml/"+app.ID+"/", "/saml/nope/", 1), wantStatus: 404},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := newBrowser(t)
			var p *page
			if tc.post != nil {
				p = b.postForm(app.SSOURL, tc.post)
			} else {
				p = b.get(tc.get)
			}
			if p.Status != tc.wantStatus {
				t.Fatalf("status %d, want %d:\n%s", p.Status, tc.wantStatus, p.Body)
			}
			if strings.Contains(p.Body, "SAMLResponse") || strings.Contains(p.URL, "/login/") {
				t.Error("a refused request produced a Response or a login")
			}
			if tc.wantText != "" && !strings.Contains(strings.ToLower(p.Body), tc.wantText) {
				t.Errorf("page does not say %q:\n%s", tc.wantText, p.Body)
			}
			if strings.Contains(p.Body, "goroutine") || strings.Contains(p.Body, ".go:") {
				t.Error("page leaks internals")
			}
		})
	}

	t.Run("app not configured", func(t *testing.T) {
		var blank appView
		e.do("POST", "/api/v1/admin/apps", adminToken, map[string]any{"name": "Confluence", "interface": "saml2"}, http.StatusCreated, &blank)
		sp := e.sp(app)
		sp.IdentityProviderSSOURL = blank.SSOURL
		u, _ := sp.BuildAuthURL("")
		p := newBrowser(t).get(u)
		if p.Status != http.StatusConflict || !strings.Contains(p.Body, "not configured") {
			t.Errorf("status %d:\n%s", p.Status, p.Body)
		}
	})
}

type headerTransport struct {
	header, value string
}

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(h.header, h.value)
	return http.DefaultTransport.RoundTrip(r)
}

// TestForwardedForIsNotTrusted: without trusted proxies, a client cannot choose the address the phone shows
// or dodge per-client limits with X-Forwarded-For.
func TestForwardedForIsNotTrusted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.newApp("Jira", atlassianAudience, acsURL)
	ph := e.enroll(employee)
	b := newBrowser(t)
	b.c.Transport = headerTransport{"X-Forwarded-For", "203.0.113.66"}
	b.identify(b.startLogin(e.sp(app), ""), employee)
	ch := ph.waitChallenge(t)
	if ch.IP != "127.0.0.1" {
		t.Errorf("the phone shows %q, want the connection's address 127.0.0.1", ch.IP)
	}
}
