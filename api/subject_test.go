package api_test

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"github.com/beevik/etree"
	saml2 "github.com/russellhaering/gosaml2"

	"github.com/winkk/passport/saml/samltest"
)

const (
	classPPT     = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
	classOurs    = "urn:oasis:names:tc:SAML:2.0:ac:classes:MobileOneFactorUnregistered"
	classUnspec  = "urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified"
	formatEmail  = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
	formatTransi = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
)

// requestWith is an SSO redirect URL for sp's AuthnRequest with a Subject (when nameID is set) and a
// RequestedAuthnContext (when classes are given), in the places the schema puts them; it returns the
// request ID too.
func requestWith(t *testing.T, sp *saml2.SAMLServiceProvider, nameID, format, comparison string, classes ...string) (string, string) {
	t.Helper()
	doc, err := sp.BuildAuthRequestDocument()
	if err != nil {
		t.Fatal(err)
	}
	root := doc.Root()
	if nameID != "" {
		subject := etree.NewElement("saml:Subject")
		subject.CreateAttr("xmlns:saml", "urn:oasis:names:tc:SAML:2.0:assertion")
		id := subject.CreateElement("saml:NameID")
		id.CreateAttr("Format", format)
		id.SetText(nameID)
		at := len(root.Child)
		if policy := root.SelectElement("NameIDPolicy"); policy != nil {
			at = policy.Index()
		}
		root.InsertChildAt(at, subject)
	}
	if len(classes) > 0 {
		rc := root.CreateElement("samlp:RequestedAuthnContext")
		rc.CreateAttr("xmlns:samlp", "urn:oasis:names:tc:SAML:2.0:protocol")
		if comparison != "" {
			rc.CreateAttr("Comparison", comparison)
		}
		for _, c := range classes {
			ref := rc.CreateElement("saml:AuthnContextClassRef")
			ref.CreateAttr("xmlns:saml", "urn:oasis:names:tc:SAML:2.0:assertion")
			ref.SetText(c)
		}
	}
	xml, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	samltest.SchemaValid(t, samltest.ProtocolXSD, xml) // the request itself is what the schema allows
	u, err := sp.BuildAuthURLFromDocument("", doc)
	if err != nil {
		t.Fatal(err)
	}
	return root.SelectAttrValue("ID", ""), u
}

// TestRequestedSubject: a request that names its user gets an assertion about that user or none
// (saml-core §3.4.1).
func TestRequestedSubject(t *testing.T) {
	t.Parallel()
	samltest.NeedCheckers(t) // the second step counts the first one's push
	e := newEnv(t)
	jira := e.newApp("Jira", atlassianAudience, acsURL)
	ada, bob := e.enroll(employee), e.enroll("bob@example.com")

	t.Run("the page asks for that user", func(t *testing.T) {
		b := newBrowser(t)
		id, u := requestWith(t, e.sp(jira), strings.ToUpper(employee), formatEmail, "")
		p := b.get(u)
		if !strings.Contains(p.Body, `value="`+employee+`"`) {
			t.Fatalf("the email field is not filled with the requested user:\n%s", p.Body)
		}
		resp, _ := samlForm(t, approve(t, b, b.identify(p, employee), ada), acsURL)
		e.bothAccept(t, jira, resp, employee, []string{id})
	})
	t.Run("someone else identifying fails without a push", func(t *testing.T) {
		pushes := e.settledPushes(t, 1)
		b := newBrowser(t)
		_, u := requestWith(t, e.sp(jira), employee, formatEmail, "")
		p := b.identify(b.get(u), "bob@example.com")
		wantFailurePage(t, e, p, e.sp(jira), "different user", "UnknownPrincipal")
		if e.fcm.Attempts() != pushes {
			t.Error("a push was sent for a user the application did not ask for")
		}
	})
	t.Run("a session of someone else is not used", func(t *testing.T) {
		b := newBrowser(t)
		samlForm(t, approve(t, b, b.identify(b.startLogin(e.sp(jira), ""), "bob@example.com"), bob), acsURL)
		_, u := requestWith(t, e.sp(jira), employee, formatEmail, "")
		if p := b.get(u); !strings.Contains(p.URL, "/login/") {
			t.Fatalf("bob's session answered a request for %s: %s\n%s", employee, p.URL, p.Body)
		}
		id, u := requestWith(t, e.sp(jira), "bob@example.com", formatEmail, "")
		resp, _ := samlForm(t, b.get(u), acsURL) // his own: answered from the session
		e.bothAccept(t, jira, resp, "bob@example.com", []string{id})
	})
	t.Run("a persistent subject from an earlier assertion", func(t *testing.T) {
		conf := e.newApp("Confluence", "https://sp.example.test/confluence", "http://127.0.0.1:9/confluence/acs")
		e.do("PATCH", "/api/v1/admin/apps/"+conf.ID, adminToken, map[string]any{"nameid_format": "persistent"}, http.StatusOK, nil)
		b := newBrowser(t)
		first, _ := samlForm(t, approve(t, b, b.identify(b.startLogin(e.sp(conf), ""), employee), ada), conf.ACSURL)
		info, err := e.sp(conf).RetrieveAssertionInfo(first)
		if err != nil {
			t.Fatal(err)
		}
		const persistent = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
		id, u := requestWith(t, e.sp(conf), info.NameID, persistent, "")
		resp, _ := samlForm(t, b.get(u), conf.ACSURL) // the same user's session answers
		e.bothAccept(t, conf, resp, info.NameID, []string{id})
		other := newBrowser(t)
		_, u = requestWith(t, e.sp(conf), info.NameID, persistent, "")
		p := approve(t, other, other.identify(other.get(u), "bob@example.com"), bob)
		wantFailurePage(t, e, p, e.sp(conf), "different user", "UnknownPrincipal")
	})
	t.Run("a transient subject matches nobody", func(t *testing.T) {
		b := newBrowser(t)
		_, u := requestWith(t, e.sp(jira), "_3f9c2a", formatTransi, "")
		p := approve(t, b, b.identify(b.get(u), employee), ada)
		wantFailurePage(t, e, p, e.sp(jira), "different user", "UnknownPrincipal")
	})
}

// TestRequestedAuthnContext: what the SP requires of the authentication is met, or answered NoAuthnContext
// (saml-core §3.3.2.2.1).
func TestRequestedAuthnContext(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	jira := e.newApp("Jira", atlassianAudience, acsURL)
	ada := e.enroll(employee)
	classOf := func(t *testing.T, resp string) string {
		t.Helper()
		raw, err := base64.StdEncoding.DecodeString(resp)
		if err != nil {
			t.Fatal(err)
		}
		doc := etree.NewDocument()
		if err := doc.ReadFromBytes(raw); err != nil {
			t.Fatal(err)
		}
		ref := doc.FindElement("//AuthnContextClassRef")
		if ref == nil {
			t.Fatalf("no AuthnContextClassRef in\n%s", raw)
		}
		return ref.Text()
	}
	for _, tc := range []struct {
		name, comparison string
		classes          []string
		want             string // "" = NoAuthnContext
	}{
		{"exact password is refused", "", []string{classPPT}, ""},
		{"minimum password is met", "minimum", []string{classPPT}, classOurs},
		{"exact ours", "exact", []string{classOurs}, classOurs},
		{"exact unspecified is stated as such", "exact", []string{classUnspec}, classUnspec},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBrowser(t)
			id, u := requestWith(t, e.sp(jira), "", "", tc.comparison, tc.classes...)
			p := b.get(u)
			if tc.want == "" {
				if p.Status != http.StatusOK || strings.Contains(p.URL, "/login/") {
					t.Fatalf("status %d at %s", p.Status, p.URL)
				}
				_, form, ok := p.form()
				if !ok {
					t.Fatalf("no error Response:\n%s", p.Body)
				}
				raw, _ := base64.StdEncoding.DecodeString(form.Get("SAMLResponse"))
				if !strings.Contains(string(raw), "status:NoAuthnContext") || strings.Contains(string(raw), "status:Success") {
					t.Fatalf("want a NoAuthnContext Response:\n%s", raw)
				}
				samltest.XMLSecVerify(t, raw, e.key.Certificate)
				samltest.SchemaValid(t, samltest.ProtocolXSD, raw)
				return
			}
			resp, _ := samlForm(t, approve(t, b, b.identify(p, employee), ada), acsURL)
			e.bothAccept(t, jira, resp, employee, []string{id})
			if got := classOf(t, resp); got != tc.want {
				t.Errorf("AuthnContextClassRef %q, want %q", got, tc.want)
			}
		})
	}
}
