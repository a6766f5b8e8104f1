package saml

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"encoding/xml"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/beevik/etree"
	crewjam "github.com/crewjam/saml"
	saml2 "github.com/russellhaering/gosaml2"
	dsig "github.com/russellhaering/goxmldsig"
)

// mustXMLSecVerify verifies the first signature in doc with xmlsec1, using
// only the given certificate's key.
func mustXMLSecVerify(tb testing.TB, doc []byte, cert *x509.Certificate) {
	tb.Helper()
	if err := xmlsecVerify(tb, doc, cert); err != nil {
		tb.Fatal(err)
	}
}

func xmlsecVerify(tb testing.TB, doc []byte, cert *x509.Certificate) error {
	tb.Helper()
	xmlsec := needTool(tb, "xmlsec1")
	// Not tb.TempDir: xmlsec1 splits file arguments at commas, which test
	// names may contain.
	dir, err := os.MkdirTemp("", "xmlsec")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	certFile := filepath.Join(dir, "cert.pem")
	docFile := filepath.Join(dir, "doc.xml")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(docFile, doc, 0o600); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(xmlsec, "--verify", "--pubkey-cert-pem", certFile,
		"--id-attr:ID", "urn:oasis:names:tc:SAML:2.0:protocol:Response",
		"--id-attr:ID", "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
		docFile)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return &xmlsecError{err: err, out: string(out)}
	}
	if !bytes.Contains(out, []byte("\nOK\n")) && !bytes.HasPrefix(out, []byte("OK\n")) {
		return &xmlsecError{out: string(out)}
	}
	return nil
}

type xmlsecError struct {
	err error
	out string
}

func (e *xmlsecError) Error() string { return "xmlsec1 --verify failed: " + e.out }

// extractAssertion returns the Assertion of a Response as a document of its
// own, so that xmlsec1 checks the assertion's signature rather than the
// response's. The assertion's bytes are cut out verbatim (re-serializing
// could change whitespace in attribute values, which the digest covers),
// and any namespace declaration in scope from its ancestors that it does not
// make itself is added to its start tag.
func extractAssertion(tb testing.TB, resp []byte) []byte {
	tb.Helper()
	doc := mustParseDoc(tb, resp)
	a := findElement(doc.Root(), NamespaceAssertion, "Assertion")
	if a == nil {
		tb.Fatal("no Assertion")
	}
	open := []byte("<" + a.FullTag())
	closeTag := []byte("</" + a.FullTag() + ">")
	i := bytes.Index(resp, open)
	j := bytes.LastIndex(resp, closeTag)
	if i < 0 || j < i || bytes.Count(resp, open) != 1 {
		tb.Fatal("cannot find exactly one assertion")
	}
	declared := map[string]bool{}
	for _, at := range a.Attr {
		if at.Space == "xmlns" || (at.Space == "" && at.Key == "xmlns") {
			declared[at.Key] = true
		}
	}
	var extra []byte
	for p := a.Parent(); p != nil; p = p.Parent() {
		for _, at := range p.Attr {
			if (at.Space == "xmlns" || (at.Space == "" && at.Key == "xmlns")) && !declared[at.Key] {
				declared[at.Key] = true
				extra = append(extra, " "+at.FullKey()+"=\""+at.Value+"\""...)
			}
		}
	}
	out := append([]byte{}, open...)
	out = append(out, extra...)
	out = append(out, resp[i+len(open):j+len(closeTag)]...)
	return out
}

// mustGoxmldsigValidate validates the enveloped signature of the element
// (namespace ns, name tag) with goxmldsig, pinned to cert.
func mustGoxmldsigValidate(tb testing.TB, doc []byte, ns, tag string, cert *x509.Certificate) *etree.Element {
	tb.Helper()
	el := findElement(mustParseDoc(tb, doc).Root(), ns, tag)
	if el == nil {
		tb.Fatalf("no %s", tag)
	}
	vc := dsig.NewDefaultValidationContext(&dsig.MemoryX509CertificateStore{Roots: []*x509.Certificate{cert}})
	vc.Clock = dsig.NewFakeClockAt(testNow)
	v, err := vc.Validate(el)
	if err != nil {
		tb.Fatalf("goxmldsig: %s signature: %v", tag, err)
	}
	return v
}

// mustGosaml2Accept runs gosaml2's SP over a Response and returns what it read.
func mustGosaml2Accept(tb testing.TB, idp *IdentityProvider, resp []byte, acs, audience string) *saml2.AssertionInfo {
	tb.Helper()
	sp := &saml2.SAMLServiceProvider{
		IdentityProviderIssuer:      idp.EntityID,
		AssertionConsumerServiceURL: acs,
		AudienceURI:                 audience,
		IDPCertificateStore:         &dsig.MemoryX509CertificateStore{Roots: []*x509.Certificate{idp.Certificate}},
		Clock:                       dsig.NewFakeClockAt(testNow.Add(10 * time.Second)),
		// Our Response omits the AttributeStatement when there are no attributes.
		AllowMissingAttributes: true,
	}
	info, err := sp.RetrieveAssertionInfo(base64.StdEncoding.EncodeToString(resp))
	if err != nil {
		tb.Fatalf("gosaml2: %v", err)
	}
	if w := info.WarningInfo; w.NotInAudience || w.InvalidTime || w.OneTimeUse || w.ProxyRestriction != nil {
		tb.Fatalf("gosaml2 warnings: %+v", *w)
	}
	return info
}

// mustCrewjamAccept runs crewjam/saml's SP over a Response, with our metadata
// as the IdP's.
func mustCrewjamAccept(tb testing.TB, idp *IdentityProvider, resp []byte, acs, audience string, requestIDs []string) *crewjam.Assertion {
	tb.Helper()
	md, err := idp.Metadata(testSSOURL, testSLOURL)
	if err != nil {
		tb.Fatal(err)
	}
	var ed crewjam.EntityDescriptor
	if err := xml.Unmarshal(md, &ed); err != nil {
		tb.Fatalf("crewjam cannot read our metadata: %v", err)
	}
	acsURL, err := url.Parse(acs)
	if err != nil {
		tb.Fatal(err)
	}
	sp := crewjam.ServiceProvider{
		EntityID:          audience,
		AcsURL:            *acsURL,
		IDPMetadata:       &ed,
		Clock:             dsig.NewFakeClockAt(testNow.Add(10 * time.Second)),
		AllowIDPInitiated: len(requestIDs) == 0,
	}
	a, err := sp.ParseXMLResponse(resp, requestIDs, *acsURL)
	if err != nil {
		if ire, ok := err.(*crewjam.InvalidResponseError); ok {
			tb.Fatalf("crewjam: %v: %v", err, ire.PrivateErr)
		}
		tb.Fatalf("crewjam: %v", err)
	}
	return a
}
