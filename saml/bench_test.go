package saml

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/beevik/etree"
	crewjam "github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"
)

// BenchmarkMakeResponse builds and signs one Response with a signed
// assertion: two RSA-2048 signatures plus the XML work.
func BenchmarkMakeResponse(b *testing.B) {
	idp := mustIdP(b)
	p := testResponseParams()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := idp.MakeResponse(p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMakeResponseSignAssertion is BenchmarkMakeResponse with only the
// assertion signed: one RSA-2048 signature plus the XML work.
func BenchmarkMakeResponseSignAssertion(b *testing.B) {
	benchmarkMakeResponse(b, SignAssertion)
}

// BenchmarkMakeResponseSignResponse is BenchmarkMakeResponse with only the
// response signed: one RSA-2048 signature plus the XML work.
func BenchmarkMakeResponseSignResponse(b *testing.B) {
	benchmarkMakeResponse(b, SignResponse)
}

func benchmarkMakeResponse(b *testing.B, s Signing) {
	idp := mustIdP(b)
	p := testResponseParams()
	p.Signing = s
	b.ReportAllocs()
	for b.Loop() {
		if _, err := idp.MakeResponse(p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMakeResponseEncrypted is BenchmarkMakeResponse with the assertion
// encrypted to the SP (AES-256-GCM, RSA-OAEP key transport, canonicalized by
// goxmldsig).
func BenchmarkMakeResponseEncrypted(b *testing.B) {
	idp := mustIdP(b)
	p := testResponseParams()
	p.EncryptTo = mustCert(b, "sp-enc-cert.pem")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := idp.MakeResponse(p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRedirectURL deflates, encodes and signs a LogoutResponse for the
// HTTP-Redirect binding: one RSA-2048 signature.
func BenchmarkRedirectURL(b *testing.B) {
	idp := mustIdP(b)
	msg, err := idp.MakeLogoutResponse(LogoutResponseParams{InResponseTo: "_lo-1", Destination: testSPSLOURL})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := idp.RedirectURL(testSPSLOURL, "SAMLResponse", msg, "https://start.atlassian.com"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseSPMetadata reads the Shibboleth-like metadata in testdata.
func BenchmarkParseSPMetadata(b *testing.B) {
	md := mustReadFile(b, "sp-metadata/shibboleth.xml")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseSPMetadata(md); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRSASignPKCS1v15 is one bare RSA-2048 PKCS#1 v1.5 SHA-256
// signature with the same key: the floor for MakeResponse is two of these.
func BenchmarkRSASignPKCS1v15(b *testing.B) {
	key := mustKey(b, "idp-key.pem")
	digest := sha256.Sum256([]byte("passport"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, digest[:]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCrewjamMakeResponse has crewjam/saml's IdentityProvider make the
// equivalent Response (same key, SP, user, three attributes, both the
// assertion and the response signed with RSA-SHA256 and exclusive C14N) and
// serialize it, as MakeResponse does.
func BenchmarkCrewjamMakeResponse(b *testing.B) {
	idp := mustIdP(b)
	md := &crewjam.EntityDescriptor{EntityID: testAudience, SPSSODescriptors: []crewjam.SPSSODescriptor{{}}}
	acs := &crewjam.IndexedEndpoint{Binding: crewjam.HTTPPostBinding, Location: testACSURL}
	metadataURL, _ := url.Parse("https://passport.example.com/saml/app1/metadata")
	cidp := &crewjam.IdentityProvider{
		Key:         idp.Key,
		Certificate: idp.Certificate,
		MetadataURL: *metadataURL,
		Clock:       dsig.NewFakeClockAt(testNow),
	}
	session := &crewjam.Session{
		ID: "s1", CreateTime: testNow, Index: "_sess-1",
		NameID: "jane.doe@example.com", NameIDFormat: NameIDFormatEmailAddress,
		UserEmail: "jane.doe@example.com", UserGivenName: "Jane",
		Groups:               []string{"jira-users", "confluence-users & <admins>"},
		AuthnContextClassRef: AuthnContextMobileOneFactorUnregistered,
	}
	httpReq := httptest.NewRequest("GET", testSSOURL, nil)
	make1 := func() []byte {
		req := &crewjam.IdpAuthnRequest{
			IDP:                     cidp,
			HTTPRequest:             httpReq,
			Request:                 crewjam.AuthnRequest{ID: "_req-4f2a9c", IssueInstant: testNow},
			ServiceProviderMetadata: md,
			SPSSODescriptor:         &md.SPSSODescriptors[0],
			ACSEndpoint:             acs,
			Now:                     testNow,
		}
		if err := (crewjam.DefaultAssertionMaker{}).MakeAssertion(req, session); err != nil {
			b.Fatal(err)
		}
		if err := req.MakeResponse(); err != nil {
			b.Fatal(err)
		}
		doc := etree.NewDocument()
		doc.SetRoot(req.ResponseEl)
		out, err := doc.WriteToBytes()
		if err != nil {
			b.Fatal(err)
		}
		return out
	}
	// Check once that crewjam's output is what we compare with: a Response
	// and an Assertion, both signed by the IdP key.
	out := make1()
	mustGoxmldsigValidate(b, out, NamespaceProtocol, "Response", idp.Certificate)
	mustGoxmldsigValidate(b, out, NamespaceAssertion, "Assertion", idp.Certificate)
	b.ReportAllocs()
	for b.Loop() {
		make1()
	}
}

// BenchmarkMakeResponseVsTwoSignatures alternates one MakeResponse with two
// bare signatures in the same loop, so that both see the same machine load,
// and reports their time ratio (the target is at most 1.10).
func BenchmarkMakeResponseVsTwoSignatures(b *testing.B) {
	idp := mustIdP(b)
	p := testResponseParams()
	digest := sha256.Sum256([]byte("passport"))
	var makeNS, signNS int64
	for b.Loop() {
		t0 := time.Now()
		if _, err := idp.MakeResponse(p); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		for range 2 {
			if _, err := rsa.SignPKCS1v15(nil, idp.Key, crypto.SHA256, digest[:]); err != nil {
				b.Fatal(err)
			}
		}
		t2 := time.Now()
		makeNS += t1.Sub(t0).Nanoseconds()
		signNS += t2.Sub(t1).Nanoseconds()
	}
	b.ReportMetric(float64(makeNS)/float64(signNS), "make/2sign")
	b.ReportMetric(float64(makeNS-signNS)/float64(b.N), "xml-ns/op")
}

// BenchmarkMakeResponseVsOneSignature is BenchmarkMakeResponseVsTwoSignatures
// for the choices that sign once: one MakeResponse alternates with one bare
// signature, and the ratio of their times is reported.
func BenchmarkMakeResponseVsOneSignature(b *testing.B) {
	for _, s := range []Signing{SignAssertion, SignResponse} {
		b.Run(s.String(), func(b *testing.B) {
			idp := mustIdP(b)
			p := testResponseParams()
			p.Signing = s
			digest := sha256.Sum256([]byte("passport"))
			var makeNS, signNS int64
			for b.Loop() {
				t0 := time.Now()
				if _, err := idp.MakeResponse(p); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if _, err := rsa.SignPKCS1v15(nil, idp.Key, crypto.SHA256, digest[:]); err != nil {
					b.Fatal(err)
				}
				t2 := time.Now()
				makeNS += t1.Sub(t0).Nanoseconds()
				signNS += t2.Sub(t1).Nanoseconds()
			}
			b.ReportMetric(float64(makeNS)/float64(signNS), "make/1sign")
			b.ReportMetric(float64(makeNS-signNS)/float64(b.N), "xml-ns/op")
		})
	}
}
