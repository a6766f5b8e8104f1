package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	crewjam "github.com/crewjam/saml"
	saml2 "github.com/russellhaering/gosaml2"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/winkk/passport/api/deviceapi"
	"github.com/winkk/passport/saml/samltest"
)

// approve runs a whole phone approval on the waiting page p and returns the page that carries the Response.
func approve(t *testing.T, b *browser, p *page, ph *phone) *page {
	t.Helper()
	n := p.number(t)
	ch := ph.waitChallenge(t)
	if _, err := ph.AnswerChallenge(context.Background(), ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionApprove, Number: n}); err != nil {
		t.Fatalf("approve: %v", err)
	}
	return b.get(p.URL)
}

// samlForm returns the SAMLResponse and RelayState a page posts to the ACS URL, failing if there is none.
func samlForm(t *testing.T, p *page, acs string) (string, string) {
	t.Helper()
	action, form, ok := p.form()
	if !ok || action != acs || form.Get("SAMLResponse") == "" {
		t.Fatalf("page does not post a Response to %s (status %d):\n%s", acs, p.Status, p.Body)
	}
	return form.Get("SAMLResponse"), form.Get("RelayState")
}

// crewjamSP is crewjam/saml's SP for app, trusting our metadata.
func (e *env) crewjamSP(a appView) *crewjam.ServiceProvider {
	e.t.Helper()
	var md crewjam.EntityDescriptor
	if err := xml.Unmarshal(fetch(e.t, a.MetadataURL), &md); err != nil {
		e.t.Fatalf("crewjam reads our metadata: %v", err)
	}
	acs, _ := url.Parse(a.ACSURL)
	return &crewjam.ServiceProvider{EntityID: a.Audience, AcsURL: *acs, IDPMetadata: &md, AllowIDPInitiated: true, Clock: dsig.NewFakeClockAt(e.clock.Now())}
}

// bothAccept checks the Response with both SP libraries, xmlsec1 and the protocol XSD, failing t (the
// running test or subtest).
func (e *env) bothAccept(t testing.TB, a appView, samlResponse, email string, requestIDs []string) {
	t.Helper()
	info, err := e.sp(a).RetrieveAssertionInfo(samlResponse)
	if err != nil {
		t.Fatalf("gosaml2 refused: %v", err)
	}
	if info.NameID != email || info.WarningInfo.InvalidTime || info.WarningInfo.NotInAudience {
		t.Errorf("gosaml2: NameID %q warnings %+v", info.NameID, info.WarningInfo)
	}
	raw, _ := base64.StdEncoding.DecodeString(samlResponse)
	acs, _ := url.Parse(a.ACSURL)
	got, err := e.crewjamSP(a).ParseXMLResponse(raw, requestIDs, *acs)
	if err != nil {
		var ie *crewjam.InvalidResponseError
		if ok := asInvalid(err, &ie); ok {
			t.Fatalf("crewjam refused: %v (%v)", err, ie.PrivateErr)
		}
		t.Fatalf("crewjam refused: %v", err)
	}
	if got.Subject.NameID.Value != email {
		t.Errorf("crewjam NameID %q", got.Subject.NameID.Value)
	}
	samltest.XMLSecVerify(t, raw, e.key.Certificate)
	samltest.SchemaValid(t, samltest.ProtocolXSD, raw)
}

func asInvalid(err error, target **crewjam.InvalidResponseError) bool {
	ie, ok := err.(*crewjam.InvalidResponseError)
	if ok {
		*target = ie
	}
	return ok
}

// requestID returns the ID of the AuthnRequest in an SSO redirect URL.
func requestID(t *testing.T, sp *saml2.SAMLServiceProvider) (string, string) {
	t.Helper()
	doc, err := sp.BuildAuthRequestDocument()
	if err != nil {
		t.Fatal(err)
	}
	u, err := sp.BuildAuthURLFromDocument("", doc)
	if err != nil {
		t.Fatal(err)
	}
	return doc.Root().SelectAttrValue("ID", ""), u
}

func TestSessionAcrossApps(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	jira := e.newApp("Jira", atlassianAudience, acsURL)
	conf := e.newApp("Confluence", "https://sp.example.test/confluence", "http://127.0.0.1:9/confluence/acs")
	ph := e.enroll(employee)
	b := newBrowser(t)

	first := approve(t, b, b.identify(b.startLogin(e.sp(jira), ""), employee), ph)
	resp, _ := samlForm(t, first, acsURL)
	e.bothAccept(t, jira, resp, employee, []string{b.requestID})
	pushes := e.settledPushes(t, 1)

	t.Run("second app needs no push", func(t *testing.T) {
		id, u := requestID(t, e.sp(conf))
		p := b.get(u)
		resp, _ := samlForm(t, p, conf.ACSURL)
		e.bothAccept(t, conf, resp, employee, []string{id})
		if e.fcm.Attempts() != pushes {
			t.Error("a push was sent although the browser has a session")
		}
	})

	t.Run("IsPassive with a session answers at once", func(t *testing.T) {
		sp := e.sp(conf)
		sp.IsPassive = true
		id, u := requestID(t, sp)
		resp, _ := samlForm(t, b.get(u), conf.ACSURL)
		e.bothAccept(t, conf, resp, employee, []string{id})
	})

	t.Run("ForceAuthn asks the phone again", func(t *testing.T) {
		sp := e.sp(conf)
		sp.ForceAuthn = true
		id, u := requestID(t, sp)
		p := b.get(u)
		if !strings.Contains(p.URL, "/login/") {
			t.Fatalf("ForceAuthn did not go to the login page: %s", p.URL)
		}
		resp, _ := samlForm(t, approve(t, b, b.identify(p, employee), ph), conf.ACSURL)
		e.bothAccept(t, conf, resp, employee, []string{id})
	})

	t.Run("IsPassive without a session gets NoPassive", func(t *testing.T) {
		sp := e.sp(conf)
		sp.IsPassive = true
		id, u := requestID(t, sp)
		p := newBrowser(t).get(u)
		resp, _ := samlForm(t, p, conf.ACSURL)
		raw, _ := base64.StdEncoding.DecodeString(resp)
		if !bytes.Contains(raw, []byte("status:NoPassive")) || !bytes.Contains(raw, []byte(`InResponseTo="`+id+`"`)) {
			t.Errorf("not a NoPassive answer to %s:\n%s", id, raw)
		}
		samltest.XMLSecVerify(t, raw, e.key.Certificate)
		samltest.SchemaValid(t, samltest.ProtocolXSD, raw)
		if strings.Contains(p.URL, "/login/") {
			t.Error("IsPassive showed our login page")
		}
	})

	t.Run("admin ends the user's sessions", func(t *testing.T) {
		var out map[string]int
		e.do("DELETE", "/api/v1/admin/users/"+employee+"/sessions", adminToken, nil, http.StatusOK, &out)
		if out["ended"] < 1 {
			t.Errorf("ended %v sessions", out)
		}
		_, u := requestID(t, e.sp(conf))
		if p := b.get(u); !strings.Contains(p.URL, "/login/") {
			t.Errorf("after the admin ended the session the browser was still signed in: %s", p.URL)
		}
	})
}

func TestIdPInitiatedLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	jira := e.newApp("Jira", atlassianAudience, acsURL)
	e.do("PATCH", "/api/v1/admin/apps/"+jira.ID, adminToken, map[string]any{"relay_states": []string{"https://start.atlassian.com", "https://*.atlassian.net", "https://partner.example/app"}}, http.StatusOK, nil)
	// An entry is a plain prefix: one that a dot segment or an encoded slash would make ambiguous is refused.
	for _, bad := range []string{"https://partner.example/app/../x", "https://partner.example/%2e%2e/x", "https://partner.example/a%2fb"} {
		e.do("PATCH", "/api/v1/admin/apps/"+jira.ID, adminToken, map[string]any{"relay_states": []string{bad}}, http.StatusBadRequest, nil)
	}
	ph := e.enroll(employee)
	login := e.URL + "/saml/" + jira.ID + "/login"

	for _, tc := range []struct {
		rs   string
		want bool
	}{
		{"", true},
		{"https://start.atlassian.com", true},
		{"https://start.atlassian.com/jira", true},
		{"https://acme.atlassian.net/wiki/home", true},
		{"https://a.b.atlassian.net", true},
		{"https://atlassian.net", false},
		{"https://evil.example/?https://start.atlassian.com", false},
		{"https://start.atlassian.com.evil.example", false},
		{"http://start.atlassian.com", false},
		{"javascript:alert(1)", false},
		// A path under an entry counts after the dot segments are resolved, as the browser will resolve them,
		// encoded or not; an encoded slash or a backslash is refused rather than guessed at.
		{"https://partner.example/app", true},
		{"https://partner.example/app/page", true},
		{"https://partner.example/app/sub/../page", true},
		{"https://partner.example/app/./page", true},
		{"https://partner.example/apple", false},
		{"https://partner.example/app/../other", false},
		{"https://partner.example/app/..", false},
		{"https://partner.example/app/%2e%2e/other", false},
		{"https://partner.example/app/%2E%2E/other", false},
		{"https://partner.example/app/.%2e/other", false},
		{"https://partner.example/app/sub/../../other", false},
		{"https://partner.example/app%2f..%2fother", false},
		{"https://partner.example/app/%2Fother", false},
		{"https://partner.example/app/sub%5c..%5c..%5cother", false},
		{`https://partner.example/app/sub\..\..\other`, false},
		{"https://partner.example/app/%252e%252e/other", false},
	} {
		t.Run("RelayState "+tc.rs, func(t *testing.T) {
			b := newBrowser(t)
			p := b.get(login + "?" + url.Values{"RelayState": {tc.rs}}.Encode())
			if !tc.want {
				if p.Status != http.StatusBadRequest || strings.Contains(p.URL, "/login/") {
					t.Fatalf("RelayState %q was accepted: %d %s", tc.rs, p.Status, p.URL)
				}
				return
			}
			if p.Status != http.StatusOK || !strings.Contains(p.URL, "/login/") {
				t.Fatalf("status %d at %s:\n%s", p.Status, p.URL, p.Body)
			}
			if tc.rs != "https://start.atlassian.com" {
				return // one full approval is enough
			}
			resp, rs := samlForm(t, approve(t, b, b.identify(p, employee), ph), acsURL)
			if rs != tc.rs {
				t.Errorf("RelayState %q, want %q", rs, tc.rs)
			}
			raw, _ := base64.StdEncoding.DecodeString(resp)
			if bytes.Contains(raw, []byte("InResponseTo")) {
				t.Error("an unsolicited Response carries InResponseTo")
			}
			e.bothAccept(t, jira, resp, employee, nil)
		})
	}
}

func TestUsersAndSuspension(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	jira := e.newApp("Jira", atlassianAudience, acsURL)
	e.do("PATCH", "/api/v1/admin/apps/"+jira.ID, adminToken, map[string]any{"attribute_profile": "atlassian"}, http.StatusOK, nil)

	var u map[string]any
	e.do("POST", "/api/v1/admin/users", adminToken, map[string]any{"email": "Grace@Example.com", "given_name": "Grace", "family_name": "Hopper", "groups": []string{"jira-users"}}, http.StatusCreated, &u)
	if u["email"] != "grace@example.com" || u["status"] != "active" {
		t.Errorf("created %v", u)
	}
	if st, code, _ := e.call("POST", "/api/v1/admin/users", adminToken, "application/json", `{"email":"grace@example.com"}`); st != 409 || code != "conflict" {
		t.Errorf("duplicate user: %d %s", st, code)
	}
	for _, bad := range []string{`{"email":"x"}`, `{"email":"grace2@example.com","status":"frozen"}`, `{}`} {
		if st, _, _ := e.call("POST", "/api/v1/admin/users", adminToken, "application/json", bad); st != 400 {
			t.Errorf("POST %s: %d, want 400", bad, st)
		}
	}
	ph := e.enroll("grace@example.com")
	var list struct{ Users []map[string]any }
	e.do("GET", "/api/v1/admin/users", adminToken, nil, http.StatusOK, &list)
	if len(list.Users) != 1 {
		t.Errorf("users: %v", list)
	}

	t.Run("Atlassian attributes", func(t *testing.T) {
		b := newBrowser(t)
		resp, _ := samlForm(t, approve(t, b, b.identify(b.startLogin(e.sp(jira), ""), "grace@example.com"), ph), acsURL)
		info, err := e.sp(jira).RetrieveAssertionInfo(resp)
		if err != nil {
			t.Fatal(err)
		}
		const claims = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/"
		for name, want := range map[string]string{"emailaddress": "grace@example.com", "givenname": "Grace", "surname": "Hopper", "name": "Grace Hopper"} {
			if got := info.Values.Get(claims + name); got != want {
				t.Errorf("%s = %q, want %q", name, got, want)
			}
		}
	})

	t.Run("attribute map renames and drops fields", func(t *testing.T) {
		e.do("PATCH", "/api/v1/admin/apps/"+jira.ID, adminToken, map[string]any{"attribute_profile": "default",
			"attribute_map": map[string]string{"email": "mail", "groups": "urn:oid:1.3.6.1.4.1.5923.1.5.1.1", "given_name": ""}}, http.StatusOK, nil)
		defer e.do("PATCH", "/api/v1/admin/apps/"+jira.ID, adminToken, map[string]any{"attribute_profile": "atlassian", "attribute_map": map[string]string{}}, http.StatusOK, nil)
		b := newBrowser(t)
		resp, _ := samlForm(t, approve(t, b, b.identify(b.startLogin(e.sp(jira), ""), "grace@example.com"), ph), acsURL)
		info, err := e.sp(jira).RetrieveAssertionInfo(resp)
		if err != nil {
			t.Fatal(err)
		}
		if info.Values.Get("mail") != "grace@example.com" || info.Values.Get("urn:oid:1.3.6.1.4.1.5923.1.5.1.1") != "jira-users" || info.Values.Get("family_name") != "Hopper" {
			t.Errorf("attributes %v", info.Values)
		}
		if _, ok := info.Values["given_name"]; ok {
			t.Error("a field mapped to \"\" was sent")
		}
		if st, _, _ := e.call("PATCH", "/api/v1/admin/apps/"+jira.ID, adminToken, "application/json", `{"attribute_map":{"password":"pw"}}`); st != 400 {
			t.Errorf("unknown user field accepted: %d", st)
		}
	})

	t.Run("suspended user gets no push and cannot approve", func(t *testing.T) {
		e.do("PATCH", "/api/v1/admin/users/grace@example.com", adminToken, map[string]any{"status": "suspended"}, http.StatusOK, nil)
		pushes := e.settledPushes(t, 2) // the two logins above
		b := newBrowser(t)
		p := b.identify(b.startLogin(e.sp(jira), ""), "grace@example.com")
		// The page is the one every account gets (no account probing, see TestNoAccountProbing), but nothing
		// can approve it: the login ends when it expires. (A minute on, so that its number, if it is one the
		// phone approved above, is not that approval sent again: TestApprovalSentAgain.)
		e.clock.Advance(61 * time.Second)
		if _, err := ph.ApproveByNumber(context.Background(), p.number(t)); apiCode(err) != "404 no_matching_challenge" {
			t.Errorf("the suspended user's phone approved: %v", err)
		}
		if e.fcm.Attempts() != pushes {
			t.Error("a push was sent for a suspended user")
		}
		if _, ok := b.get(p.URL).testID("match-number"); !ok {
			t.Error("the login of a suspended user does not wait like any other")
		}
	})

	t.Run("admin revokes a device", func(t *testing.T) {
		var devs struct{ Devices []map[string]any }
		e.do("GET", "/api/v1/admin/users/grace@example.com/devices", adminToken, nil, http.StatusOK, &devs)
		if len(devs.Devices) != 1 || devs.Devices[0]["id"] != ph.ID {
			t.Fatalf("devices %v", devs)
		}
		// The public key is shown (receipts are checked with it), never anything private.
		if jwk, ok := devs.Devices[0]["public_key"].(map[string]any); !ok || jwk["kty"] != "EC" || jwk["d"] != nil {
			t.Errorf("admin view's public_key: %v", devs.Devices[0]["public_key"])
		}
		for _, secret := range []string{"otp", "fcm_token", "key_thumbprint"} {
			if _, ok := devs.Devices[0][secret]; ok {
				t.Errorf("admin view shows the device's %s", secret)
			}
		}
		e.do("DELETE", "/api/v1/admin/users/grace@example.com/devices/"+ph.ID, adminToken, nil, http.StatusNoContent, nil)
		if _, err := ph.ListDevices(context.Background()); apiCode(err) != "401 unknown_device" {
			t.Errorf("revoked device: %s, want 401 unknown_device", apiCode(err))
		}
	})

	t.Run("delete", func(t *testing.T) {
		e.do("DELETE", "/api/v1/admin/users/grace@example.com", adminToken, nil, http.StatusNoContent, nil)
		if st, _, _ := e.call("GET", "/api/v1/admin/users/grace@example.com", adminToken, "", ""); st != 404 {
			t.Errorf("after delete: %d", st)
		}
	})
}

// TestEndedSignIns: what one approval opened ends with what ends it. Removing the phone that approved signs
// its browser out (a stolen phone's own logins included), and no reload hands out the Success Response again
// once the user is signed out, suspended, or the approving phone is gone.
func TestEndedSignIns(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	jira := e.newApp("Jira", atlassianAudience, acsURL)
	conf := e.newApp("Confluence", "https://sp.example.test/confluence", "http://127.0.0.1:9/confluence/acs")
	kept, stolen := e.enroll(employee), e.enroll(employee)
	signIn := func(t *testing.T, ph *phone) (*browser, *page) {
		t.Helper()
		b := newBrowser(t)
		p := approve(t, b, b.identify(b.startLogin(e.sp(jira), ""), employee), ph)
		samlForm(t, p, acsURL)
		return b, p
	}

	byKept, keptPage := signIn(t, kept)
	byStolen, stolenPage := signIn(t, stolen)

	e.do("DELETE", "/api/v1/admin/users/"+employee+"/devices/"+stolen.ID, adminToken, nil, http.StatusNoContent, nil)
	t.Run("the revoked phone's browser is signed out", func(t *testing.T) {
		_, u := requestID(t, e.sp(conf))
		if p := byStolen.get(u); !strings.Contains(p.URL, "/login/") {
			t.Errorf("the browser the revoked phone approved still signs in without a push: %s\n%s", p.URL, p.Body)
		}
		if again := byStolen.get(stolenPage.URL); again.Status != http.StatusForbidden || strings.Contains(again.Body, "SAMLResponse") {
			t.Errorf("reloading its answered login: %d\n%s", again.Status, again.Body)
		}
	})
	t.Run("the other phone's browser is not", func(t *testing.T) {
		_, u := requestID(t, e.sp(conf))
		samlForm(t, byKept.get(u), "http://127.0.0.1:9/confluence/acs")
		if again := byKept.get(keptPage.URL); again.Status != http.StatusOK || !strings.Contains(again.Body, "SAMLResponse") {
			t.Errorf("reloading a live sign-in: %d", again.Status)
		}
	})
	t.Run("suspension ends the reload too", func(t *testing.T) {
		e.do("PATCH", "/api/v1/admin/users/"+employee, adminToken, map[string]any{"status": "suspended"}, http.StatusOK, nil)
		again := byKept.get(keptPage.URL)
		if again.Status != http.StatusForbidden || strings.Contains(again.Body, "SAMLResponse") || !strings.Contains(again.Body, "sign-in has ended") {
			t.Errorf("reloading after suspension: %d\n%s", again.Status, again.Body)
		}
	})
}
