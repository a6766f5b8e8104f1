package saml

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/beevik/etree"
	crewjam "github.com/crewjam/saml"
	"github.com/crewjam/saml/xmlenc"
	saml2 "github.com/russellhaering/gosaml2"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/winkk/passport/saml/samltest"
)

// mustEncryptedResponse returns a Response whose assertion is encrypted to
// testdata/sp-enc-cert.pem.
func mustEncryptedResponse(tb testing.TB, idp *IdentityProvider, p ResponseParams) []byte {
	tb.Helper()
	p.EncryptTo = mustCert(tb, "sp-enc-cert.pem")
	resp, err := idp.MakeResponse(p)
	if err != nil {
		tb.Fatal(err)
	}
	return resp
}

// withGosaml2Decryption gives gosaml2's SP the SP encryption key pair.
func withGosaml2Decryption(tb testing.TB) func(*saml2.SAMLServiceProvider) {
	tb.Helper()
	key, cert := mustKey(tb, "sp-enc-key.pem"), mustCert(tb, "sp-enc-cert.pem")
	return func(sp *saml2.SAMLServiceProvider) {
		sp.SPKeyStore = dsig.TLSCertKeyStore(tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key})
	}
}

// mustDecryptAssertion decrypts the EncryptedAssertion of resp with the SP
// encryption key, using xmlenc directly, and returns the plaintext.
func mustDecryptAssertion(tb testing.TB, resp []byte) []byte {
	tb.Helper()
	ea := findElement(mustParseDoc(tb, resp).Root(), NamespaceAssertion, "EncryptedAssertion")
	if ea == nil {
		tb.Fatal("no EncryptedAssertion")
	}
	data := ea.SelectElement("EncryptedData")
	if data == nil {
		tb.Fatal("no EncryptedData")
	}
	plain, err := xmlenc.Decrypt(mustKey(tb, "sp-enc-key.pem"), data)
	if err != nil {
		tb.Fatalf("xmlenc: %v", err)
	}
	return plain
}

func TestMakeResponseEncrypted(t *testing.T) {
	t.Parallel()
	idp := mustIdP(t)
	p := testResponseParams()
	resp := mustEncryptedResponse(t, idp, p)

	t.Run("schema", func(t *testing.T) { samltest.SchemaValid(t, samltest.ProtocolXSD, resp) })
	t.Run("xmlsec1 response signature", func(t *testing.T) { samltest.XMLSecVerify(t, resp, idp.Certificate) })
	t.Run("goxmldsig response signature", func(t *testing.T) {
		t.Parallel()
		mustGoxmldsigValidate(t, resp, NamespaceProtocol, "Response", idp.Certificate)
	})
	t.Run("structure", func(t *testing.T) {
		t.Parallel()
		root := mustParseDoc(t, resp).Root()
		mustChildOrder(t, root, "Issuer", "Signature", "Status", "EncryptedAssertion")
		if findElement(root, NamespaceAssertion, "Assertion") != nil {
			t.Fatal("a cleartext Assertion is present")
		}
		for _, secret := range []string{p.NameID, "jira-users", p.SessionIndex, p.Audience} {
			if bytes.Contains(resp, []byte(secret)) {
				t.Fatalf("%q appears in cleartext", secret)
			}
		}
		ea := findElement(root, NamespaceAssertion, "EncryptedAssertion")
		data := ea.SelectElement("EncryptedData")
		if data == nil || len(ea.ChildElements()) != 1 {
			t.Fatal("EncryptedAssertion must hold exactly one EncryptedData")
		}
		if got := attr(data.SelectElement("EncryptionMethod"), "Algorithm"); got != AlgAES256GCM {
			t.Fatalf("content encryption %q, want %q", got, AlgAES256GCM)
		}
		ek := data.FindElement("./KeyInfo/EncryptedKey")
		if ek == nil {
			t.Fatal("no EncryptedKey in the EncryptedData's KeyInfo")
		}
		if got := attr(ek.SelectElement("EncryptionMethod"), "Algorithm"); got != AlgRSAOAEPMGF1P {
			t.Fatalf("key transport %q, want %q", got, AlgRSAOAEPMGF1P)
		}
		if got := ek.FindElement("./KeyInfo/X509Data/X509Certificate"); got == nil ||
			strings.TrimSpace(got.Text()) != base64.StdEncoding.EncodeToString(mustCert(t, "sp-enc-cert.pem").Raw) {
			t.Fatal("EncryptedKey does not name the SP encryption certificate")
		}
	})
	t.Run("plaintext is the signed assertion", func(t *testing.T) {
		t.Parallel()
		plain := mustDecryptAssertion(t, resp)
		samltest.XMLSecVerify(t, plain, idp.Certificate)
		clear, err := mustIdP(t).MakeResponse(p)
		if err != nil {
			t.Fatal(err)
		}
		// The cleartext Response carries the same assertion, byte for byte.
		i, j := bytes.Index(clear, []byte("<saml:Assertion ")), bytes.Index(clear, []byte("</saml:Assertion>"))
		if want := clear[i : j+len("</saml:Assertion>")]; !bytes.Equal(plain, want) {
			t.Fatalf("decrypted assertion differs from the cleartext one\ngot:  %s\nwant: %s", plain, want)
		}
	})
	t.Run("gosaml2", func(t *testing.T) {
		t.Parallel()
		info := mustGosaml2Accept(t, idp, resp, p.Destination, p.Audience, withGosaml2Decryption(t))
		if info.NameID != p.NameID || info.SessionIndex != p.SessionIndex || !info.ResponseSignatureValidated {
			t.Fatalf("gosaml2 read NameID %q SessionIndex %q signed %v", info.NameID, info.SessionIndex, info.ResponseSignatureValidated)
		}
		if got := info.Values.GetAll("groups"); len(got) != 2 || got[1] != "confluence-users & <admins>" {
			t.Fatalf("gosaml2 read groups %q", got)
		}
	})
	t.Run("crewjam", func(t *testing.T) {
		t.Parallel()
		a := mustCrewjamAccept(t, idp, resp, p.Destination, p.Audience, []string{p.InResponseTo}, func(sp *crewjam.ServiceProvider) {
			sp.EncryptionKey = mustKey(t, "sp-enc-key.pem")
			sp.Certificate = mustCert(t, "sp-enc-cert.pem")
		})
		if a.Subject.NameID.Value != p.NameID {
			t.Fatalf("crewjam read NameID %+v", a.Subject.NameID)
		}
	})
	t.Run("xmlsec1 decrypts", func(t *testing.T) { mustXMLSecDecrypt(t, resp) })
	t.Run("fresh key and nonce each time", func(t *testing.T) {
		t.Parallel()
		again := mustEncryptedResponse(t, mustIdP(t), p)
		cipher := func(b []byte) string {
			return findElement(mustParseDoc(t, b).Root(), "http://www.w3.org/2001/04/xmlenc#", "CipherValue").Text()
		}
		if cipher(resp) == cipher(again) {
			t.Fatal("two encryptions gave the same wrapped key")
		}
	})
}

// TestMakeResponseEncryptedRefused checks that encryption cannot be undone
// or altered by someone without the right key.
func TestMakeResponseEncryptedRefused(t *testing.T) {
	t.Parallel()
	idp := mustIdP(t)
	p := testResponseParams()
	resp := mustEncryptedResponse(t, idp, p)

	t.Run("gosaml2 with another SP key", func(t *testing.T) {
		t.Parallel()
		key, cert := mustKey(t, "sp-key.pem"), mustCert(t, "sp-cert.pem")
		sp := &saml2.SAMLServiceProvider{
			IdentityProviderIssuer: idp.EntityID, AssertionConsumerServiceURL: p.Destination, AudienceURI: p.Audience,
			IDPCertificateStore: &dsig.MemoryX509CertificateStore{Roots: []*x509.Certificate{idp.Certificate}},
			Clock:               dsig.NewFakeClockAt(testNow),
			SPKeyStore:          dsig.TLSCertKeyStore(tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key}),
		}
		if _, err := sp.RetrieveAssertionInfo(base64.StdEncoding.EncodeToString(resp)); err == nil {
			t.Fatal("gosaml2 decrypted with the wrong key")
		}
	})
	t.Run("xmlenc with another key", func(t *testing.T) {
		t.Parallel()
		data := findElement(mustParseDoc(t, resp).Root(), NamespaceAssertion, "EncryptedAssertion").SelectElement("EncryptedData")
		if _, err := xmlenc.Decrypt(mustKey(t, "sp-key.pem"), data); err == nil {
			t.Fatal("decrypted with the wrong key")
		}
	})
	t.Run("modified ciphertext breaks the response signature", func(t *testing.T) {
		t.Parallel()
		doc := mustParseDoc(t, resp)
		cvs := doc.FindElements("//CipherValue")
		last := cvs[len(cvs)-1]
		raw, err := base64.StdEncoding.DecodeString(last.Text())
		if err != nil {
			t.Fatal(err)
		}
		raw[len(raw)/2] ^= 1
		tampered := bytes.Replace(resp, []byte(last.Text()), []byte(base64.StdEncoding.EncodeToString(raw)), 1)
		if bytes.Equal(tampered, resp) {
			t.Fatal("tampering changed nothing")
		}
		if err := samltest.XMLSecCheck(t, tampered, idp.Certificate); err == nil {
			t.Fatal("xmlsec1 accepted a response with modified ciphertext")
		}
		data := findElement(mustParseDoc(t, tampered).Root(), NamespaceAssertion, "EncryptedAssertion").SelectElement("EncryptedData")
		if _, err := xmlenc.Decrypt(mustKey(t, "sp-enc-key.pem"), data); err == nil {
			t.Fatal("AES-GCM opened a modified ciphertext")
		}
	})
	t.Run("certificate without an RSA key", func(t *testing.T) {
		t.Parallel()
		_, ec := mustECDSACert(t)
		p := testResponseParams()
		p.EncryptTo = ec
		if out, err := idp.MakeResponse(p); err == nil || out != nil || !strings.HasPrefix(err.Error(), "saml: make response: ") {
			t.Fatalf("got %d bytes, err %v; want a prefixed error", len(out), err)
		}
	})
}

// mustXMLSecDecrypt decrypts the EncryptedData of resp with xmlsec1 and the
// SP encryption key, and checks that the result holds the signed assertion.
func mustXMLSecDecrypt(tb testing.TB, resp []byte) {
	tb.Helper()
	plain := mustXMLSecDecrypted(tb, resp)
	if !bytes.Contains(plain, []byte("<saml:Assertion ")) || !bytes.Contains(plain, []byte("jane.doe@example.com")) {
		tb.Fatalf("xmlsec1 decrypted to %s", plain)
	}
}

// mustXMLSecDecrypted returns what xmlsec1 decrypts the EncryptedData of resp
// to with the SP encryption key.
func mustXMLSecDecrypted(tb testing.TB, resp []byte) []byte {
	tb.Helper()
	doc := mustParseDoc(tb, resp)
	data := findElement(doc.Root(), "http://www.w3.org/2001/04/xmlenc#", "EncryptedData")
	standalone := etree.NewDocument()
	standalone.SetRoot(data.Copy())
	b, err := standalone.WriteToBytes()
	if err != nil {
		tb.Fatal(err)
	}
	return samltest.XMLSecDecrypt(tb, b, mustReadFile(tb, "sp-enc-key.pem"))
}
