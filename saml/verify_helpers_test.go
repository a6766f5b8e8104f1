package saml

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"net/url"
	"testing"
	"time"

	"github.com/beevik/etree"
	crewjam "github.com/crewjam/saml"
	saml2 "github.com/russellhaering/gosaml2"
	dsig "github.com/russellhaering/goxmldsig"
)

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

// mustGosaml2Accept runs gosaml2's SP over a Response and returns what it
// read. opts adjust the SP (trust store, decryption key) before it runs.
func mustGosaml2Accept(tb testing.TB, idp *IdentityProvider, resp []byte, acs, audience string, opts ...func(*saml2.SAMLServiceProvider)) *saml2.AssertionInfo {
	tb.Helper()
	info, err := gosaml2Retrieve(idp, resp, acs, audience, opts...)
	if err != nil {
		tb.Fatalf("gosaml2: %v", err)
	}
	if w := info.WarningInfo; w.NotInAudience || w.InvalidTime || w.OneTimeUse || w.ProxyRestriction != nil {
		tb.Fatalf("gosaml2 warnings: %+v", *w)
	}
	return info
}

// gosaml2Retrieve is mustGosaml2Accept returning gosaml2's refusal instead.
func gosaml2Retrieve(idp *IdentityProvider, resp []byte, acs, audience string, opts ...func(*saml2.SAMLServiceProvider)) (*saml2.AssertionInfo, error) {
	sp := &saml2.SAMLServiceProvider{
		IdentityProviderIssuer:      idp.EntityID,
		AssertionConsumerServiceURL: acs,
		AudienceURI:                 audience,
		IDPCertificateStore:         &dsig.MemoryX509CertificateStore{Roots: []*x509.Certificate{idp.Certificate}},
		Clock:                       dsig.NewFakeClockAt(testNow.Add(10 * time.Second)),
		// Our Response omits the AttributeStatement when there are no attributes.
		AllowMissingAttributes: true,
	}
	for _, o := range opts {
		o(sp)
	}
	return sp.RetrieveAssertionInfo(base64.StdEncoding.EncodeToString(resp))
}

// mustCrewjamAccept runs crewjam/saml's SP over a Response, with our metadata
// as the IdP's. opts adjust the SP (metadata, decryption key) before it runs.
func mustCrewjamAccept(tb testing.TB, idp *IdentityProvider, resp []byte, acs, audience string, requestIDs []string, opts ...func(*crewjam.ServiceProvider)) *crewjam.Assertion {
	tb.Helper()
	a, err := crewjamParse(tb, idp, resp, acs, audience, requestIDs, opts...)
	if err != nil {
		if ire, ok := err.(*crewjam.InvalidResponseError); ok {
			tb.Fatalf("crewjam: %v: %v", err, ire.PrivateErr)
		}
		tb.Fatalf("crewjam: %v", err)
	}
	return a
}

// crewjamParse is mustCrewjamAccept returning crewjam's refusal instead.
func crewjamParse(tb testing.TB, idp *IdentityProvider, resp []byte, acs, audience string, requestIDs []string, opts ...func(*crewjam.ServiceProvider)) (*crewjam.Assertion, error) {
	tb.Helper()
	md, err := idp.Metadata(testSSOURL, testSLOURL, false)
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
	for _, o := range opts {
		o(&sp)
	}
	return sp.ParseXMLResponse(resp, requestIDs, *acsURL)
}
