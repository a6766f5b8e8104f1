package saml

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	crewjam "github.com/crewjam/saml"
	saml2 "github.com/russellhaering/gosaml2"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/winkk/passport/saml/samltest"
)

// logoutRequestXML is an SP's LogoutRequest with the values testLogoutCheck
// expects. Modify it with replace.
const logoutRequestXML = `<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"` +
	` ID="_lo-77c1" Version="2.0" IssueInstant="2026-12-01T09:29:50Z" NotOnOrAfter="2026-12-01T09:34:50Z"` +
	` Destination="https://passport.example.com/saml/app1/slo">` +
	`<saml:Issuer>https://auth.atlassian.com/saml/0123abcd/</saml:Issuer>` +
	`<saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">jane.doe@example.com</saml:NameID>` +
	`<samlp:SessionIndex>_sess-1</samlp:SessionIndex>` +
	`</samlp:LogoutRequest>`

// testSPSLOURL is the SP's own SLO endpoint, where the IdP's LogoutResponses
// and LogoutRequests go.
const testSPSLOURL = "https://sp.example.com/saml/slo?tenant=0123abcd"

func testLogoutCheck() LogoutCheck {
	return LogoutCheck{Audience: testAudience, SLOURL: testSLOURL}
}

func spPolicy(tb testing.TB) SignaturePolicy {
	tb.Helper()
	return SignaturePolicy{Certificates: []*x509.Certificate{mustCert(tb, "sp-cert.pem")}}
}

func TestParseLogoutRequest(t *testing.T) {
	t.Parallel()
	r, err := ParseLogoutRequest([]byte(logoutRequestXML))
	if err != nil {
		t.Fatal(err)
	}
	if r.ID != "_lo-77c1" || r.Version != "2.0" || r.Issuer != testAudience || r.Destination != testSLOURL ||
		r.NameID != "jane.doe@example.com" || r.NameIDFormat != NameIDFormatEmailAddress || r.Signed ||
		!r.IssueInstant.Equal(time.Date(2026, 12, 1, 9, 29, 50, 0, time.UTC)) ||
		!r.NotOnOrAfter.Equal(time.Date(2026, 12, 1, 9, 34, 50, 0, time.UTC)) ||
		len(r.SessionIndexes) != 1 || r.SessionIndexes[0] != "_sess-1" {
		t.Fatalf("got %+v", r)
	}
	t.Run("several session indexes, no optional attributes", func(t *testing.T) {
		t.Parallel()
		doc := replace(logoutRequestXML, ` NotOnOrAfter="2026-12-01T09:34:50Z"`, "")
		doc = replace(doc, ` Destination="https://passport.example.com/saml/app1/slo"`, "")
		doc = replace(doc, `</samlp:SessionIndex>`, `</samlp:SessionIndex><samlp:SessionIndex> _sess-2 </samlp:SessionIndex>`)
		r, err := ParseLogoutRequest([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		if !r.NotOnOrAfter.IsZero() || r.Destination != "" || strings.Join(r.SessionIndexes, ",") != "_sess-1,_sess-2" {
			t.Fatalf("got %+v", r)
		}
	})
	t.Run("signed", func(t *testing.T) {
		t.Parallel()
		r, err := ParseLogoutRequest(signXML(t, logoutRequestXML, signOpts{}))
		if err != nil || !r.Signed {
			t.Fatalf("err %v signed %v", err, r != nil && r.Signed)
		}
	})
}

func logoutRequestRefusals() []refusal {
	tooMany := logoutRequestXML
	for range maxSessionIndexes {
		tooMany = replace(tooMany, `</samlp:LogoutRequest>`, `<samlp:SessionIndex>s</samlp:SessionIndex></samlp:LogoutRequest>`)
	}
	return []refusal{
		{"authn request", authnRequestXML, CodeMalformedRequest},
		{"wrong namespace", `<LogoutRequest xmlns="urn:evil" ID="a" Version="2.0"/>`, CodeMalformedRequest},
		{"not xml", `<samlp:LogoutRequest`, CodeMalformedXML},
		{"doctype", `<!DOCTYPE x [<!ENTITY e "x">]>` + logoutRequestXML, CodeMalformedXML},
		{"comment in name id", replace(logoutRequestXML, "jane.doe@example.com", "jane.doe<!---->@example.com"), CodeMalformedRequest},
		{"element in name id", replace(logoutRequestXML, "jane.doe@example.com", "jane.doe<x/>@example.com"), CodeMalformedRequest},
		{"comment in issuer", replace(logoutRequestXML, "0123abcd/</saml:Issuer>", "0123abcd/<!----></saml:Issuer>"), CodeMalformedRequest},
		{"issuer with wrong format", replace(logoutRequestXML, "<saml:Issuer>", `<saml:Issuer Format="`+NameIDFormatTransient+`">`), CodeMalformedRequest},
		{"comment in session index", replace(logoutRequestXML, "_sess-1", "_sess<!---->-1"), CodeMalformedRequest},
		{"no name id", replace(logoutRequestXML, `<saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">jane.doe@example.com</saml:NameID>`, ""), CodeMalformedRequest},
		{"empty name id", replace(logoutRequestXML, "jane.doe@example.com", ""), CodeMalformedRequest},
		{"encrypted id", replace(logoutRequestXML, `<saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">jane.doe@example.com</saml:NameID>`, `<saml:EncryptedID/>`), CodeMalformedRequest},
		{"base id", replace(logoutRequestXML, `<saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">jane.doe@example.com</saml:NameID>`, `<saml:BaseID/>`), CodeMalformedRequest},
		{"two name ids", replace(logoutRequestXML, `<samlp:SessionIndex>`, `<saml:NameID>john.doe@example.com</saml:NameID><samlp:SessionIndex>`), CodeDuplicateElement},
		{"name id and encrypted id", replace(logoutRequestXML, `<samlp:SessionIndex>`, `<saml:EncryptedID/><samlp:SessionIndex>`), CodeDuplicateElement},
		{"two issuers", replace(logoutRequestXML, `<saml:NameID`, `<saml:Issuer>https://evil.example</saml:Issuer><saml:NameID`), CodeDuplicateElement},
		{"two extensions", replace(logoutRequestXML, `<saml:NameID`, `<samlp:Extensions/><samlp:Extensions/><saml:NameID`), CodeDuplicateElement},
		{"bad issue instant", replace(logoutRequestXML, "2026-12-01T09:29:50Z", "now"), CodeMalformedRequest},
		{"bad not on or after", replace(logoutRequestXML, "2026-12-01T09:34:50Z", "later"), CodeMalformedRequest},
		{"too many session indexes", tooMany, CodeMalformedRequest},
		{"duplicate attribute", replace(logoutRequestXML, `Version="2.0"`, `Version="2.0" ID="_x"`), CodeMalformedXML},
	}
}

func TestParseLogoutRequestRefuses(t *testing.T) {
	t.Parallel()
	for _, tt := range logoutRequestRefusals() {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := ParseLogoutRequest([]byte(tt.doc))
			if r != nil {
				t.Fatalf("got %+v with an error", r)
			}
			wantCode(t, err, tt.code)
		})
	}
}

func TestValidateLogoutRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		modify func(*LogoutRequest)
		code   string // "" = valid
	}{
		{"valid", func(*LogoutRequest) {}, ""},
		{"no destination, no expiry", func(r *LogoutRequest) { r.Destination, r.NotOnOrAfter = "", time.Time{} }, ""},
		{"expiry just within the skew", func(r *LogoutRequest) { r.NotOnOrAfter = testNow.Add(-89 * time.Second) }, ""},
		{"version 1.1", func(r *LogoutRequest) { r.Version = "1.1" }, CodeVersionMismatch},
		{"no ID", func(r *LogoutRequest) { r.ID = "" }, CodeMissingID},
		{"no issue instant", func(r *LogoutRequest) { r.IssueInstant = time.Time{} }, CodeMissingIssueInstant},
		{"issued too long ago", func(r *LogoutRequest) { r.IssueInstant = testNow.Add(-7 * time.Minute) }, CodeRequestExpired},
		{"issued in the future", func(r *LogoutRequest) { r.IssueInstant = testNow.Add(2 * time.Minute) }, CodeRequestFromFuture},
		{"not on or after has passed", func(r *LogoutRequest) { r.NotOnOrAfter = testNow.Add(-90 * time.Second) }, CodeRequestExpired},
		{"no issuer", func(r *LogoutRequest) { r.Issuer = "" }, CodeIssuerMismatch},
		{"other issuer", func(r *LogoutRequest) { r.Issuer = "https://evil.example" }, CodeIssuerMismatch},
		{"other destination", func(r *LogoutRequest) { r.Destination = testSSOURL }, CodeDestinationMismatch},
		{"signed without destination", func(r *LogoutRequest) { r.Destination, r.Signed = "", true }, CodeDestinationMismatch},
	}
	idp := mustIdP(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := ParseLogoutRequest([]byte(logoutRequestXML))
			if err != nil {
				t.Fatal(err)
			}
			tt.modify(r)
			err = idp.ValidateLogoutRequest(r, testLogoutCheck())
			if tt.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantCode(t, err, tt.code)
		})
	}
}

// gosaml2SP is gosaml2's SP as the sender of LogoutRequests to Passport,
// signing with testdata/sp-key.pem.
func gosaml2SP(tb testing.TB) *saml2.SAMLServiceProvider {
	tb.Helper()
	sp := &saml2.SAMLServiceProvider{
		IdentityProviderSLOURL:         testSLOURL,
		IdentityProviderIssuer:         testEntityID,
		ServiceProviderIssuer:          testAudience,
		NameIdFormat:                   NameIDFormatEmailAddress,
		SignAuthnRequests:              true,
		SignAuthnRequestsAlgorithm:     AlgRSASHA256,
		SignAuthnRequestsCanonicalizer: dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList(""),
		Clock:                          dsig.NewFakeClockAt(testNow.Add(-5 * time.Second)),
	}
	if err := sp.SetSPSigningKeyStore(&saml2.KeyStore{Signer: mustKey(tb, "sp-key.pem"), Cert: mustCert(tb, "sp-cert.pem").Raw}); err != nil {
		tb.Fatal(err)
	}
	return sp
}

// gosaml2LogoutURL has gosaml2 build, sign and encode a LogoutRequest for
// the HTTP-Redirect binding, and returns its query string.
func gosaml2LogoutURL(tb testing.TB, sp *saml2.SAMLServiceProvider, relayState string) string {
	tb.Helper()
	doc, err := sp.BuildLogoutRequestDocument("jane.doe@example.com", "_sess-1")
	if err != nil {
		tb.Fatal(err)
	}
	u, err := sp.BuildLogoutURLRedirect(relayState, doc)
	if err != nil {
		tb.Fatal(err)
	}
	parsed, err := url.Parse(u)
	if err != nil {
		tb.Fatal(err)
	}
	return parsed.RawQuery
}

func mustDecodeRedirect(tb testing.TB, rawQuery, param string) *InboundMessage {
	tb.Helper()
	m, err := DecodeRedirect(rawQuery, param)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func mustDecodePOST(tb testing.TB, msg []byte) *InboundMessage {
	tb.Helper()
	m, err := DecodePOST(postForm(msg, ""), "SAMLRequest")
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func TestReadLogoutRequest(t *testing.T) {
	t.Parallel()
	check := func(t *testing.T, r *LogoutRequest) {
		t.Helper()
		if !r.Signed || r.Issuer != testAudience || r.NameID != "jane.doe@example.com" || r.NameIDFormat != NameIDFormatEmailAddress ||
			len(r.SessionIndexes) != 1 || r.SessionIndexes[0] != "_sess-1" {
			t.Fatalf("read %+v", r)
		}
	}
	t.Run("gosaml2, redirect", func(t *testing.T) {
		t.Parallel()
		m := mustDecodeRedirect(t, gosaml2LogoutURL(t, gosaml2SP(t), "https://start.atlassian.com"), "SAMLRequest")
		if m.RelayState != "https://start.atlassian.com" {
			t.Fatalf("relay state %q", m.RelayState)
		}
		r, err := mustIdP(t).ReadLogoutRequest(m, testLogoutCheck(), spPolicy(t))
		if err != nil {
			t.Fatal(err)
		}
		check(t, r)
	})
	t.Run("gosaml2, post", func(t *testing.T) {
		t.Parallel()
		doc, err := gosaml2SP(t).BuildLogoutRequestDocument("jane.doe@example.com", "_sess-1")
		if err != nil {
			t.Fatal(err)
		}
		b, err := doc.WriteToBytes()
		if err != nil {
			t.Fatal(err)
		}
		r, err := mustIdP(t).ReadLogoutRequest(mustDecodePOST(t, b), testLogoutCheck(), spPolicy(t))
		if err != nil {
			t.Fatal(err)
		}
		check(t, r)
	})
	t.Run("gosaml2, enveloped signature deflated into a redirect", func(t *testing.T) {
		t.Parallel()
		doc, err := gosaml2SP(t).BuildLogoutRequestDocument("jane.doe@example.com", "_sess-1")
		if err != nil {
			t.Fatal(err)
		}
		b, err := doc.WriteToBytes()
		if err != nil {
			t.Fatal(err)
		}
		r, err := mustIdP(t).ReadLogoutRequest(mustDecodeRedirect(t, redirectQuery(t, b, "", nil, ""), "SAMLRequest"), testLogoutCheck(), spPolicy(t))
		if err != nil {
			t.Fatal(err)
		}
		check(t, r)
	})
	t.Run("crewjam, redirect", func(t *testing.T) {
		t.Parallel()
		idp := mustIdP(t)
		sp := crewjam.ServiceProvider{
			EntityID:          testAudience,
			Key:               mustKey(t, "sp-key.pem"),
			Certificate:       mustCert(t, "sp-cert.pem"),
			IDPMetadata:       mustCrewjamIDPMetadata(t, idp),
			SignatureMethod:   dsig.RSASHA256SignatureMethod,
			Clock:             dsig.NewFakeClockAt(testNow),
			AuthnNameIDFormat: crewjam.EmailAddressNameIDFormat,
		}
		u, err := sp.MakeRedirectLogoutRequest("jane.doe@example.com", "", crewjam.WithSessionIndex("_sess-1"))
		if err != nil {
			t.Fatal(err)
		}
		r, err := idp.ReadLogoutRequest(mustDecodeRedirect(t, u.RawQuery, "SAMLRequest"), testLogoutCheck(), spPolicy(t))
		if err != nil {
			t.Fatal(err)
		}
		check(t, r)
	})
	t.Run("hand-signed post, expiry inside the skew", func(t *testing.T) {
		t.Parallel()
		doc := replace(logoutRequestXML, "2026-12-01T09:34:50Z", "2026-12-01T09:29:00Z")
		r, err := mustIdP(t).ReadLogoutRequest(mustDecodePOST(t, signXML(t, doc, signOpts{})), testLogoutCheck(), spPolicy(t))
		if err != nil {
			t.Fatal(err)
		}
		check(t, r)
	})
}

func TestReadLogoutRequestRefuses(t *testing.T) {
	t.Parallel()
	sp := gosaml2SP(t)
	unsigned, err := sp.BuildLogoutRequestDocumentNoSig("jane.doe@example.com", "_sess-1")
	if err != nil {
		t.Fatal(err)
	}
	unsignedXML, err := unsigned.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	spKey := mustKey(t, "sp-key.pem")
	signedPOST := signXML(t, logoutRequestXML, signOpts{})
	wrapped := strings.Replace(logoutRequestXML, `ID="_lo-77c1"`, `ID="_evil"`, 1)
	wrapped = strings.Replace(wrapped, "jane.doe@example.com", "ceo@example.com", 1)
	wrapped = strings.Replace(wrapped, `</samlp:LogoutRequest>`, `<samlp:Extensions>`+string(signedPOST)+`</samlp:Extensions></samlp:LogoutRequest>`, 1)

	tests := []struct {
		name   string
		msg    func(t *testing.T) *InboundMessage
		check  LogoutCheck
		policy SignaturePolicy
		code   string
	}{
		{"unsigned redirect", func(t *testing.T) *InboundMessage {
			return mustDecodeRedirect(t, redirectQuery(t, unsignedXML, "", nil, ""), "SAMLRequest")
		}, testLogoutCheck(), spPolicy(t), CodeSignatureMissing},
		{"unsigned redirect, Require false", func(t *testing.T) *InboundMessage {
			return mustDecodeRedirect(t, redirectQuery(t, unsignedXML, "", nil, ""), "SAMLRequest")
		}, testLogoutCheck(), SignaturePolicy{Certificates: spPolicy(t).Certificates, Require: false}, CodeSignatureMissing},
		{"unsigned redirect, no certificates", func(t *testing.T) *InboundMessage {
			return mustDecodeRedirect(t, redirectQuery(t, unsignedXML, "", nil, ""), "SAMLRequest")
		}, testLogoutCheck(), SignaturePolicy{}, CodeSignatureMissing},
		{"unsigned post", func(t *testing.T) *InboundMessage { return mustDecodePOST(t, unsignedXML) },
			testLogoutCheck(), spPolicy(t), CodeSignatureMissing},
		{"enveloped signature only, by redirect, wrong certificate", func(t *testing.T) *InboundMessage {
			return mustDecodeRedirect(t, redirectQuery(t, signedPOST, "", nil, ""), "SAMLRequest")
		}, testLogoutCheck(), SignaturePolicy{Certificates: []*x509.Certificate{mustCert(t, "idp-next-cert.pem")}}, CodeSignatureInvalid},
		{"redirect, wrong certificate", func(t *testing.T) *InboundMessage {
			return mustDecodeRedirect(t, gosaml2LogoutURL(t, sp, "rs"), "SAMLRequest")
		}, testLogoutCheck(), SignaturePolicy{Certificates: []*x509.Certificate{mustCert(t, "idp-next-cert.pem")}}, CodeSignatureInvalid},
		{"redirect, no certificates", func(t *testing.T) *InboundMessage {
			return mustDecodeRedirect(t, gosaml2LogoutURL(t, sp, "rs"), "SAMLRequest")
		}, testLogoutCheck(), SignaturePolicy{}, CodeSignatureInvalid},
		{"redirect, relay state swapped", func(t *testing.T) *InboundMessage {
			q := gosaml2LogoutURL(t, sp, "a")
			return mustDecodeRedirect(t, strings.Replace(q, "RelayState=a", "RelayState=b", 1), "SAMLRequest")
		}, testLogoutCheck(), spPolicy(t), CodeSignatureInvalid},
		{"redirect, rsa-sha1", func(t *testing.T) *InboundMessage {
			return mustDecodeRedirect(t, redirectQuery(t, []byte(logoutRequestXML), "", spKey, AlgRSASHA1), "SAMLRequest")
		}, testLogoutCheck(), spPolicy(t), CodeUnsupportedAlgorithm},
		{"post, wrong certificate", func(t *testing.T) *InboundMessage { return mustDecodePOST(t, signedPOST) },
			testLogoutCheck(), SignaturePolicy{Certificates: []*x509.Certificate{mustCert(t, "idp-next-cert.pem")}}, CodeSignatureInvalid},
		{"post, name id changed after signing", func(t *testing.T) *InboundMessage {
			return mustDecodePOST(t, bytes.Replace(signedPOST, []byte("jane.doe@"), []byte("john.doe@"), 1))
		}, testLogoutCheck(), spPolicy(t), CodeSignatureInvalid},
		{"post, signed request wrapped in an unsigned one", func(t *testing.T) *InboundMessage { return mustDecodePOST(t, []byte(wrapped)) },
			testLogoutCheck(), spPolicy(t), CodeSignatureInvalid},
		{"wrong issuer", func(t *testing.T) *InboundMessage {
			return mustDecodeRedirect(t, gosaml2LogoutURL(t, sp, ""), "SAMLRequest")
		}, LogoutCheck{Audience: "https://other.example/sp", SLOURL: testSLOURL}, spPolicy(t), CodeIssuerMismatch},
		{"wrong destination", func(t *testing.T) *InboundMessage {
			return mustDecodeRedirect(t, gosaml2LogoutURL(t, sp, ""), "SAMLRequest")
		}, LogoutCheck{Audience: testAudience, SLOURL: "https://passport.example.com/saml/app2/slo"}, spPolicy(t), CodeDestinationMismatch},
		{"expired", func(t *testing.T) *InboundMessage {
			return mustDecodePOST(t, signXML(t, replace(logoutRequestXML, "2026-12-01T09:34:50Z", "2026-12-01T09:28:00Z"), signOpts{}))
		}, testLogoutCheck(), spPolicy(t), CodeRequestExpired},
		{"issued too long ago", func(t *testing.T) *InboundMessage {
			old := gosaml2SP(t)
			old.Clock = dsig.NewFakeClockAt(testNow.Add(-10 * time.Minute))
			return mustDecodeRedirect(t, gosaml2LogoutURL(t, old, ""), "SAMLRequest")
		}, testLogoutCheck(), spPolicy(t), CodeRequestExpired},
		{"other binding", func(t *testing.T) *InboundMessage {
			m := mustDecodePOST(t, signedPOST)
			m.Binding = "urn:oasis:names:tc:SAML:2.0:bindings:SOAP"
			return m
		}, testLogoutCheck(), spPolicy(t), CodeUnsupportedBinding},
		{"authn request", func(t *testing.T) *InboundMessage { return mustDecodePOST(t, signXML(t, authnRequestXML, signOpts{})) },
			testLogoutCheck(), spPolicy(t), CodeMalformedRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := mustIdP(t).ReadLogoutRequest(tt.msg(t), tt.check, tt.policy)
			if r != nil {
				t.Fatalf("accepted %+v", r)
			}
			wantCode(t, err, tt.code)
		})
	}
}

// mustCrewjamIDPMetadata is our metadata as crewjam reads it.
func mustCrewjamIDPMetadata(tb testing.TB, idp *IdentityProvider) *crewjam.EntityDescriptor {
	tb.Helper()
	md, err := idp.Metadata(testSSOURL, testSLOURL, false)
	if err != nil {
		tb.Fatal(err)
	}
	var ed crewjam.EntityDescriptor
	if err := xml.Unmarshal(md, &ed); err != nil {
		tb.Fatal(err)
	}
	return &ed
}

// crewjamSP is crewjam's SP as the receiver of our logout messages.
func crewjamSP(tb testing.TB, idp *IdentityProvider) *crewjam.ServiceProvider {
	tb.Helper()
	slo, err := url.Parse(testSPSLOURL)
	if err != nil {
		tb.Fatal(err)
	}
	return &crewjam.ServiceProvider{
		EntityID:    testAudience,
		SloURL:      *slo,
		IDPMetadata: mustCrewjamIDPMetadata(tb, idp),
		Clock:       dsig.NewFakeClockAt(testNow.Add(5 * time.Second)),
	}
}

func TestMakeLogoutResponse(t *testing.T) {
	t.Parallel()
	p := LogoutResponseParams{InResponseTo: "_lo-77c1", Destination: testSPSLOURL}
	idp := mustIdP(t)
	resp, err := idp.MakeLogoutResponse(p)
	if err != nil {
		t.Fatal(err)
	}
	mustGolden(t, t.Name(), resp)
	t.Run("schema", func(t *testing.T) { samltest.SchemaValid(t, samltest.ProtocolXSD, resp) })
	t.Run("unsigned", func(t *testing.T) {
		t.Parallel()
		if bytes.Contains(resp, []byte("Signature")) {
			t.Fatal("the redirect variant carries an XML signature")
		}
	})
	u, err := idp.RedirectURL(p.Destination, "SAMLResponse", resp, "rs")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("redirect signature", func(t *testing.T) {
		t.Parallel()
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		if pu.Query().Get("tenant") != "0123abcd" || !strings.HasPrefix(u, testSPSLOURL+"&SAMLResponse=") {
			t.Fatalf("destination query lost: %s", u)
		}
		m := mustDecodeRedirect(t, pu.RawQuery, "SAMLResponse")
		if !bytes.Equal(m.XML, resp) || m.RelayState != "rs" || m.SigAlg != AlgRSASHA256 {
			t.Fatalf("decoded %q relay %q alg %q", m.XML, m.RelayState, m.SigAlg)
		}
		if err := VerifyRedirectSignature(m, []*x509.Certificate{idp.Certificate}, false); err != nil {
			t.Fatal(err)
		}
		samltest.SchemaValid(t, samltest.ProtocolXSD, m.XML)
		if err := VerifyRedirectSignature(m, []*x509.Certificate{mustCert(t, "idp-next-cert.pem")}, false); err == nil {
			t.Fatal("verified under another key")
		}
	})
	t.Run("crewjam", func(t *testing.T) {
		t.Parallel()
		sp := crewjamSP(t, idp)
		lr, err := sp.ParseLogoutResponse(httptest.NewRequest("GET", u, nil), []string{p.InResponseTo})
		if err != nil {
			if ire, ok := err.(*crewjam.InvalidResponseError); ok {
				t.Fatalf("crewjam: %v: %v", err, ire.PrivateErr)
			}
			t.Fatal(err)
		}
		if lr.InResponseTo != p.InResponseTo || lr.Status.StatusCode.Value != StatusSuccess {
			t.Fatalf("crewjam read %+v", lr)
		}
		if _, err := sp.ParseLogoutResponse(httptest.NewRequest("GET", strings.Replace(u, "RelayState=rs", "RelayState=rt", 1), nil), []string{p.InResponseTo}); err == nil {
			t.Fatal("crewjam accepted a modified query")
		}
	})
}

func TestMakeSignedLogoutResponse(t *testing.T) {
	t.Parallel()
	p := LogoutResponseParams{InResponseTo: "_lo-77c1", Destination: testSPSLOURL}
	idp := mustIdP(t)
	resp, err := idp.MakeSignedLogoutResponse(p)
	if err != nil {
		t.Fatal(err)
	}
	mustGolden(t, t.Name(), resp)
	t.Run("schema", func(t *testing.T) { samltest.SchemaValid(t, samltest.ProtocolXSD, resp) })
	t.Run("xmlsec1", func(t *testing.T) {
		t.Parallel()
		samltest.XMLSecVerify(t, resp, idp.Certificate)
		if err := samltest.XMLSecCheck(t, bytes.Replace(resp, []byte(StatusSuccess), []byte(StatusResponder), 1), idp.Certificate); err == nil {
			t.Fatal("xmlsec1 accepted a modified status")
		}
	})
	t.Run("structure", func(t *testing.T) {
		t.Parallel()
		v := mustGoxmldsigValidate(t, resp, NamespaceProtocol, "LogoutResponse", idp.Certificate)
		mustChildOrder(t, v, "Issuer", "Status")
		mustChildOrder(t, mustParseDoc(t, resp).Root(), "Issuer", "Signature", "Status")
	})
	t.Run("gosaml2", func(t *testing.T) {
		t.Parallel()
		sp := &saml2.SAMLServiceProvider{
			IdentityProviderIssuer: idp.EntityID,
			ServiceProviderSLOURL:  testSPSLOURL,
			IDPCertificateStore:    &dsig.MemoryX509CertificateStore{Roots: []*x509.Certificate{idp.Certificate}},
			Clock:                  dsig.NewFakeClockAt(testNow),
		}
		lr, err := sp.ValidateEncodedLogoutResponsePOST(base64.StdEncoding.EncodeToString(resp))
		if err != nil {
			t.Fatal(err)
		}
		if !lr.SignatureValidated || lr.InResponseTo != p.InResponseTo {
			t.Fatalf("gosaml2 read %+v", lr)
		}
		tampered := bytes.Replace(resp, []byte(`InResponseTo="_lo-77c1"`), []byte(`InResponseTo="_lo-77c2"`), 1)
		if _, err := sp.ValidateEncodedLogoutResponsePOST(base64.StdEncoding.EncodeToString(tampered)); err == nil {
			t.Fatal("gosaml2 accepted a modified response")
		}
	})
	t.Run("crewjam", func(t *testing.T) {
		t.Parallel()
		sp := crewjamSP(t, idp)
		form := url.Values{"SAMLResponse": {base64.StdEncoding.EncodeToString(resp)}}
		req := httptest.NewRequest("POST", testSPSLOURL, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if _, err := sp.ParseLogoutResponse(req, []string{p.InResponseTo}); err != nil {
			t.Fatalf("crewjam: %v", err)
		}
		// ValidateLogoutResponseRedirect reads a deflated message and, having
		// no query signature, needs the enveloped one.
		//lint:ignore SA1019 the deprecated reader is one more independent SP check of the enveloped signature
		if err := sp.ValidateLogoutResponseRedirect(base64.StdEncoding.EncodeToString(mustDeflate(t, resp))); err != nil {
			t.Fatalf("crewjam ValidateLogoutResponseRedirect: %v", err)
		}
	})
	t.Run("partial logout", func(t *testing.T) {
		t.Parallel()
		p := p
		p.StatusCode, p.SubStatusCode, p.Message = StatusResponder, StatusPartialLogout, "Not every session could be ended."
		resp, err := mustIdP(t).MakeSignedLogoutResponse(p)
		if err != nil {
			t.Fatal(err)
		}
		samltest.SchemaValid(t, samltest.ProtocolXSD, resp)
		samltest.XMLSecVerify(t, resp, idp.Certificate)
		codes := mustParseDoc(t, resp).FindElements("//StatusCode")
		if len(codes) != 2 || attr(codes[0], "Value") != StatusResponder || attr(codes[1], "Value") != StatusPartialLogout {
			t.Fatal("status codes wrong")
		}
	})
}

func TestMakeLogoutResponseRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		idp  func(*IdentityProvider)
		p    LogoutResponseParams
	}{
		{"no destination", nil, LogoutResponseParams{InResponseTo: "_a"}},
		{"control character", nil, LogoutResponseParams{Destination: testSPSLOURL, Message: "\x00"}},
		{"no entity id", func(i *IdentityProvider) { i.EntityID = "" }, LogoutResponseParams{Destination: testSPSLOURL}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			idp := mustIdP(t)
			if tt.idp != nil {
				tt.idp(idp)
			}
			for _, f := range []func(LogoutResponseParams) ([]byte, error){idp.MakeLogoutResponse, idp.MakeSignedLogoutResponse} {
				if out, err := f(tt.p); err == nil || !strings.HasPrefix(err.Error(), "saml: make ") {
					t.Fatalf("got %s, err %v; want a prefixed error", out, err)
				}
			}
		})
	}
	t.Run("signed without key", func(t *testing.T) {
		t.Parallel()
		idp := mustIdP(t)
		idp.Key = nil
		if out, err := idp.MakeSignedLogoutResponse(LogoutResponseParams{Destination: testSPSLOURL}); err == nil {
			t.Fatalf("got %s", out)
		}
	})
}

func TestMakeLogoutRequest(t *testing.T) {
	t.Parallel()
	idp := mustIdP(t)
	p := LogoutRequestParams{Destination: testSPSLOURL, NameID: "jane.doe@example.com", SessionIndex: "_sess-1", SPNameQualifier: testAudience}
	id, req, err := idp.MakeLogoutRequest(p)
	if err != nil {
		t.Fatal(err)
	}
	mustGolden(t, t.Name(), req)
	t.Run("schema", func(t *testing.T) { samltest.SchemaValid(t, samltest.ProtocolXSD, req) })
	t.Run("content", func(t *testing.T) {
		t.Parallel()
		r, err := ParseLogoutRequest(req)
		if err != nil {
			t.Fatal(err)
		}
		if r.ID != id || !isNCName(id) || r.Issuer != testEntityID || r.Destination != testSPSLOURL || r.NameID != p.NameID ||
			r.NameIDFormat != NameIDFormatEmailAddress || strings.Join(r.SessionIndexes, ",") != "_sess-1" ||
			!r.IssueInstant.Equal(testNow.Truncate(time.Second)) || !r.NotOnOrAfter.Equal(r.IssueInstant.Add(DefaultAssertionLifetime)) {
			t.Fatalf("read back %+v", r)
		}
	})
	u, err := idp.RedirectURL(p.Destination, "SAMLRequest", req, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("redirect signature", func(t *testing.T) {
		t.Parallel()
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		m := mustDecodeRedirect(t, pu.RawQuery, "SAMLRequest")
		if !bytes.Equal(m.XML, req) || m.RelayState != "" {
			t.Fatal("decoded message differs")
		}
		if err := VerifyRedirectSignature(m, []*x509.Certificate{idp.Certificate}, false); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("crewjam", func(t *testing.T) {
		t.Parallel()
		sp := crewjamSP(t, idp)
		lr, err := sp.ValidateLogoutRequest(httptest.NewRequest("GET", u, nil))
		if err != nil {
			if ire, ok := err.(*crewjam.InvalidResponseError); ok {
				t.Fatalf("crewjam: %v: %v", err, ire.PrivateErr)
			}
			t.Fatal(err)
		}
		if lr.ID != id || lr.NameID == nil || lr.NameID.Value != p.NameID {
			t.Fatalf("crewjam read %+v", lr)
		}
	})
	t.Run("defaults and escaping", func(t *testing.T) {
		t.Parallel()
		_, req, err := mustIdP(t).MakeLogoutRequest(LogoutRequestParams{Destination: testSPSLOURL + "&x=<1>", NameID: `o'neil&co+<tag>@example.com`})
		if err != nil {
			t.Fatal(err)
		}
		samltest.SchemaValid(t, samltest.ProtocolXSD, req)
		r, err := ParseLogoutRequest(req)
		if err != nil {
			t.Fatal(err)
		}
		if r.NameID != `o'neil&co+<tag>@example.com` || r.Destination != testSPSLOURL+"&x=<1>" || len(r.SessionIndexes) != 0 {
			t.Fatalf("read back %+v", r)
		}
	})
}

func TestMakeLogoutRequestRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		idp  func(*IdentityProvider)
		p    LogoutRequestParams
	}{
		{"no destination", nil, LogoutRequestParams{NameID: "a@b"}},
		{"no name id", nil, LogoutRequestParams{Destination: testSPSLOURL}},
		{"control character", nil, LogoutRequestParams{Destination: testSPSLOURL, NameID: "a\x01b"}},
		{"no entity id", func(i *IdentityProvider) { i.EntityID = "" }, LogoutRequestParams{Destination: testSPSLOURL, NameID: "a@b"}},
		{"randomness fails", func(i *IdentityProvider) { i.Rand = failingReader{} }, LogoutRequestParams{Destination: testSPSLOURL, NameID: "a@b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			idp := mustIdP(t)
			if tt.idp != nil {
				tt.idp(idp)
			}
			id, out, err := idp.MakeLogoutRequest(tt.p)
			if err == nil || id != "" || out != nil || !strings.HasPrefix(err.Error(), "saml: ") {
				t.Fatalf("got %q %s, err %v; want an error", id, out, err)
			}
		})
	}
}

func TestRedirectURL(t *testing.T) {
	t.Parallel()
	msg := []byte(logoutRequestXML)
	tests := []struct {
		name, dest, relayState string
		wantPrefix             string
	}{
		{"plain destination", "https://sp.example.com/slo", "", "https://sp.example.com/slo?SAMLRequest="},
		{"destination with a query", "https://sp.example.com/slo?a=1", "", "https://sp.example.com/slo?a=1&SAMLRequest="},
		{"destination ending in ?", "https://sp.example.com/slo?", "", "https://sp.example.com/slo?SAMLRequest="},
		{"relay state needing escapes", "https://sp.example.com/slo", "https://start.atlassian.com/?a=b&c=d e", "https://sp.example.com/slo?SAMLRequest="},
	}
	idp := mustIdP(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u, err := idp.RedirectURL(tt.dest, "SAMLRequest", msg, tt.relayState)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(u, tt.wantPrefix) {
				t.Fatalf("got %s, want prefix %s", u, tt.wantPrefix)
			}
			pu, err := url.Parse(u)
			if err != nil {
				t.Fatal(err)
			}
			// The parameters come in the order the signature covers them,
			// Signature last (saml-bindings §3.4.4.1).
			var keys []string
			for part := range strings.SplitSeq(pu.RawQuery, "&") {
				k, _, _ := strings.Cut(part, "=")
				keys = append(keys, k)
			}
			want := "SAMLRequest,SigAlg,Signature"
			if tt.relayState != "" {
				want = "SAMLRequest,RelayState,SigAlg,Signature"
			}
			if got := strings.Join(keys, ","); !strings.HasSuffix(got, want) {
				t.Fatalf("parameters %s, want %s", got, want)
			}
			m := mustDecodeRedirect(t, pu.RawQuery, "SAMLRequest")
			if !bytes.Equal(m.XML, msg) || m.RelayState != tt.relayState {
				t.Fatalf("decoded %q, relay state %q", m.XML, m.RelayState)
			}
			if err := VerifyRedirectSignature(m, []*x509.Certificate{idp.Certificate}, false); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestRedirectURLRefuses(t *testing.T) {
	t.Parallel()
	msg := []byte(logoutRequestXML)
	tests := []struct {
		name, dest, param, relayState string
		msg                           []byte
		idp                           func(*IdentityProvider)
	}{
		{"unknown parameter", "https://sp/slo", "SAMLart", "", msg, nil},
		{"relative destination", "/slo", "SAMLRequest", "", msg, nil},
		{"destination with fragment", "https://sp/slo#x", "SAMLRequest", "", msg, nil},
		{"unparsable destination", "https://sp/%zz", "SAMLRequest", "", msg, nil},
		{"relay state too long", "https://sp/slo", "SAMLRequest", strings.Repeat("r", MaxRelayStateSize+1), msg, nil},
		{"empty message", "https://sp/slo", "SAMLRequest", "", nil, nil},
		{"message too large", "https://sp/slo", "SAMLRequest", "", make([]byte, MaxInflatedSize+1), nil},
		{"no key", "https://sp/slo", "SAMLRequest", "", msg, func(i *IdentityProvider) { i.Key = nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			idp := mustIdP(t)
			if tt.idp != nil {
				tt.idp(idp)
			}
			u, err := idp.RedirectURL(tt.dest, tt.param, tt.msg, tt.relayState)
			if err == nil || u != "" || !strings.HasPrefix(err.Error(), "saml: redirect url: ") {
				t.Fatalf("got %q, err %v; want a prefixed error", u, err)
			}
		})
	}
}
