package saml

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
)

var update = flag.Bool("update", false, "rewrite golden files and the hostile corpus in testdata/")

// Fixed test values. testNow has a fractional second so that tests see
// truncation to whole seconds.
var (
	testNow      = time.Date(2026, 12, 1, 9, 30, 0, 123e6, time.UTC)
	testEntityID = "Winkk Passport IdP"
	testSSOURL   = "https://passport.example.com/saml/app1/sso"
	testSLOURL   = "https://passport.example.com/saml/app1/slo"
	testACSURL   = "https://auth.atlassian.com/login/callback?connection=saml-0123abcd"
	testAudience = "https://auth.atlassian.com/saml/0123abcd/"
	testSPIssuer = testAudience
)

func mustReadFile(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func mustPEM(tb testing.TB, name string) []byte {
	tb.Helper()
	blk, _ := pem.Decode(mustReadFile(tb, name))
	if blk == nil {
		tb.Fatalf("%s: no PEM block", name)
	}
	return blk.Bytes
}

func mustKey(tb testing.TB, name string) *rsa.PrivateKey {
	tb.Helper()
	k, err := x509.ParsePKCS1PrivateKey(mustPEM(tb, name))
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func mustCert(tb testing.TB, name string) *x509.Certificate {
	tb.Helper()
	c, err := x509.ParseCertificate(mustPEM(tb, name))
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// testRand is a deterministic randomness source.
func testRand() *rand.ChaCha8 {
	return rand.NewChaCha8([32]byte([]byte("passport saml test randomness!!!")))
}

// mustIdP returns an IdentityProvider with the testdata key, a frozen clock
// and deterministic randomness.
func mustIdP(tb testing.TB) *IdentityProvider {
	tb.Helper()
	return &IdentityProvider{
		EntityID:          testEntityID,
		Key:               mustKey(tb, "idp-key.pem"),
		Certificate:       mustCert(tb, "idp-cert.pem"),
		ExtraCertificates: []*x509.Certificate{mustCert(tb, "idp-next-cert.pem")},
		Clock:             func() time.Time { return testNow },
		Rand:              testRand(),
	}
}

func testResponseParams() ResponseParams {
	return ResponseParams{
		InResponseTo: "_req-4f2a9c",
		Destination:  testACSURL,
		Audience:     testAudience,
		NameID:       "jane.doe@example.com",
		NameIDFormat: NameIDFormatEmailAddress,
		SessionIndex: "_sess-1",
		AuthnInstant: testNow.Add(-30 * time.Second),
		Attributes: []Attribute{
			{Name: "email", NameFormat: AttrNameFormatBasic, Values: []string{"jane.doe@example.com"}},
			{Name: "urn:oid:2.5.4.42", NameFormat: AttrNameFormatURI, FriendlyName: "givenName", Values: []string{"Jane"}},
			{Name: "groups", Values: []string{"jira-users", "confluence-users & <admins>"}},
		},
		SessionNotOnOrAfter: testNow.Add(8 * time.Hour),
	}
}

// mustGolden compares got with testdata/<name>.golden, rewriting it under -update.
func mustGolden(tb testing.TB, name string, got []byte) {
	tb.Helper()
	path := filepath.Join("testdata", strings.ReplaceAll(name, "/", "_")+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			tb.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		tb.Errorf("output differs from %s (run go test -update if the change is intended)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

func mustParseDoc(tb testing.TB, b []byte) *etree.Document {
	tb.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(b); err != nil {
		tb.Fatalf("parse: %v\n%s", err, b)
	}
	return doc
}

// findElement returns the first element in document order with namespace
// URI ns and local name tag.
func findElement(root *etree.Element, ns, tag string) *etree.Element {
	var found *etree.Element
	walk(root, func(el *etree.Element) {
		if found == nil && el.Tag == tag && el.NamespaceURI() == ns {
			found = el
		}
	})
	return found
}

// wantCode fails unless err is an *Error with the given code.
func wantCode(tb testing.TB, err error, code string) {
	tb.Helper()
	if err == nil {
		tb.Fatalf("got no error, want %s", code)
	}
	e, ok := err.(*Error)
	if !ok {
		tb.Fatalf("got %T %v, want *Error %s", err, err, code)
	}
	if e.Code != code {
		tb.Fatalf("got code %s (%v), want %s", e.Code, err, code)
	}
	if e.Message == "" || strings.Contains(e.Message, "\n") {
		tb.Fatalf("bad public message %q", e.Message)
	}
}
