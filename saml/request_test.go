package saml

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestParseAuthnRequest(t *testing.T) {
	t.Parallel()
	r, err := ParseAuthnRequest([]byte(authnRequestXML))
	if err != nil {
		t.Fatal(err)
	}
	want := AuthnRequest{
		ID: "_req-4f2a9c", Version: "2.0", Destination: testSSOURL, AssertionConsumerServiceURL: testACSURL,
		ProtocolBinding: BindingPOST, Issuer: testSPIssuer,
		IssueInstant:       time.Date(2026, 12, 1, 9, 29, 50, 0, time.UTC),
		NameIDPolicyFormat: NameIDFormatEmailAddress, AllowCreate: true,
	}
	if r.AssertionConsumerServiceIndex != nil || *r != want {
		t.Fatalf("got %+v\nwant %+v", *r, want)
	}

	t.Run("optional attributes", func(t *testing.T) {
		t.Parallel()
		doc := replace(authnRequestXML, `Version="2.0"`, `Version="2.0" ForceAuthn="1" IsPassive="true" AssertionConsumerServiceIndex="3"`)
		doc = replace(doc, `IssueInstant="2026-12-01T09:29:50Z"`, `IssueInstant="2026-12-01T10:29:50.250+01:00"`)
		doc = replace(doc, `<saml:Issuer>`, `<saml:Issuer Format="urn:oasis:names:tc:SAML:2.0:nameid-format:entity"> `)
		doc = replace(doc, `</saml:Issuer>`, "\n</saml:Issuer>")
		r, err := ParseAuthnRequest([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		if !r.ForceAuthn || !r.IsPassive || r.AssertionConsumerServiceIndex == nil || *r.AssertionConsumerServiceIndex != 3 {
			t.Fatalf("got %+v", r)
		}
		if !r.IssueInstant.Equal(time.Date(2026, 12, 1, 9, 29, 50, 250e6, time.UTC)) || r.Issuer != testSPIssuer {
			t.Fatalf("IssueInstant %v Issuer %q", r.IssueInstant, r.Issuer)
		}
	})
	t.Run("default namespace and CDATA issuer", func(t *testing.T) {
		t.Parallel()
		doc := `<AuthnRequest xmlns="urn:oasis:names:tc:SAML:2.0:protocol" ID="a" Version="2.0" IssueInstant="2026-12-01T09:29:50">` +
			`<Issuer xmlns="urn:oasis:names:tc:SAML:2.0:assertion"><![CDATA[https://sp]]></Issuer></AuthnRequest>`
		r, err := ParseAuthnRequest([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		if r.Issuer != "https://sp" || r.IssueInstant.Location() != time.UTC {
			t.Fatalf("got %+v", r)
		}
	})
	t.Run("signed", func(t *testing.T) {
		t.Parallel()
		r, err := ParseAuthnRequest(signXML(t, authnRequestXML, signOpts{}))
		if err != nil || !r.Signed {
			t.Fatalf("err %v signed %v", err, r.Signed)
		}
	})
}

func authnRequestRefusals() []refusal {
	return []refusal{
		{"wrong root", `<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="a"/>`, CodeMalformedRequest},
		{"wrong namespace", `<AuthnRequest xmlns="urn:evil" ID="a" Version="2.0"/>`, CodeMalformedRequest},
		{"undeclared prefix", `<samlp:AuthnRequest ID="a"/>`, CodeMalformedXML},
		{"comment in issuer", replace(authnRequestXML, "https://auth.atlassian.com/saml/0123abcd/", "https://auth.atlassian<!---->.com/saml/0123abcd/"), CodeMalformedRequest},
		{"element in issuer", replace(authnRequestXML, "0123abcd/</saml:Issuer>", "0123abcd/<b/></saml:Issuer>"), CodeMalformedRequest},
		{"processing instruction in issuer", replace(authnRequestXML, "0123abcd/</saml:Issuer>", "0123abcd/<?x y?></saml:Issuer>"), CodeMalformedXML},
		{"issuer with wrong format", replace(authnRequestXML, "<saml:Issuer>", `<saml:Issuer Format="urn:oasis:names:tc:SAML:2.0:nameid-format:transient">`), CodeMalformedRequest},
		{"two issuers", replace(authnRequestXML, "<samlp:NameIDPolicy", "<saml:Issuer>https://evil.example</saml:Issuer><samlp:NameIDPolicy"), CodeDuplicateElement},
		{"two name id policies", replace(authnRequestXML, "</samlp:AuthnRequest>", "<samlp:NameIDPolicy Format=\"x\"/></samlp:AuthnRequest>"), CodeDuplicateElement},
		{"two extensions", replace(authnRequestXML, "</samlp:AuthnRequest>", "<samlp:Extensions/><samlp:Extensions/></samlp:AuthnRequest>"), CodeDuplicateElement},
		{"bad boolean", replace(authnRequestXML, `Version="2.0"`, `Version="2.0" IsPassive="yes"`), CodeMalformedRequest},
		{"bad allow create", replace(authnRequestXML, `AllowCreate="true"`, `AllowCreate="TRUE"`), CodeMalformedRequest},
		{"bad index", replace(authnRequestXML, `Version="2.0"`, `Version="2.0" AssertionConsumerServiceIndex="70000"`), CodeMalformedRequest},
		{"bad issue instant", replace(authnRequestXML, `2026-12-01T09:29:50Z`, `yesterday`), CodeMalformedRequest},
		{"duplicate attribute", replace(authnRequestXML, `Version="2.0"`, `Version="2.0" ID="_other"`), CodeMalformedXML},
	}
}

func TestParseAuthnRequestRefuses(t *testing.T) {
	t.Parallel()
	for _, tt := range authnRequestRefusals() {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := ParseAuthnRequest([]byte(tt.doc))
			if r != nil {
				t.Fatalf("got %+v with an error", r)
			}
			wantCode(t, err, tt.code)
		})
	}
}

func TestValidateAuthnRequest(t *testing.T) {
	t.Parallel()
	base := func() *AuthnRequest {
		r, err := ParseAuthnRequest([]byte(authnRequestXML))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	tests := []struct {
		name   string
		modify func(*AuthnRequest)
		code   string // "" = valid
	}{
		{"valid", func(*AuthnRequest) {}, ""},
		{"no optional attributes", func(r *AuthnRequest) { r.Destination, r.AssertionConsumerServiceURL, r.ProtocolBinding = "", "", "" }, ""},
		{"oldest allowed", func(r *AuthnRequest) { r.IssueInstant = testNow.Add(-5*time.Minute - 90*time.Second) }, ""},
		{"newest allowed", func(r *AuthnRequest) { r.IssueInstant = testNow.Add(90 * time.Second) }, ""},
		{"version 1.1", func(r *AuthnRequest) { r.Version = "1.1" }, CodeVersionMismatch},
		{"no version", func(r *AuthnRequest) { r.Version = "" }, CodeVersionMismatch},
		{"no ID", func(r *AuthnRequest) { r.ID = "" }, CodeMissingID},
		{"ID starting with digit", func(r *AuthnRequest) { r.ID = "1abc" }, CodeMissingID},
		{"ID with colon", func(r *AuthnRequest) { r.ID = "a:b" }, CodeMissingID},
		{"ID with space", func(r *AuthnRequest) { r.ID = "a b" }, CodeMissingID},
		{"ID too long", func(r *AuthnRequest) { r.ID = "a" + strings.Repeat("b", maxIDLength) }, CodeMissingID},
		{"no issue instant", func(r *AuthnRequest) { r.IssueInstant = time.Time{} }, CodeMissingIssueInstant},
		{"expired", func(r *AuthnRequest) { r.IssueInstant = testNow.Add(-5*time.Minute - 91*time.Second) }, CodeRequestExpired},
		{"from the future", func(r *AuthnRequest) { r.IssueInstant = testNow.Add(91 * time.Second) }, CodeRequestFromFuture},
		{"no issuer", func(r *AuthnRequest) { r.Issuer = "" }, CodeIssuerMismatch},
		{"other issuer", func(r *AuthnRequest) { r.Issuer = "https://evil.example" }, CodeIssuerMismatch},
		{"issuer without trailing slash", func(r *AuthnRequest) { r.Issuer = strings.TrimSuffix(testAudience, "/") }, CodeIssuerMismatch},
		{"issuer differing in case", func(r *AuthnRequest) { r.Issuer = strings.ToUpper(testAudience) }, CodeIssuerMismatch},
		{"other destination", func(r *AuthnRequest) { r.Destination = "https://passport.example.com/saml/app2/sso" }, CodeDestinationMismatch},
		{"signed without destination", func(r *AuthnRequest) { r.Destination, r.Signed = "", true }, CodeDestinationMismatch},
		{"signed with destination", func(r *AuthnRequest) { r.Signed = true }, ""},
		{"other acs", func(r *AuthnRequest) { r.AssertionConsumerServiceURL = "https://evil.example/acs" }, CodeACSMismatch},
		{"acs without its query", func(r *AuthnRequest) { r.AssertionConsumerServiceURL = "https://auth.atlassian.com/login/callback" }, CodeACSMismatch},
		{"artifact binding", func(r *AuthnRequest) { r.ProtocolBinding = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact" }, CodeUnsupportedBinding},
		{"redirect binding", func(r *AuthnRequest) { r.ProtocolBinding = BindingRedirect }, CodeUnsupportedBinding},
	}
	idp := mustIdP(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := base()
			tt.modify(r)
			err := idp.ValidateAuthnRequest(r, testCheck())
			if tt.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantCode(t, err, tt.code)
		})
	}
	t.Run("acs lists", func(t *testing.T) {
		t.Parallel()
		const second, third = "https://auth.atlassian.com/login/callback?connection=saml-4567ef", "https://eu.auth.atlassian.com/login/callback"
		tests := []struct {
			name    string
			acs     string
			acsURL  string
			acsURLs []string
			code    string
		}{
			{"registered ACS URL", testACSURL, testACSURL, []string{second}, ""},
			{"second of the list", third, testACSURL, []string{second, third}, ""},
			{"list only", second, "", []string{second}, ""},
			{"absent", "", testACSURL, []string{second}, ""},
			{"in neither", "https://evil.example/acs", testACSURL, []string{second, third}, CodeACSMismatch},
			{"prefix of a listed URL", "https://auth.atlassian.com/login/callback", testACSURL, []string{second}, CodeACSMismatch},
			{"listed URL with a trailing slash", third + "/", testACSURL, []string{third}, CodeACSMismatch},
			{"empty entries match nothing", "https://evil.example/acs", "", []string{""}, CodeACSMismatch},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				r := base()
				r.AssertionConsumerServiceURL = tt.acs
				c := testCheck()
				c.ACSURL, c.ACSURLs = tt.acsURL, tt.acsURLs
				err := idp.ValidateAuthnRequest(r, c)
				if tt.code == "" {
					if err != nil {
						t.Fatal(err)
					}
					return
				}
				wantCode(t, err, tt.code)
			})
		}
	})
	t.Run("custom windows", func(t *testing.T) {
		t.Parallel()
		idp := mustIdP(t)
		idp.ClockSkew, idp.RequestMaxAge = time.Second, time.Minute
		r := base()
		r.IssueInstant = testNow.Add(-2 * time.Minute)
		wantCode(t, idp.ValidateAuthnRequest(r, testCheck()), CodeRequestExpired)
		r.IssueInstant = testNow.Add(2 * time.Second)
		wantCode(t, idp.ValidateAuthnRequest(r, testCheck()), CodeRequestFromFuture)
	})
}

// mustECDSACert returns an ECDSA P-256 key and a self-signed certificate for it
// that expired long ago (pinned SP keys are used whatever their dates).
func mustECDSACert(tb testing.TB) (*ecdsa.PrivateKey, *x509.Certificate) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "ecdsa sp"},
		NotBefore: time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2011, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return key, cert
}

func TestVerifyRedirectSignature(t *testing.T) {
	t.Parallel()
	spKey, spCert := mustKey(t, "sp-key.pem"), mustCert(t, "sp-cert.pem")
	ecKey, ecCert := mustECDSACert(t)
	other := mustCert(t, "idp-next-cert.pem")
	msg := []byte(authnRequestXML)
	tests := []struct {
		name      string
		query     string
		certs     []*x509.Certificate
		allowSHA1 bool
		code      string
	}{
		{"rsa-sha256", redirectQuery(t, msg, "rs", spKey, AlgRSASHA256), []*x509.Certificate{spCert}, false, ""},
		{"rsa-sha512 without relay state", redirectQuery(t, msg, "", spKey, AlgRSASHA512), []*x509.Certificate{spCert}, false, ""},
		{"second of two certs (rollover)", redirectQuery(t, msg, "rs", spKey, AlgRSASHA256), []*x509.Certificate{other, spCert}, false, ""},
		{"ecdsa-sha256, expired cert", redirectQuery(t, msg, "rs", ecKey, AlgECDSASHA256), []*x509.Certificate{spCert, ecCert}, false, ""},
		{"rsa-sha1 allowed", redirectQuery(t, msg, "rs", spKey, AlgRSASHA1), []*x509.Certificate{spCert}, true, ""},
		{"rsa-sha1 refused", redirectQuery(t, msg, "rs", spKey, AlgRSASHA1), []*x509.Certificate{spCert}, false, CodeUnsupportedAlgorithm},
		{"unknown algorithm", replace(redirectQuery(t, msg, "rs", spKey, AlgRSASHA256), "rsa-sha256", "rsa-md5"), []*x509.Certificate{spCert}, true, CodeUnsupportedAlgorithm},
		{"unsigned", redirectQuery(t, msg, "rs", nil, ""), []*x509.Certificate{spCert}, false, CodeSignatureMissing},
		{"wrong key", redirectQuery(t, msg, "rs", spKey, AlgRSASHA256), []*x509.Certificate{other}, false, CodeSignatureInvalid},
		{"no certificates", redirectQuery(t, msg, "rs", spKey, AlgRSASHA256), nil, false, CodeSignatureInvalid},
		{"ecdsa alg with rsa key", replace(redirectQuery(t, msg, "rs", spKey, AlgRSASHA256), "rsa-sha256", "ecdsa-sha256"), []*x509.Certificate{spCert}, false, CodeSignatureInvalid},
		{"relay state swapped", replace(redirectQuery(t, msg, "rs", spKey, AlgRSASHA256), "RelayState=rs", "RelayState=evil"), []*x509.Certificate{spCert}, false, CodeSignatureInvalid},
		{"relay state dropped", replace(redirectQuery(t, msg, "rs", spKey, AlgRSASHA256), "&RelayState=rs", ""), []*x509.Certificate{spCert}, false, CodeSignatureInvalid},
		{"relay state added", replace(redirectQuery(t, msg, "", spKey, AlgRSASHA256), "&SigAlg", "&RelayState=x&SigAlg"), []*x509.Certificate{spCert}, false, CodeSignatureInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, err := DecodeRedirect(tt.query, "SAMLRequest")
			if err != nil {
				t.Fatal(err)
			}
			err = VerifyRedirectSignature(m, tt.certs, tt.allowSHA1)
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

func TestVerifyPOSTSignature(t *testing.T) {
	t.Parallel()
	spCert := mustCert(t, "sp-cert.pem")
	ecKey, ecCert := mustECDSACert(t)
	other := mustCert(t, "idp-next-cert.pem")
	tests := []struct {
		name      string
		doc       []byte
		certs     []*x509.Certificate
		allowSHA1 bool
		code      string
	}{
		{"rsa-sha256", signXML(t, authnRequestXML, signOpts{}), []*x509.Certificate{spCert}, false, ""},
		{"rollover", signXML(t, authnRequestXML, signOpts{}), []*x509.Certificate{other, spCert}, false, ""},
		{"ecdsa, expired cert", signXML(t, authnRequestXML, signOpts{key: ecKey, cert: ecCert, method: AlgECDSASHA256}), []*x509.Certificate{ecCert}, false, ""},
		{"KeyInfo names another cert: ignored", signXML(t, authnRequestXML, signOpts{key: mustKey(t, "sp-key.pem"), cert: other}), []*x509.Certificate{spCert}, false, ""},
		{"rsa-sha1 allowed", signXML(t, authnRequestXML, signOpts{method: AlgRSASHA1}), []*x509.Certificate{spCert}, true, ""},
		{"rsa-sha1 refused", signXML(t, authnRequestXML, signOpts{method: AlgRSASHA1}), []*x509.Certificate{spCert}, false, CodeUnsupportedAlgorithm},
		{"unsigned", []byte(authnRequestXML), []*x509.Certificate{spCert}, false, CodeSignatureMissing},
		{"wrong key", signXML(t, authnRequestXML, signOpts{}), []*x509.Certificate{other}, false, CodeSignatureInvalid},
		{"no certificates", signXML(t, authnRequestXML, signOpts{}), nil, false, CodeSignatureInvalid},
		{"not xml", []byte("<x"), []*x509.Certificate{spCert}, false, CodeMalformedXML},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			root, err := VerifyPOSTSignature(tt.doc, tt.certs, tt.allowSHA1)
			if tt.code != "" {
				if root != nil {
					t.Fatal("got a root with an error")
				}
				wantCode(t, err, tt.code)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			r, err := ParseAuthnRequestElement(root)
			if err != nil {
				t.Fatal(err)
			}
			if r.ID != "_req-4f2a9c" || r.Issuer != testSPIssuer || r.Signed {
				t.Fatalf("verified request %+v (the enveloped signature should be gone)", r)
			}
		})
	}
}

func TestReadAuthnRequest(t *testing.T) {
	t.Parallel()
	spKey, spCert := mustKey(t, "sp-key.pem"), mustCert(t, "sp-cert.pem")
	msg := []byte(authnRequestXML)
	signed := signXML(t, authnRequestXML, signOpts{})
	noDest := []byte(regexp.MustCompile(` Destination="[^"]*"`).ReplaceAllString(authnRequestXML, ""))
	certs := []*x509.Certificate{spCert}
	redirect := func(q string) *InboundMessage {
		m, err := DecodeRedirect(q, "SAMLRequest")
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	post := func(b []byte) *InboundMessage {
		m, err := DecodePOST(postForm(b, ""), "SAMLRequest")
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	tests := []struct {
		name       string
		m          *InboundMessage
		p          SignaturePolicy
		code       string
		wantSigned bool
	}{
		{"redirect unsigned, not required", redirect(redirectQuery(t, msg, "", nil, "")), SignaturePolicy{}, "", false},
		{"redirect signed, verified", redirect(redirectQuery(t, msg, "rs", spKey, AlgRSASHA256)), SignaturePolicy{Certificates: certs, Require: true}, "", true},
		{"redirect signed, no certs, not required", redirect(redirectQuery(t, msg, "rs", spKey, AlgRSASHA256)), SignaturePolicy{}, "", false},
		{"redirect unsigned, required", redirect(redirectQuery(t, msg, "", nil, "")), SignaturePolicy{Certificates: certs, Require: true}, CodeSignatureMissing, false},
		{"redirect with enveloped signature only, verified", redirect(redirectQuery(t, signed, "", nil, "")), SignaturePolicy{Certificates: certs, Require: true}, "", true},
		{"redirect with enveloped signature by someone else", redirect(redirectQuery(t, signXML(t, authnRequestXML, signOpts{key: mustKey(t, "idp-key.pem"), cert: mustCert(t, "idp-cert.pem")}), "", nil, "")), SignaturePolicy{Certificates: certs}, CodeSignatureInvalid, false},
		{"redirect bad signature, not required but certs known", redirect(replace(redirectQuery(t, msg, "rs", spKey, AlgRSASHA256), "RelayState=rs", "RelayState=xx")), SignaturePolicy{Certificates: certs}, CodeSignatureInvalid, false},
		{"post unsigned, not required", post(msg), SignaturePolicy{Certificates: certs}, "", false},
		{"post signed, verified", post(signed), SignaturePolicy{Certificates: certs, Require: true}, "", true},
		{"post unsigned, required", post(msg), SignaturePolicy{Certificates: certs, Require: true}, CodeSignatureMissing, false},
		{"post signed by someone else", post(signXML(t, authnRequestXML, signOpts{key: mustKey(t, "idp-key.pem"), cert: mustCert(t, "idp-cert.pem")})), SignaturePolicy{Certificates: certs}, CodeSignatureInvalid, false},
		{"post signed but invalid content", post(signXML(t, replace(authnRequestXML, `Version="2.0"`, `Version="1.0"`), signOpts{})), SignaturePolicy{Certificates: certs, Require: true}, CodeVersionMismatch, true},
		{"unknown binding", &InboundMessage{XML: msg, Binding: "urn:x"}, SignaturePolicy{}, CodeUnsupportedBinding, false},
		{"redirect signed without destination", redirect(redirectQuery(t, noDest, "rs", spKey, AlgRSASHA256)), SignaturePolicy{Certificates: certs}, CodeDestinationMismatch, false},
		{"post signed without destination", post(signXML(t, string(noDest), signOpts{})), SignaturePolicy{Certificates: certs}, CodeDestinationMismatch, false},
		{"redirect unsigned without destination", redirect(redirectQuery(t, noDest, "", nil, "")), SignaturePolicy{Certificates: certs}, "", false},
	}
	idp := mustIdP(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := idp.ReadAuthnRequest(tt.m, testCheck(), tt.p)
			if tt.code != "" {
				if r != nil {
					t.Fatal("got a request with an error")
				}
				wantCode(t, err, tt.code)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Signed != tt.wantSigned || r.ID != "_req-4f2a9c" {
				t.Fatalf("Signed %v ID %q", r.Signed, r.ID)
			}
		})
	}
}
