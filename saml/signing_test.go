package saml

import (
	"bytes"
	"crypto/x509"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/beevik/etree"
	crewjam "github.com/crewjam/saml"
	saml2 "github.com/russellhaering/gosaml2"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/winkk/passport/saml/samltest"
)

// signings are the Signing choices with what each signs.
var signings = []struct {
	name                string
	signing             Signing
	response, assertion bool
}{
	{"both", SignBoth, true, true},
	{"assertion", SignAssertion, false, true},
	{"response", SignResponse, true, false},
}

// TestMakeResponseSigning runs a cleartext Response of each Signing past
// xmllint, xmlsec1, goxmldsig, gosaml2 and crewjam/saml, checks that only
// what was to be signed carries a signature, and that a changed NameID is
// refused by all three verifiers. SignBoth is the zero value's output, byte
// for byte; the others have golden files of their own.
func TestMakeResponseSigning(t *testing.T) {
	t.Parallel()
	for _, tt := range signings {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			idp := mustIdP(t)
			p := testResponseParams()
			p.Signing = tt.signing
			resp, err := idp.MakeResponse(p)
			if err != nil {
				t.Fatal(err)
			}
			if tt.signing == SignBoth {
				mustGolden(t, "TestMakeResponse", resp)
			} else {
				mustGolden(t, t.Name(), resp)
			}
			samltest.SchemaValid(t, samltest.ProtocolXSD, resp)

			root := mustParseDoc(t, resp).Root()
			a := findElement(root, NamespaceAssertion, "Assertion")
			mustChildOrder(t, root, withSignature(tt.response, "Issuer", "Signature", "Status", "Assertion")...)
			mustChildOrder(t, a, withSignature(tt.assertion, "Issuer", "Signature", "Subject", "Conditions", "AuthnStatement", "AttributeStatement")...)

			if tt.response {
				samltest.XMLSecVerify(t, resp, idp.Certificate)
				mustGoxmldsigValidate(t, resp, NamespaceProtocol, "Response", idp.Certificate)
			} else {
				mustMissingSignature(t, resp, NamespaceProtocol, "Response", idp)
			}
			if tt.assertion {
				samltest.XMLSecVerify(t, samltest.ExtractAssertion(t, resp), idp.Certificate)
				mustGoxmldsigValidate(t, resp, NamespaceAssertion, "Assertion", idp.Certificate)
			} else {
				mustMissingSignature(t, resp, NamespaceAssertion, "Assertion", idp)
			}

			info := mustGosaml2Accept(t, idp, resp, p.Destination, p.Audience)
			if info.NameID != p.NameID || info.ResponseSignatureValidated != tt.response {
				t.Fatalf("gosaml2 read NameID %q, response signature validated %v", info.NameID, info.ResponseSignatureValidated)
			}
			if ca := mustCrewjamAccept(t, idp, resp, p.Destination, p.Audience, []string{p.InResponseTo}); ca.Subject.NameID.Value != p.NameID {
				t.Fatalf("crewjam read NameID %+v", ca.Subject.NameID)
			}

			forged := bytes.Replace(resp, []byte(">jane.doe@example.com</saml:NameID>"), []byte(">john.doe@example.com</saml:NameID>"), 1)
			if bytes.Equal(forged, resp) {
				t.Fatal("forgery changed nothing")
			}
			mustAllRefuse(t, idp, forged, p, nil, nil)
		})
	}
}

// TestMakeResponseSigningEncrypted does the same for encrypted assertions.
// SignAssertion sends an unsigned Response whose EncryptedAssertion holds
// the signed Assertion; SignResponse a signed Response whose decrypted
// Assertion has no signature of its own, which gosaml2 and crewjam/saml
// accept because the Response signature covers the EncryptedAssertion. The
// forgery here is the one encryption invites: anyone holding the SP's
// public certificate can encrypt an assertion of their own, so the
// decrypted assertion, with another NameID, is re-encrypted to the SP and
// put in place of the original. The signature that covers it (the
// assertion's inside, or the Response's outside) must refuse it.
func TestMakeResponseSigningEncrypted(t *testing.T) {
	t.Parallel()
	for _, tt := range signings {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			idp := mustIdP(t)
			p := testResponseParams()
			p.Signing = tt.signing
			resp := mustEncryptedResponse(t, idp, p)
			samltest.SchemaValid(t, samltest.ProtocolXSD, resp)

			root := mustParseDoc(t, resp).Root()
			mustChildOrder(t, root, withSignature(tt.response, "Issuer", "Signature", "Status", "EncryptedAssertion")...)
			if tt.response {
				samltest.XMLSecVerify(t, resp, idp.Certificate)
				mustGoxmldsigValidate(t, resp, NamespaceProtocol, "Response", idp.Certificate)
			} else {
				mustMissingSignature(t, resp, NamespaceProtocol, "Response", idp)
			}

			plain := mustXMLSecDecrypted(t, resp)
			if !bytes.Equal(plain, mustDecryptAssertion(t, resp)) {
				t.Fatal("xmlsec1 and xmlenc decrypt to different assertions")
			}
			mustChildOrder(t, mustParseDoc(t, plain).Root(), withSignature(tt.assertion, "Issuer", "Signature", "Subject", "Conditions", "AuthnStatement", "AttributeStatement")...)
			if tt.assertion {
				samltest.XMLSecVerify(t, plain, idp.Certificate)
				mustGoxmldsigValidate(t, plain, NamespaceAssertion, "Assertion", idp.Certificate)
			} else {
				mustMissingSignature(t, plain, NamespaceAssertion, "Assertion", idp)
			}

			info := mustGosaml2Accept(t, idp, resp, p.Destination, p.Audience, withGosaml2Decryption(t))
			if info.NameID != p.NameID || info.ResponseSignatureValidated != tt.response {
				t.Fatalf("gosaml2 read NameID %q, response signature validated %v", info.NameID, info.ResponseSignatureValidated)
			}
			if ca := mustCrewjamAccept(t, idp, resp, p.Destination, p.Audience, []string{p.InResponseTo}, withCrewjamDecryption(t)); ca.Subject.NameID.Value != p.NameID {
				t.Fatalf("crewjam read NameID %+v", ca.Subject.NameID)
			}

			// The control: the same assertion re-encrypted. Only a Response
			// signature notices (it covers the ciphertext).
			same := mustReencrypted(t, resp, plain)
			if tt.response {
				mustAllRefuse(t, idp, same, p, withGosaml2Decryption(t), withCrewjamDecryption(t))
			} else {
				mustGosaml2Accept(t, idp, same, p.Destination, p.Audience, withGosaml2Decryption(t))
				mustCrewjamAccept(t, idp, same, p.Destination, p.Audience, []string{p.InResponseTo}, withCrewjamDecryption(t))
			}

			forgedPlain := bytes.Replace(plain, []byte(">jane.doe@example.com</saml:NameID>"), []byte(">john.doe@example.com</saml:NameID>"), 1)
			if bytes.Equal(forgedPlain, plain) {
				t.Fatal("forgery changed nothing")
			}
			mustAllRefuse(t, idp, mustReencrypted(t, resp, forgedPlain), p, withGosaml2Decryption(t), withCrewjamDecryption(t))
		})
	}
}

// mustReencrypted returns resp with its EncryptedAssertion replaced by plain
// encrypted afresh to the SP's certificate.
func mustReencrypted(tb testing.TB, resp, plain []byte) []byte {
	tb.Helper()
	reencrypted, err := encryptAssertion(plain, mustCert(tb, "sp-enc-cert.pem"))
	if err != nil {
		tb.Fatal(err)
	}
	const endTag = "</saml:EncryptedAssertion>"
	i, j := bytes.Index(resp, []byte("<saml:EncryptedAssertion")), bytes.Index(resp, []byte(endTag))
	if i < 0 || j < i {
		tb.Fatal("no EncryptedAssertion")
	}
	out := append(append(append([]byte{}, resp[:i]...), reencrypted...), resp[j+len(endTag):]...)
	if got := mustDecryptAssertion(tb, out); !bytes.Equal(got, plain) {
		tb.Fatal("the spliced response does not carry the new assertion")
	}
	return out
}

// withSignature returns names, less "Signature" when signed is false.
func withSignature(signed bool, names ...string) []string {
	if signed {
		return names
	}
	var out []string
	for _, n := range names {
		if n != "Signature" {
			out = append(out, n)
		}
	}
	return out
}

// mustMissingSignature checks that the first element (ns, tag) of doc carries
// no signature: goxmldsig finds none to validate.
func mustMissingSignature(tb testing.TB, doc []byte, ns, tag string, idp *IdentityProvider) {
	tb.Helper()
	el := findElement(mustParseDoc(tb, doc).Root(), ns, tag)
	if el == nil {
		tb.Fatalf("no %s", tag)
	}
	vc := dsig.NewDefaultValidationContext(&dsig.MemoryX509CertificateStore{Roots: []*x509.Certificate{idp.Certificate}})
	vc.Clock = dsig.NewFakeClockAt(testNow)
	if _, err := vc.Validate(el); !errors.Is(err, dsig.ErrMissingSignature) {
		tb.Fatalf("%s: goxmldsig says %v, want a missing signature", tag, err)
	}
}

// mustAllRefuse checks that xmlsec1 (on every signature the document
// carries, decrypted when encrypted), gosaml2 and crewjam/saml refuse a
// forged Response.
func mustAllRefuse(tb testing.TB, idp *IdentityProvider, forged []byte, p ResponseParams, g func(*saml2.SAMLServiceProvider), c func(*crewjam.ServiceProvider)) {
	tb.Helper()
	var gopts []func(*saml2.SAMLServiceProvider)
	var copts []func(*crewjam.ServiceProvider)
	if g != nil {
		gopts, copts = append(gopts, g), append(copts, c)
	}
	// Both must refuse it for its signature, not for something else.
	if _, err := gosaml2Retrieve(idp, forged, p.Destination, p.Audience, gopts...); err == nil || !strings.Contains(err.Error(), "Signature could not be verified") {
		tb.Errorf("gosaml2 did not refuse a forged response for its signature: %v", err)
	}
	_, err := crewjamParse(tb, idp, forged, p.Destination, p.Audience, []string{p.InResponseTo}, copts...)
	if ire, ok := err.(*crewjam.InvalidResponseError); !ok || !strings.Contains(ire.PrivateErr.Error(), "cannot validate signature") {
		tb.Errorf("crewjam did not refuse a forged response for its signature: %v", err)
	}
	var xmlsecRefused bool
	for _, doc := range signedParts(tb, forged, g != nil) {
		xmlsecRefused = xmlsecRefused || samltest.XMLSecCheck(tb, doc, idp.Certificate) != nil
	}
	if !xmlsecRefused {
		tb.Error("xmlsec1 accepted every signature of a forged response")
	}
}

// signedParts returns the documents whose first signature xmlsec1 should
// check in resp: the Response when it is signed, and the Assertion (cut
// out, or decrypted when encrypted) when it is.
func signedParts(tb testing.TB, resp []byte, encrypted bool) [][]byte {
	tb.Helper()
	root := mustParseDoc(tb, resp).Root()
	var out [][]byte
	if hasChild(root, NamespaceDSig, "Signature") {
		out = append(out, resp)
	}
	a := samltest.ExtractAssertion
	if encrypted {
		a = func(tb testing.TB, resp []byte) []byte { return mustDecryptAssertion(tb, resp) }
	}
	if doc := a(tb, resp); hasChild(mustParseDoc(tb, doc).Root(), NamespaceDSig, "Signature") {
		out = append(out, doc)
	}
	if len(out) == 0 {
		tb.Fatal("nothing in the response is signed")
	}
	return out
}

func hasChild(el *etree.Element, ns, tag string) bool {
	for _, c := range el.ChildElements() {
		if c.Tag == tag && c.NamespaceURI() == ns {
			return true
		}
	}
	return false
}

// withCrewjamDecryption gives crewjam's SP the SP encryption key pair.
func withCrewjamDecryption(tb testing.TB) func(*crewjam.ServiceProvider) {
	tb.Helper()
	key, cert := mustKey(tb, "sp-enc-key.pem"), mustCert(tb, "sp-enc-cert.pem")
	return func(sp *crewjam.ServiceProvider) {
		sp.EncryptionKey = key
		sp.Certificate = cert
	}
}

// TestMakeResponseSigningCanonicalForm is TestMakeResponseCanonicalForm for
// the one-signature choices: random hostile text in every field, and the one
// signature checked with goxmldsig, which canonicalizes on its own.
func TestMakeResponseSigningCanonicalForm(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 4))
	idp := mustIdP(t)
	for i := range 60 {
		p := ResponseParams{
			InResponseTo: "_" + randomText(r),
			Destination:  "https://sp/" + randomText(r),
			Audience:     "a" + randomText(r),
			NameID:       "n" + randomText(r),
			SessionIndex: "s" + randomText(r),
			Signing:      []Signing{SignAssertion, SignResponse}[i%2],
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
		var v *etree.Element
		if p.Signing == SignResponse {
			v = findElement(mustGoxmldsigValidate(t, resp, NamespaceProtocol, "Response", idp.Certificate), NamespaceAssertion, "Assertion")
		} else {
			v = mustGoxmldsigValidate(t, resp, NamespaceAssertion, "Assertion", idp.Certificate)
		}
		if got := findElement(v, NamespaceAssertion, "NameID").Text(); got != p.NameID {
			t.Fatalf("case %d: signed NameID %q, want %q", i, got, p.NameID)
		}
	}
}

func TestSigningNames(t *testing.T) {
	t.Parallel()
	for _, tt := range signings {
		if tt.signing.String() != tt.name {
			t.Errorf("%d.String() = %q, want %q", tt.signing, tt.signing.String(), tt.name)
		}
		if s, err := ParseSigning(tt.name); err != nil || s != tt.signing {
			t.Errorf("ParseSigning(%q) = %v, %v", tt.name, s, err)
		}
	}
	if s, err := ParseSigning(""); err != nil || s != SignBoth {
		t.Errorf(`ParseSigning("") = %v, %v; want both`, s, err)
	}
	for _, bad := range []string{"Both", "none", "assertion,response"} {
		if _, err := ParseSigning(bad); err == nil {
			t.Errorf("ParseSigning(%q) accepted", bad)
		}
	}
	p := testResponseParams()
	p.Signing = SignResponse + 1
	if out, err := mustIdP(t).MakeResponse(p); err == nil || out != nil {
		t.Fatalf("MakeResponse with %v: %d bytes, %v", p.Signing, len(out), err)
	}
}

// TestSPMetadataSigning checks that an SP whose metadata wants signed
// assertions gets them whatever is preferred, and others what is preferred.
func TestSPMetadataSigning(t *testing.T) {
	t.Parallel()
	atlassian, err := ParseSPMetadata(mustReadFile(t, "sp-metadata/atlassian.xml"))
	if err != nil {
		t.Fatal(err)
	}
	shibboleth, err := ParseSPMetadata(mustReadFile(t, "sp-metadata/shibboleth.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if !atlassian.WantAssertionsSigned || shibboleth.WantAssertionsSigned {
		t.Fatal("testdata metadata changed: Atlassian's should want signed assertions, Shibboleth's not")
	}
	want := map[Signing][2]Signing{ // preferred: Atlassian's, Shibboleth's
		SignBoth:      {SignBoth, SignBoth},
		SignAssertion: {SignAssertion, SignAssertion},
		SignResponse:  {SignBoth, SignResponse},
	}
	for preferred, w := range want {
		if got := atlassian.Signing(preferred); got != w[0] {
			t.Errorf("Atlassian, %v preferred: %v, want %v", preferred, got, w[0])
		}
		if got := shibboleth.Signing(preferred); got != w[1] {
			t.Errorf("Shibboleth, %v preferred: %v, want %v", preferred, got, w[1])
		}
	}
}
