package saml

import (
	"crypto/x509"
	"encoding/base64"
	"math/rand/v2"
	"net/url"
	"sync"
	"testing"

	"github.com/winkk/passport/saml/samltest/fuzzcorpus"
)

// randomText draws strings from characters that exercise every escaping
// rule of canonical XML, plus multi-byte UTF-8.
func randomText(r *rand.Rand) string {
	const alphabet = "aZ09 &<>\"'\t\n\r]]>=/?#;:._-"
	multi := []string{"é", "日本", "🙂", "\u00a0", "\u2028"}
	var b []byte
	for n := r.IntN(24); n > 0; n-- {
		if r.IntN(8) == 0 {
			b = append(b, multi[r.IntN(len(multi))]...)
		} else {
			b = append(b, alphabet[r.IntN(len(alphabet))])
		}
	}
	return string(b)
}

// TestMakeResponseCanonicalForm signs many Responses with random hostile
// text in every field and checks both signatures with goxmldsig, which
// canonicalizes on its own: any difference between what MakeResponse digests
// and the exclusive canonical form of what it sends would fail here.
func TestMakeResponseCanonicalForm(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	idp := mustIdP(t)
	for i := range 150 {
		p := ResponseParams{
			InResponseTo:         "_" + randomText(r),
			Destination:          "https://sp/" + randomText(r),
			Audience:             "a" + randomText(r),
			NameID:               "n" + randomText(r),
			NameIDFormat:         "f" + randomText(r),
			SessionIndex:         "s" + randomText(r),
			AuthnContextClassRef: randomText(r),
		}
		for range r.IntN(3) {
			a := Attribute{Name: "x" + randomText(r), NameFormat: randomText(r), FriendlyName: randomText(r)}
			for range r.IntN(3) {
				a.Values = append(a.Values, randomText(r))
			}
			p.Attributes = append(p.Attributes, a)
		}
		idp.EntityID = "e" + randomText(r)
		resp, err := idp.MakeResponse(p)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		mustGoxmldsigValidate(t, resp, NamespaceProtocol, "Response", idp.Certificate)
		v := mustGoxmldsigValidate(t, resp, NamespaceAssertion, "Assertion", idp.Certificate)
		if got := findElement(v, NamespaceAssertion, "NameID").Text(); got != p.NameID {
			t.Fatalf("case %d: signed NameID %q, want %q", i, got, p.NameID)
		}
		if got := findElement(v, NamespaceAssertion, "Audience").Text(); got != p.Audience {
			t.Fatalf("case %d: signed Audience %q, want %q", i, got, p.Audience)
		}
	}
}

// TestMakeResponseConcurrent shares one IdentityProvider between goroutines
// (run with -race).
func TestMakeResponseConcurrent(t *testing.T) {
	t.Parallel()
	idp := mustIdP(t)
	idp.Rand = nil // crypto/rand: safe for concurrent use
	const n = 8
	out := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			p := testResponseParams()
			p.NameID = string(rune('a'+i)) + "@example.com"
			out[i], errs[i] = idp.MakeResponse(p)
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		v := mustGoxmldsigValidate(t, out[i], NamespaceAssertion, "Assertion", idp.Certificate)
		if got := findElement(v, NamespaceAssertion, "NameID").Text(); got != string(rune('a'+i))+"@example.com" {
			t.Fatalf("response %d carries NameID %q", i, got)
		}
	}
}

// TestCertificatePerIdentityProvider runs two IdentityProviders with
// different keys side by side (run with -race): each signature's KeyInfo
// carries its own IdP's certificate, and an IdP given a new key and
// certificate embeds the new one from its next Response on.
func TestCertificatePerIdentityProvider(t *testing.T) {
	t.Parallel()
	current := mustIdP(t)
	next := mustIdP(t)
	next.Key, next.Certificate = mustKey(t, "idp-next-key.pem"), mustCert(t, "idp-next-cert.pem")
	keyInfoCert := func(t *testing.T, resp []byte) string {
		t.Helper()
		certs := mustParseDoc(t, resp).FindElements("//X509Certificate")
		if len(certs) != 2 || certs[0].Text() != certs[1].Text() {
			t.Fatalf("%d KeyInfo certificates, want the same one twice", len(certs))
		}
		return certs[0].Text()
	}
	// Each IdP's deterministic Rand is not safe for concurrent use:
	// crypto/rand is.
	current.Rand, next.Rand = nil, nil
	const rounds = 6
	out := make([][2][]byte, rounds)
	var wg sync.WaitGroup
	for i := range rounds {
		for j, idp := range []*IdentityProvider{current, next} {
			wg.Go(func() {
				p := testResponseParams()
				p.InResponseTo = "_req-" + string(rune('a'+i))
				resp, err := idp.MakeResponse(p)
				if err != nil {
					t.Error(err)
				}
				out[i][j] = resp
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for i := range rounds {
		for j, idp := range []*IdentityProvider{current, next} {
			if got, want := keyInfoCert(t, out[i][j]), base64.StdEncoding.EncodeToString(idp.Certificate.Raw); got != want {
				t.Fatalf("round %d, IdP %d: KeyInfo holds another certificate", i, j)
			}
			mustGoxmldsigValidate(t, out[i][j], NamespaceProtocol, "Response", idp.Certificate)
		}
	}

	// Key rollover: the same IdentityProvider, a new key and certificate.
	current.Key, current.Certificate = next.Key, next.Certificate
	resp, err := current.MakeResponse(testResponseParams())
	if err != nil {
		t.Fatal(err)
	}
	if keyInfoCert(t, resp) != base64.StdEncoding.EncodeToString(next.Certificate.Raw) {
		t.Fatal("after rollover, KeyInfo still holds the old certificate")
	}
	mustGoxmldsigValidate(t, resp, NamespaceAssertion, "Assertion", next.Certificate)
}

// The fuzz targets' seed corpora run with every go test; go test -fuzz
// explores further. They assert that hostile input never panics and that
// anything accepted is consistent.

func FuzzDecodeRedirect(f *testing.F) {
	seeds, _ := redirectSeeds(f)
	fuzzcorpus.Use(f, append(seeds,
		fuzzcorpus.Seed{Name: "bad-escape-in-message", Values: []any{"SAMLRequest=%%&RelayState="}},
		fuzzcorpus.Seed{Name: "doctype", Values: []any{"SAMLRequest=" + url.QueryEscape(base64.StdEncoding.EncodeToString(mustDeflate(f, []byte("<!DOCTYPE x><x/>"))))}}))
	f.Fuzz(func(t *testing.T, q string) {
		m, err := DecodeRedirect(q, "SAMLRequest")
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("untyped error %T", err)
			}
			return
		}
		if len(m.XML) > MaxInflatedSize || len(m.RelayState) > MaxRelayStateSize {
			t.Fatal("limits not enforced")
		}
		_, _ = ParseAuthnRequest(m.XML)
	})
}

func FuzzParseAuthnRequest(f *testing.F) {
	seeds := xmlSeeds(authnRequestRefusals(),
		fuzzcorpus.Seed{Name: "plain", Values: []any{[]byte(authnRequestXML)}},
		fuzzcorpus.Seed{Name: "signed", Values: []any{signXML(f, authnRequestXML, signOpts{})}},
		fuzzcorpus.Seed{Name: "rich", Values: []any{[]byte(richRequestXML)}},
		fuzzcorpus.Seed{Name: "rich-signed", Values: []any{signXML(f, richRequestXML, signOpts{})}},
		fuzzcorpus.Seed{Name: "comment-in-bare-issuer", Values: []any{[]byte(`<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"><saml:Issuer xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">a<!---->b</saml:Issuer></samlp:AuthnRequest>`)}})
	for name, doc := range hostileCorpus(f) {
		seeds = append(seeds, fuzzcorpus.Seed{Name: "hostile-" + seedName(name), Values: []any{doc}})
	}
	fuzzcorpus.Use(f, seeds)
	certs := []*x509.Certificate{mustCert(f, "sp-cert.pem")}
	f.Fuzz(func(t *testing.T, b []byte) {
		mustCheckLikeXRV(t, b)
		r, err := ParseAuthnRequest(b)
		if err == nil && r == nil {
			t.Fatal("nil request without error")
		}
		root, err := VerifyPOSTSignature(b, certs, false)
		if err != nil {
			mustBeOurError(t, err)
			return
		}
		// What verifies is the document's root, and reads as the document does.
		doc, err := parseXML(b)
		if err != nil {
			t.Fatalf("verified a document CheckXML refuses: %v", err)
		}
		if d := doc.Root(); root.Tag != d.Tag || root.NamespaceURI() != d.NamespaceURI() || attr(root, "ID") != attr(d, "ID") {
			t.Fatalf("verified <%s ID=%q>, the document's root is <%s ID=%q>", root.Tag, attr(root, "ID"), d.Tag, attr(d, "ID"))
		}
		if r != nil {
			v, err := ParseAuthnRequestElement(root)
			if err != nil || signedAs(t, v) != signedAs(t, r) {
				t.Fatalf("the verified request reads as %+v (%v), the document as %+v", v, err, r)
			}
		}
	})
}

func FuzzParseLogoutRequest(f *testing.F) {
	fuzzcorpus.Use(f, xmlSeeds(logoutRequestRefusals(),
		fuzzcorpus.Seed{Name: "plain", Values: []any{[]byte(logoutRequestXML)}},
		fuzzcorpus.Seed{Name: "signed", Values: []any{signXML(f, logoutRequestXML, signOpts{})}},
		fuzzcorpus.Seed{Name: "signed-sha1", Values: []any{signXML(f, logoutRequestXML, signOpts{method: AlgRSASHA1})}},
		fuzzcorpus.Seed{Name: "signed-by-idp-key", Values: []any{signXML(f, logoutRequestXML, signOpts{key: mustKey(f, "idp-key.pem"), cert: mustCert(f, "idp-cert.pem")})}},
		fuzzcorpus.Seed{Name: "comment-in-bare-name-id", Values: []any{[]byte(`<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"><saml:NameID xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">a<!---->b</saml:NameID></samlp:LogoutRequest>`)}}))
	idp := mustIdP(f)
	policy := SignaturePolicy{Certificates: []*x509.Certificate{mustCert(f, "sp-cert.pem")}}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseLogoutRequest(b)
		if err == nil && (r == nil || r.NameID == "") {
			t.Fatal("request without a NameID accepted")
		}
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("untyped error %T", err)
			}
		}
		r, err = idp.ReadLogoutRequest(&InboundMessage{XML: b, Binding: BindingPOST}, testLogoutCheck(), policy)
		if err == nil && !r.Signed {
			t.Fatal("unsigned logout request accepted")
		}
	})
}

func FuzzParseSPMetadata(f *testing.F) {
	fuzzcorpus.Use(f, xmlSeeds(spMetadataRefusals(f), spMetadataSeeds(f)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		mustCheckLikeXRV(t, b)
		m, err := ParseSPMetadata(b)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("untyped error %T", err)
			}
			return
		}
		if m.EntityID == "" || len(m.ACS) == 0 {
			t.Fatalf("accepted %+v", m)
		}
		if d, ok := m.DefaultACS(); ok && d.Binding != BindingPOST {
			t.Fatalf("default ACS %+v", d)
		}
	})
}
