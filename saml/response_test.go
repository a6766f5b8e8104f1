package saml

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/winkk/passport/saml/samltest"
)

func TestMakeResponse(t *testing.T) {
	t.Parallel()
	idp := mustIdP(t)
	p := testResponseParams()
	resp, err := idp.MakeResponse(p)
	if err != nil {
		t.Fatal(err)
	}
	mustGolden(t, t.Name(), resp)

	t.Run("schema", func(t *testing.T) { samltest.SchemaValid(t, samltest.ProtocolXSD, resp) })
	t.Run("xmlsec1 response signature", func(t *testing.T) { samltest.XMLSecVerify(t, resp, idp.Certificate) })
	t.Run("xmlsec1 assertion signature", func(t *testing.T) {
		t.Parallel()
		samltest.XMLSecVerify(t, samltest.ExtractAssertion(t, resp), idp.Certificate)
	})
	t.Run("xmlsec1 refuses tampering", func(t *testing.T) {
		t.Parallel()
		for _, doc := range [][]byte{
			bytes.Replace(resp, []byte(">jane.doe@example.com</saml:NameID>"), []byte(">john.doe@example.com</saml:NameID>"), 1),
			bytes.Replace(resp, []byte("Status"), []byte("Statuz"), 2),
		} {
			if err := samltest.XMLSecCheck(t, doc, idp.Certificate); err == nil {
				t.Fatal("xmlsec1 accepted a tampered response")
			}
		}
		if err := samltest.XMLSecCheck(t, samltest.ExtractAssertion(t, bytes.Replace(resp, []byte("jira-users"), []byte("jira-admins"), 1)), idp.Certificate); err == nil {
			t.Fatal("xmlsec1 accepted a tampered assertion")
		}
		if err := samltest.XMLSecCheck(t, resp, mustCert(t, "idp-next-cert.pem")); err == nil {
			t.Fatal("xmlsec1 accepted the response under another key")
		}
	})
	t.Run("goxmldsig", func(t *testing.T) {
		t.Parallel()
		mustGoxmldsigValidate(t, resp, NamespaceProtocol, "Response", idp.Certificate)
		mustGoxmldsigValidate(t, resp, NamespaceAssertion, "Assertion", idp.Certificate)
	})
	t.Run("gosaml2", func(t *testing.T) {
		t.Parallel()
		info := mustGosaml2Accept(t, idp, resp, p.Destination, p.Audience)
		if info.NameID != p.NameID || info.SessionIndex != p.SessionIndex {
			t.Fatalf("gosaml2 read NameID %q SessionIndex %q", info.NameID, info.SessionIndex)
		}
		if got := info.Values.GetAll("groups"); len(got) != 2 || got[1] != "confluence-users & <admins>" {
			t.Fatalf("gosaml2 read groups %q", got)
		}
		if info.AuthnInstant == nil || !info.AuthnInstant.Equal(p.AuthnInstant.Truncate(time.Second)) {
			t.Fatalf("gosaml2 read AuthnInstant %v", info.AuthnInstant)
		}
	})
	t.Run("crewjam", func(t *testing.T) {
		t.Parallel()
		a := mustCrewjamAccept(t, idp, resp, p.Destination, p.Audience, []string{p.InResponseTo})
		if a.Subject.NameID.Value != p.NameID || a.Subject.NameID.Format != NameIDFormatEmailAddress {
			t.Fatalf("crewjam read NameID %+v", a.Subject.NameID)
		}
		if got := a.AuthnStatements[0].AuthnContext.AuthnContextClassRef.Value; got != AuthnContextMobileOneFactorUnregistered {
			t.Fatalf("crewjam read class ref %q", got)
		}
	})
	t.Run("structure", func(t *testing.T) {
		t.Parallel()
		root := mustParseDoc(t, resp).Root()
		mustChildOrder(t, root, "Issuer", "Signature", "Status", "Assertion")
		a := findElement(root, NamespaceAssertion, "Assertion")
		mustChildOrder(t, a, "Issuer", "Signature", "Subject", "Conditions", "AuthnStatement", "AttributeStatement")
		for _, c := range []struct{ el *etree.Element }{{root}, {a}} {
			sig := findElement(c.el, NamespaceDSig, "Signature")
			certs := sig.FindElements(".//X509Certificate")
			if len(certs) != 1 {
				t.Fatalf("KeyInfo holds %d certificates, want exactly 1", len(certs))
			}
		}
		scd := findElement(a, NamespaceAssertion, "SubjectConfirmationData")
		want := map[string]string{
			"Recipient":    testACSURL,
			"InResponseTo": p.InResponseTo,
			"NotOnOrAfter": "2026-12-01T09:35:00Z",
		}
		for k, v := range want {
			if got := attr(scd, k); got != v {
				t.Errorf("SubjectConfirmationData %s = %q, want %q", k, got, v)
			}
		}
		cond := findElement(a, NamespaceAssertion, "Conditions")
		if attr(cond, "NotBefore") != "2026-12-01T09:28:30Z" || attr(cond, "NotOnOrAfter") != "2026-12-01T09:35:00Z" {
			t.Errorf("Conditions window %s..%s", attr(cond, "NotBefore"), attr(cond, "NotOnOrAfter"))
		}
		if attr(root, "Destination") != testACSURL || attr(root, "IssueInstant") != "2026-12-01T09:30:00Z" {
			t.Errorf("Response Destination %q IssueInstant %q", attr(root, "Destination"), attr(root, "IssueInstant"))
		}
		if id := attr(root, "ID"); !isNCName(id) || id == attr(a, "ID") {
			t.Errorf("bad IDs %q %q", id, attr(a, "ID"))
		}
	})
}

func mustChildOrder(tb testing.TB, el *etree.Element, want ...string) {
	tb.Helper()
	var got []string
	for _, c := range el.ChildElements() {
		got = append(got, c.Tag)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		tb.Fatalf("<%s> children %v, want %v", el.Tag, got, want)
	}
}

// TestMakeResponseAccepted runs more shapes of Response past every verifier:
// unsolicited, without attributes, and with values that need escaping.
func TestMakeResponseAccepted(t *testing.T) {
	t.Parallel()
	tricky := "a&b <c> \"d\" 'e' ]]> \t tab\nline\r\ncrlf é 日本 🙂"
	tests := []struct {
		name   string
		modify func(*ResponseParams)
	}{
		{"unsolicited", func(p *ResponseParams) { p.InResponseTo = "" }},
		{"no attributes", func(p *ResponseParams) { p.Attributes = nil; p.SessionNotOnOrAfter = time.Time{} }},
		{"defaults", func(p *ResponseParams) {
			p.NameIDFormat, p.SessionIndex, p.AuthnContextClassRef, p.AuthnInstant = "", "", "", time.Time{}
		}},
		{"escaping", func(p *ResponseParams) {
			p.Destination = "https://sp.example.com/acs?a=1&b=\"2\"&c=<3>"
			p.Audience = "urn:sp:with spaces & ampersands <x>"
			p.NameID = "o'neil&co+<tag>@example.com"
			p.Attributes = []Attribute{{Name: "n&<\"x\">", FriendlyName: "f\tn", NameFormat: AttrNameFormatUnspecified, Values: []string{tricky, "", " lead and trail "}}}
		}},
		{"empty attribute", func(p *ResponseParams) { p.Attributes = []Attribute{{Name: "memberOf"}} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			idp := mustIdP(t)
			p := testResponseParams()
			tt.modify(&p)
			resp, err := idp.MakeResponse(p)
			if err != nil {
				t.Fatal(err)
			}
			samltest.SchemaValid(t, samltest.ProtocolXSD, resp)
			samltest.XMLSecVerify(t, resp, idp.Certificate)
			samltest.XMLSecVerify(t, samltest.ExtractAssertion(t, resp), idp.Certificate)
			mustGoxmldsigValidate(t, resp, NamespaceProtocol, "Response", idp.Certificate)
			va := mustGoxmldsigValidate(t, resp, NamespaceAssertion, "Assertion", idp.Certificate)
			if nid := findElement(va, NamespaceAssertion, "NameID"); nid.Text() != p.NameID {
				t.Fatalf("signed NameID %q, want %q", nid.Text(), p.NameID)
			}
			info := mustGosaml2Accept(t, idp, resp, p.Destination, p.Audience)
			for _, a := range p.Attributes {
				got := info.Values.GetAll(a.Name)
				if len(got) != len(a.Values) {
					t.Fatalf("attribute %q: got %q, want %q", a.Name, got, a.Values)
				}
				for i := range got {
					// We escape CR, so the signed text keeps it (checked with
					// goxmldsig above), but gosaml2 hands CRLF back as LF.
					if got[i] != strings.ReplaceAll(a.Values[i], "\r\n", "\n") {
						t.Fatalf("attribute %q value %d: got %q, want %q", a.Name, i, got[i], a.Values[i])
					}
				}
			}
			var ids []string
			if p.InResponseTo != "" {
				ids = []string{p.InResponseTo}
			}
			mustCrewjamAccept(t, idp, resp, p.Destination, p.Audience, ids)
		})
	}
}

func TestMakeResponseRefuses(t *testing.T) {
	t.Parallel()
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		idp    func(*IdentityProvider)
		params func(*ResponseParams)
	}{
		{"no destination", nil, func(p *ResponseParams) { p.Destination = "" }},
		{"no audience", nil, func(p *ResponseParams) { p.Audience = "" }},
		{"no name id", nil, func(p *ResponseParams) { p.NameID = "" }},
		{"control character", nil, func(p *ResponseParams) { p.NameID = "a\x00b" }},
		{"invalid utf-8", nil, func(p *ResponseParams) { p.Audience = "a\xffb" }},
		{"U+FFFE", nil, func(p *ResponseParams) { p.Attributes[0].Values[0] = "\uFFFE" }},
		{"attribute without name", nil, func(p *ResponseParams) { p.Attributes[0].Name = "" }},
		{"no key", func(i *IdentityProvider) { i.Key = nil }, nil},
		{"no certificate", func(i *IdentityProvider) { i.Certificate = nil }, nil},
		{"no entity id", func(i *IdentityProvider) { i.EntityID = "" }, nil},
		{"key does not match certificate", func(i *IdentityProvider) { i.Key = other }, nil},
		{"randomness fails", func(i *IdentityProvider) { i.Rand = failingReader{} }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			idp := mustIdP(t)
			if tt.idp != nil {
				tt.idp(idp)
			}
			p := testResponseParams()
			if tt.params != nil {
				tt.params(&p)
			}
			out, err := idp.MakeResponse(p)
			if err == nil || out != nil {
				t.Fatalf("got %d bytes, err %v; want an error", len(out), err)
			}
			if !strings.HasPrefix(err.Error(), "saml: ") {
				t.Fatalf("error %q lacks the package prefix", err)
			}
		})
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("entropy exhausted") }

func TestMakeErrorResponse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		p    ErrorParams
	}{
		{"authn failed", ErrorParams{InResponseTo: "_req-1", Destination: testACSURL, StatusCode: StatusResponder, SubStatusCode: StatusAuthnFailed, Message: "The login was denied on the phone."}},
		{"request denied", ErrorParams{InResponseTo: "_req-2", Destination: testACSURL, StatusCode: StatusRequester, SubStatusCode: StatusRequestDenied}},
		{"no passive", ErrorParams{InResponseTo: "_req-3", Destination: testACSURL, StatusCode: StatusResponder, SubStatusCode: StatusNoPassive}},
		{"invalid name id policy", ErrorParams{InResponseTo: "_req-4", Destination: testACSURL, StatusCode: StatusRequester, SubStatusCode: StatusInvalidNameIDPolicy}},
		{"unsolicited, top-level only, escaped message", ErrorParams{Destination: testACSURL, StatusCode: StatusResponder, Message: "a < b & c > d"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			idp := mustIdP(t)
			resp, err := idp.MakeErrorResponse(tt.p)
			if err != nil {
				t.Fatal(err)
			}
			if tt.name == "authn failed" {
				mustGolden(t, "TestMakeErrorResponse", resp)
			}
			samltest.SchemaValid(t, samltest.ProtocolXSD, resp)
			samltest.XMLSecVerify(t, resp, idp.Certificate)
			v := mustGoxmldsigValidate(t, resp, NamespaceProtocol, "Response", idp.Certificate)
			if findElement(v, NamespaceAssertion, "Assertion") != nil {
				t.Fatal("error response carries an assertion")
			}
			mustChildOrder(t, v, "Issuer", "Status")
			codes := v.FindElements(".//StatusCode")
			if attr(codes[0], "Value") != tt.p.StatusCode {
				t.Fatalf("top status %q", attr(codes[0], "Value"))
			}
			if tt.p.SubStatusCode != "" && (len(codes) != 2 || attr(codes[1], "Value") != tt.p.SubStatusCode) {
				t.Fatalf("sub status wrong: %d codes", len(codes))
			}
			if got := attr(v, "InResponseTo"); got != tt.p.InResponseTo {
				t.Fatalf("InResponseTo %q", got)
			}
			if m := v.FindElement(".//StatusMessage"); tt.p.Message != "" && (m == nil || m.Text() != tt.p.Message) {
				t.Fatalf("StatusMessage wrong")
			}
		})
	}
}

func TestMakeErrorResponseRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		p    ErrorParams
	}{
		{"no destination", ErrorParams{StatusCode: StatusResponder}},
		{"no status", ErrorParams{Destination: testACSURL}},
		{"success", ErrorParams{Destination: testACSURL, StatusCode: StatusSuccess}},
		{"control character", ErrorParams{Destination: testACSURL, StatusCode: StatusResponder, Message: "\x1b[31m"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if out, err := mustIdP(t).MakeErrorResponse(tt.p); err == nil {
				t.Fatalf("got %s, want an error", out)
			}
		})
	}
}

// TestMakeResponseDeterministic checks that a frozen clock and fixed
// randomness give byte-identical output, and fresh randomness fresh IDs.
func TestMakeResponseDeterministic(t *testing.T) {
	t.Parallel()
	a, err := mustIdP(t).MakeResponse(testResponseParams())
	if err != nil {
		t.Fatal(err)
	}
	b, err := mustIdP(t).MakeResponse(testResponseParams())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("same inputs gave different responses")
	}
	idp := mustIdP(t)
	idp.Rand = nil
	c, err := idp.MakeResponse(testResponseParams())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, c) {
		t.Fatal("crypto/rand gave the same IDs as the fixed source")
	}
}
