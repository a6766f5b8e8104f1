package api_test

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	dsig "github.com/russellhaering/goxmldsig"

	"github.com/winkk/passport/saml/samltest"
)

// TestNameIDFormats: each app issues its NameID format; persistent identifiers are stable per app and reveal
// nothing, transient ones change every time, and a request asking for a format the app does not issue gets
// InvalidNameIDPolicy instead of a login.
func TestNameIDFormats(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	jira := e.newApp("Jira", atlassianAudience, acsURL)
	conf := e.newApp("Confluence", "https://sp.example.test/confluence", "http://127.0.0.1:9/confluence/acs")
	ph := e.enroll(employee)

	nameID := func(a appView, force bool) (string, string) {
		t.Helper()
		sp := e.sp(a)
		sp.ForceAuthn = force
		b := newBrowser(t)
		resp, _ := samlForm(t, approve(t, b, b.identify(b.startLogin(sp, ""), employee), ph), a.ACSURL)
		info, err := sp.RetrieveAssertionInfo(resp)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := base64.StdEncoding.DecodeString(resp)
		return info.NameID, string(raw)
	}

	e.do("PATCH", "/api/v1/admin/apps/"+jira.ID, adminToken, map[string]any{"nameid_format": "persistent"}, http.StatusOK, nil)
	e.do("PATCH", "/api/v1/admin/apps/"+conf.ID, adminToken, map[string]any{"nameid_format": "persistent"}, http.StatusOK, nil)
	p1, raw := nameID(jira, false)
	p2, _ := nameID(jira, false)
	p3, _ := nameID(conf, false)
	if p1 == "" || p1 != p2 || p1 == p3 || strings.Contains(p1, "@") || strings.Contains(raw, "NameID Format=\"urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress") {
		t.Errorf("persistent NameIDs: %q %q (other app %q)", p1, p2, p3)
	}
	if !strings.Contains(raw, "nameid-format:persistent") {
		t.Error("the NameID does not say it is persistent")
	}

	e.do("PATCH", "/api/v1/admin/apps/"+jira.ID, adminToken, map[string]any{"nameid_format": "transient"}, http.StatusOK, nil)
	t1, _ := nameID(jira, false)
	t2, _ := nameID(jira, false)
	if t1 == t2 || strings.Contains(t1, "@") {
		t.Errorf("transient NameIDs %q %q", t1, t2)
	}

	t.Run("InvalidNameIDPolicy", func(t *testing.T) {
		sp := e.sp(jira)
		sp.NameIdFormat = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
		id, u := requestID(t, sp)
		p := newBrowser(t).get(u)
		resp, _ := samlForm(t, p, acsURL)
		raw, _ := base64.StdEncoding.DecodeString(resp)
		if !bytes.Contains(raw, []byte("status:InvalidNameIDPolicy")) || !bytes.Contains(raw, []byte(`InResponseTo="`+id+`"`)) || bytes.Contains(raw, []byte("Assertion")) {
			t.Errorf("not an InvalidNameIDPolicy answer:\n%s", raw)
		}
		samltest.XMLSecVerify(t, raw, e.key.Certificate)
		samltest.SchemaValid(t, samltest.ProtocolXSD, raw)
		if strings.Contains(p.URL, "/login/") {
			t.Error("the request went on to a login")
		}
	})
}

// TestSlowApprovalGetsAFreshAssertion: validity windows count from the moment the Response is issued, so an
// approval that took most of the login's life still yields an assertion valid for its whole lifetime.
func TestSlowApprovalGetsAFreshAssertion(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.newApp("Jira", atlassianAudience, acsURL)
	ph := e.enroll(employee)
	b := newBrowser(t)
	waiting := b.identify(b.startLogin(e.sp(app), ""), employee)
	e.clock.Advance(e.svc.Logins.TTL() - 20*time.Second) // the user takes almost five minutes
	resp, _ := samlForm(t, approve(t, b, waiting, ph), acsURL)
	// Four minutes after the Response is issued (nine after the request) the assertion is still good.
	sp := e.sp(app)
	sp.Clock = dsig.NewFakeClockAt(e.clock.Now().Add(4 * time.Minute))
	info, err := sp.RetrieveAssertionInfo(resp)
	if err != nil {
		t.Fatalf("gosaml2: %v", err)
	}
	if info.WarningInfo.InvalidTime {
		t.Error("the assertion's window was counted from the request, not from its issue")
	}
}
