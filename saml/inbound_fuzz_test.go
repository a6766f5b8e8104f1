package saml

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/winkk/passport/saml/samltest/fuzzcorpus"
)

// The inbound fuzz targets run what the SSO and SLO endpoints run on what a browser brings: the binding
// decoders, then the whole pipeline (parse, verify, validate) of an app that requires signed requests. The
// fuzzer cannot sign, so a request the pipeline accepts must read as one the SP's key signed (signedAs).

// richRequestXML is authnRequestXML with what reaches deeper into the parser: ForceAuthn, a Subject, a
// RequestedAuthnContext.
var richRequestXML = replace(replace(replace(authnRequestXML,
	` Version="2.0"`, ` Version="2.0" ForceAuthn="true"`),
	`<samlp:NameIDPolicy`, `<saml:Subject><saml:NameID Format="`+NameIDFormatEmailAddress+`">jane.doe@example.com</saml:NameID></saml:Subject><samlp:NameIDPolicy`),
	`</samlp:AuthnRequest>`, `<samlp:RequestedAuthnContext Comparison="minimum"><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></samlp:RequestedAuthnContext></samlp:AuthnRequest>`)

// errorCodes are the codes an *Error may carry.
var errorCodes = map[string]bool{
	CodeMissingParameter: true, CodeDuplicateParameter: true, CodeMalformedQuery: true, CodeMalformedBase64: true,
	CodeNotDeflated: true, CodeTooLarge: true, CodeMalformedXML: true, CodeMalformedRequest: true,
	CodeDuplicateElement: true, CodeVersionMismatch: true, CodeMissingID: true, CodeIssuerMismatch: true,
	CodeACSMismatch: true, CodeDestinationMismatch: true, CodeMissingIssueInstant: true, CodeRequestExpired: true,
	CodeRequestFromFuture: true, CodeUnsupportedBinding: true, CodeMalformedMetadata: true, CodeNoSPDescriptor: true,
	CodeSeveralSPs: true, CodeSignatureMissing: true, CodeSignatureInvalid: true, CodeUnsupportedAlgorithm: true,
}

// mustBeOurError fails unless err is an *Error with a known code and a one-line public message.
func mustBeOurError(t *testing.T, err error) {
	t.Helper()
	e, ok := err.(*Error)
	if !ok {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	if !errorCodes[e.Code] || e.Message == "" || strings.ContainsAny(e.Message, "\r\n") {
		t.Fatalf("error code %q, message %q", e.Code, e.Message)
	}
}

// signedAs keys a request by everything Passport reads from it, to compare it with the requests the SP's
// key signed.
func signedAs(tb testing.TB, r any, extra ...string) string {
	tb.Helper()
	var v any
	switch r := r.(type) {
	case *AuthnRequest:
		c := *r
		c.Signed = false
		v = c
	case *LogoutRequest:
		c := *r
		c.Signed = false
		v = c
	}
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b) + strings.Join(extra, "|")
}

// signedRequests are what the SP's key signed in the seeds: the request, and for a query signature, its
// RelayState.
type signedRequests map[string]bool

func (s signedRequests) add(tb testing.TB, doc string, relayState ...string) {
	tb.Helper()
	if r, err := ParseAuthnRequest([]byte(doc)); err == nil {
		s[signedAs(tb, r, relayState...)] = true
		return
	}
	r, err := ParseLogoutRequest([]byte(doc))
	if err != nil {
		tb.Fatalf("signed seed does not parse: %v", err)
	}
	s[signedAs(tb, r, relayState...)] = true
}

// mustBeSigned fails unless r, accepted, reads as a request the SP's key signed.
func (s signedRequests) mustBeSigned(t *testing.T, r any, relayState ...string) {
	t.Helper()
	if k := signedAs(t, r, relayState...); !s[k] {
		t.Fatalf("accepted a request the SP never signed: %s", k)
	}
}

// readAll runs the pipeline of an app that requires signed requests, as an AuthnRequest and as a
// LogoutRequest, checking what either accepts.
func readAll(t *testing.T, idp *IdentityProvider, m *InboundMessage, policy SignaturePolicy, signed signedRequests, relayState ...string) {
	t.Helper()
	r, err := idp.ReadAuthnRequest(m, testCheck(), policy)
	if err != nil {
		mustBeOurError(t, err)
	} else {
		if !r.Signed || r.Issuer != testAudience || (r.AssertionConsumerServiceURL != "" && r.AssertionConsumerServiceURL != testACSURL) ||
			r.Destination != testSSOURL || r.Version != "2.0" || !isNCName(r.ID) {
			t.Fatalf("accepted %+v", r)
		}
		signed.mustBeSigned(t, r, relayState...)
		if r.RequestedAuthnContext != nil {
			r.RequestedAuthnContext.Choose(AuthnContextMobileOneFactorUnregistered)
		}
	}
	l, err := idp.ReadLogoutRequest(m, testLogoutCheck(), policy)
	if err != nil {
		mustBeOurError(t, err)
		return
	}
	if !l.Signed || l.Issuer != testAudience || l.NameID == "" || (l.Destination != "" && l.Destination != testSLOURL) {
		t.Fatalf("accepted %+v", l)
	}
	signed.mustBeSigned(t, l, relayState...)
}

// xmlSeeds are seeds followed by the documents of refusals (small enough to be corpus files).
func xmlSeeds(refusals []refusal, seeds ...fuzzcorpus.Seed) []fuzzcorpus.Seed {
	for _, r := range refusals {
		if len(r.doc) <= 64<<10 {
			seeds = append(seeds, fuzzcorpus.Seed{Name: "refused-" + seedName(r.name), Values: []any{[]byte(r.doc)}})
		}
	}
	return seeds
}

// spMetadataSeeds are SP metadata documents ParseSPMetadata accepts, as SPs publish them and at its edges.
func spMetadataSeeds(tb testing.TB) []fuzzcorpus.Seed {
	atlassian := mustReadFile(tb, "sp-metadata/atlassian.xml")
	cert := base64.StdEncoding.EncodeToString(mustCert(tb, "sp-cert.pem").Raw)
	key := func(use string) string {
		return `<md:KeyDescriptor` + use + `><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>` + cert + `</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>`
	}
	post := acsXML(BindingPOST, "https://sp.example.com/acs", 1, "")
	seed := func(name string, doc []byte) fuzzcorpus.Seed { return fuzzcorpus.Seed{Name: name, Values: []any{doc}} }
	return []fuzzcorpus.Seed{
		seed("atlassian", atlassian),
		seed("shibboleth", mustReadFile(tb, "sp-metadata/shibboleth.xml")),
		seed("atlassian-with-bom", append([]byte("\xEF\xBB\xBF"), atlassian...)),
		seed("nested-aggregate", []byte(`<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"><md:EntitiesDescriptor>`+stripDecl(atlassian)+`</md:EntitiesDescriptor></md:EntitiesDescriptor>`)),
		seed("empty-nested-aggregate", []byte(`<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"><md:EntitiesDescriptor/></md:EntitiesDescriptor>`)),
		seed("minimal", []byte(spMetadataXML(post))),
		seed("keys-and-slo", []byte(spMetadataXML(key(` use="signing"`), key(` use="encryption"`),
			`<md:SingleLogoutService Binding="`+BindingRedirect+`" Location="https://sp.example.com/slo"/>`,
			`<md:NameIDFormat>`+NameIDFormatPersistent+`</md:NameIDFormat>`, post))),
		seed("key-without-use", []byte(spMetadataXML(key(""), post))),
		seed("several-acs", []byte(spMetadataXML(acsXML(bindingArtifact, "https://sp.example.com/art", 0, "true"), post,
			acsXML(BindingPOST, "https://sp.example.com/acs?tenant=2", 2, "false")))),
	}
}

func postBody(msg []byte, extra ...string) string {
	return strings.Join(append([]string{"SAMLRequest=" + url.QueryEscape(base64.StdEncoding.EncodeToString(msg))}, extra...), "&")
}

// wrap76 line-wraps base64 as many SPs post it.
func wrap76(s string) string {
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	return b.String() + s
}

var seedNameUnsafe = regexp.MustCompile(`[^a-z0-9-]+`)

func seedName(s string) string {
	return strings.Trim(seedNameUnsafe.ReplaceAllString(strings.ToLower(s), "-"), "-")
}

func postSeeds(tb testing.TB) ([]fuzzcorpus.Seed, signedRequests) {
	signed := signedRequests{}
	signed.add(tb, authnRequestXML)
	signed.add(tb, richRequestXML)
	signed.add(tb, logoutRequestXML)
	req := signXML(tb, authnRequestXML, signOpts{})
	rich := signXML(tb, richRequestXML, signOpts{})
	logout := signXML(tb, logoutRequestXML, signOpts{})
	seed := func(name, body string) fuzzcorpus.Seed { return fuzzcorpus.Seed{Name: name, Values: []any{body}} }
	seeds := []fuzzcorpus.Seed{
		seed("signed", postBody(req)),
		seed("signed-rich", postBody(rich, "RelayState=https%3A%2F%2Facme.atlassian.net%2F")),
		seed("signed-logout", postBody(logout)),
		seed("signed-wrapped", "SAMLRequest="+url.QueryEscape(wrap76(base64.StdEncoding.EncodeToString(req)))),
		seed("signed-sha1", postBody(signXML(tb, authnRequestXML, signOpts{method: AlgRSASHA1}))),
		seed("unsigned", postBody([]byte(authnRequestXML))),
		seed("response-param", "SAMLResponse="+url.QueryEscape(base64.StdEncoding.EncodeToString(req))),
		seed("two-requests", postBody(req, "SAMLRequest=PHg%2F")),
		seed("two-relay-states", postBody(req, "RelayState=a", "RelayState=b")),
		seed("relay-state-too-long", postBody(req, "RelayState="+strings.Repeat("r", MaxRelayStateSize+1))),
		seed("empty-request", "SAMLRequest=&RelayState=x"),
		seed("not-base64", "SAMLRequest=%%%"),
		seed("base64-url-alphabet", "SAMLRequest="+base64.URLEncoding.EncodeToString(req)),
		seed("not-xml", postBody([]byte("hello"))),
		seed("deflated", postBody(mustDeflate(tb, req))),
		seed("doctype", postBody([]byte(`<!DOCTYPE x [<!ENTITY e "e">]><samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">&e;</samlp:AuthnRequest>`))),
		seed("semicolon-separator", postBody(req)+";RelayState=x"),
	}
	corpus := hostileCorpus(tb)
	names := make([]string, 0, len(corpus))
	for n := range corpus {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		seeds = append(seeds, seed("hostile-"+seedName(n), postBody(corpus[n])))
	}
	return seeds, signed
}

// FuzzDecodePOST decodes HTTP-POST bindings from form bodies as net/http reads them (url.ParseQuery), then
// reads what decodes as a signed AuthnRequest and as a signed LogoutRequest. Decoding keeps its limits and
// takes exactly one message, the base64 of the XML it returns; the pipeline accepts only what the SP signed.
func FuzzDecodePOST(f *testing.F) {
	seeds, signed := postSeeds(f)
	fuzzcorpus.Use(f, seeds)
	idp := mustIdP(f)
	policy := SignaturePolicy{Certificates: []*x509.Certificate{mustCert(f, "sp-cert.pem")}, Require: true}
	f.Fuzz(func(t *testing.T, body string) {
		form, _ := url.ParseQuery(body)
		for _, param := range []string{"SAMLRequest", "SAMLResponse"} {
			m, err := DecodePOST(form, param)
			if err != nil {
				mustBeOurError(t, err)
				continue
			}
			if len(form[param]) != 1 || len(form["RelayState"]) > 1 || m.Binding != BindingPOST {
				t.Fatalf("decoded %q from %v", param, form)
			}
			if len(m.XML) > MaxInflatedSize || len(m.RelayState) > MaxRelayStateSize || m.RelayState != form.Get("RelayState") {
				t.Fatalf("decoded %d bytes of XML, RelayState %q", len(m.XML), m.RelayState)
			}
			want, err := base64.StdEncoding.DecodeString(strings.Map(func(r rune) rune {
				if strings.ContainsRune(" \t\r\n", r) {
					return -1
				}
				return r
			}, form.Get(param)))
			if err != nil || !bytes.Equal(want, m.XML) {
				t.Fatalf("decoded XML %q is not the base64 of the form's %q (%v)", m.XML, form.Get(param), err)
			}
			if param == "SAMLRequest" {
				readAll(t, idp, m, policy, signed)
			}
		}
	})
}

func redirectSeeds(tb testing.TB) ([]fuzzcorpus.Seed, signedRequests) {
	signed := signedRequests{}
	key := mustKey(tb, "sp-key.pem")
	const relay = "https://acme.atlassian.net/wiki?x=1&y=%2F"
	seed := func(name, query string) fuzzcorpus.Seed { return fuzzcorpus.Seed{Name: name, Values: []any{query}} }
	sign := func(doc, relayState, alg string) string {
		signed.add(tb, doc, relayState)
		return redirectQuery(tb, []byte(doc), relayState, key, alg)
	}
	plain := sign(authnRequestXML, "", AlgRSASHA256)
	withRelay := sign(authnRequestXML, relay, AlgRSASHA256)
	signed.add(tb, authnRequestXML) // enveloped in the XML: the RelayState is not signed
	enveloped := redirectQuery(tb, signXML(tb, authnRequestXML, signOpts{}), "free", nil, "")
	sigAt := strings.Index(withRelay, "&Signature=")
	return []fuzzcorpus.Seed{
		seed("signed", plain),
		seed("signed-relay-state", withRelay),
		seed("signed-rich", sign(richRequestXML, "", AlgRSASHA512)),
		seed("signed-logout", sign(logoutRequestXML, relay, AlgRSASHA256)),
		seed("signed-sha1", redirectQuery(tb, []byte(authnRequestXML), "", key, AlgRSASHA1)),
		seed("enveloped-signature", enveloped),
		seed("unsigned", redirectQuery(tb, []byte(authnRequestXML), "", nil, "")),
		seed("relay-state-changed", strings.Replace(withRelay, "x%3D1", "x%3D2", 1)),
		seed("relay-state-dropped", strings.Replace(withRelay, "&RelayState="+url.QueryEscape(relay), "", 1)),
		seed("params-reordered", withRelay[sigAt+1:]+"&"+withRelay[:sigAt]),
		seed("extra-params", "foo=bar&"+withRelay+"&SAMLResponse=x"),
		seed("sigalg-changed", strings.Replace(withRelay, url.QueryEscape(AlgRSASHA256), url.QueryEscape(AlgRSASHA512), 1)),
		seed("sigalg-without-signature", withRelay[:sigAt]),
		seed("signature-without-sigalg", strings.Replace(plain, "&SigAlg="+url.QueryEscape(AlgRSASHA256), "", 1)),
		seed("plus-as-space", strings.ReplaceAll(plain, "%2B", "+")),
		seed("duplicate-request", plain+"&SAMLRequest=x"),
		seed("not-deflated", "SAMLRequest="+url.QueryEscape(base64.StdEncoding.EncodeToString([]byte(authnRequestXML)))),
		seed("deflate-bomb", "SAMLRequest="+url.QueryEscape(base64.StdEncoding.EncodeToString(mustDeflate(tb, bytes.Repeat([]byte("<"), MaxInflatedSize+10))))),
		seed("bad-escape", "SAMLRequest=%zz"),
	}, signed
}

// FuzzReadRedirect decodes HTTP-Redirect queries, as a SAMLResponse and as a SAMLRequest, and reads what
// decodes as a signed AuthnRequest and as a signed LogoutRequest. What is accepted must be what the SP signed; with a query signature, the signed
// octets must be the query's own parameters, carry the XML and RelayState acted on, and verify with the
// SP's key.
func FuzzReadRedirect(f *testing.F) {
	seeds, signed := redirectSeeds(f)
	fuzzcorpus.Use(f, seeds)
	idp := mustIdP(f)
	cert := mustCert(f, "sp-cert.pem")
	policy := SignaturePolicy{Certificates: []*x509.Certificate{cert}, Require: true}
	f.Fuzz(func(t *testing.T, query string) {
		// A LogoutResponse coming back to the SLO endpoint is decoded, then only acknowledged.
		if _, err := DecodeRedirect(query, "SAMLResponse"); err != nil {
			mustBeOurError(t, err)
		}
		m, err := DecodeRedirect(query, "SAMLRequest")
		if err != nil {
			mustBeOurError(t, err)
			return
		}
		if len(m.XML) > MaxInflatedSize || len(m.RelayState) > MaxRelayStateSize || m.Binding != BindingRedirect {
			t.Fatalf("decoded %d bytes of XML, RelayState of %d", len(m.XML), len(m.RelayState))
		}
		if len(m.Signature) == 0 {
			readAll(t, idp, m, policy, signed)
			return
		}
		mustSignQuery(t, query, m, cert)
		readAll(t, idp, m, policy, signed, m.RelayState)
	})
}

// mustSignQuery checks m's signed octets against the query (saml-bindings §3.4.4.1): SAMLRequest, RelayState
// when present and SigAlg, each as it appears in the query, decoding to what m holds.
func mustSignQuery(t *testing.T, query string, m *InboundMessage, cert *x509.Certificate) {
	t.Helper()
	parts := strings.Split(string(m.SignedOctets), "&")
	for _, p := range parts {
		if !strings.Contains("&"+query+"&", "&"+p+"&") {
			t.Fatalf("signed octets hold %q, which the query %q does not", p, query)
		}
	}
	value := func(p, name string) string {
		v, ok := strings.CutPrefix(p, name+"=")
		if !ok {
			t.Fatalf("signed octets %q: %q where %s goes", m.SignedOctets, p, name)
		}
		u, err := url.QueryUnescape(v)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	if n := len(parts); n < 2 || n > 3 {
		t.Fatalf("signed octets %q", m.SignedOctets)
	}
	xml, err := decodeBase64(value(parts[0], "SAMLRequest"), true)
	if err != nil {
		t.Fatalf("signed SAMLRequest: %v", err)
	}
	if inflated, err := inflate(xml); err != nil || !bytes.Equal(inflated, m.XML) {
		t.Fatalf("the signed SAMLRequest is not the XML read (%v)", err)
	}
	if rs := ""; len(parts) == 3 {
		if rs = value(parts[1], "RelayState"); rs != m.RelayState {
			t.Fatalf("signed RelayState %q, read %q", rs, m.RelayState)
		}
	} else if m.RelayState != "" {
		t.Fatalf("RelayState %q read but not signed", m.RelayState)
	}
	if alg := value(parts[len(parts)-1], "SigAlg"); alg != m.SigAlg {
		t.Fatalf("signed SigAlg %q, read %q", alg, m.SigAlg)
	}
	if a, ok := signatureAlgs[m.SigAlg]; ok && !a.ecdsa {
		h := a.hash.New()
		h.Write(m.SignedOctets)
		if VerifyRedirectSignature(m, []*x509.Certificate{cert}, true) == nil &&
			rsa.VerifyPKCS1v15(cert.PublicKey.(*rsa.PublicKey), a.hash, h.Sum(nil), m.Signature) != nil {
			t.Fatalf("VerifyRedirectSignature accepted what crypto/rsa refuses")
		}
	}
}
