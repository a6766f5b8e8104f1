package saml

import (
	"bytes"
	"compress/flate"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"net/url"
	"strings"
	"testing"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
)

// authnRequestXML is an AuthnRequest shaped like Atlassian's, with the
// values the tests' RequestCheck expects. Modify it with strings.Replace.
const authnRequestXML = `<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"` +
	` ID="_req-4f2a9c" Version="2.0" IssueInstant="2026-12-01T09:29:50Z"` +
	` Destination="https://passport.example.com/saml/app1/sso"` +
	` AssertionConsumerServiceURL="https://auth.atlassian.com/login/callback?connection=saml-0123abcd"` +
	` ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST">` +
	`<saml:Issuer>https://auth.atlassian.com/saml/0123abcd/</saml:Issuer>` +
	`<samlp:NameIDPolicy Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress" AllowCreate="true"/>` +
	`</samlp:AuthnRequest>`

func testCheck() RequestCheck {
	return RequestCheck{Audience: testAudience, ACSURL: testACSURL, SSOURL: testSSOURL}
}

// signOpts chooses how signXML signs.
type signOpts struct {
	key    crypto.Signer
	cert   *x509.Certificate
	method string             // default RSA-SHA256
	c14n   dsig.Canonicalizer // default exclusive C14N
}

// signXML signs the root of doc with an enveloped signature placed right
// after the Issuer, as an SP would.
func signXML(tb testing.TB, doc string, o signOpts) []byte {
	tb.Helper()
	if o.key == nil {
		o.key, o.cert = mustKey(tb, "sp-key.pem"), mustCert(tb, "sp-cert.pem")
	}
	d := etree.NewDocument()
	if err := d.ReadFromString(doc); err != nil {
		tb.Fatal(err)
	}
	ctx, err := dsig.NewSigningContext(o.key, [][]byte{o.cert.Raw})
	if err != nil {
		tb.Fatal(err)
	}
	ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	if o.c14n != nil {
		ctx.Canonicalizer = o.c14n
	}
	if o.method == "" {
		o.method = AlgRSASHA256
	}
	if err := ctx.SetSignatureMethod(o.method); err != nil {
		tb.Fatal(err)
	}
	signed, err := ctx.SignEnveloped(d.Root())
	if err != nil {
		tb.Fatal(err)
	}
	sig := signed.Child[len(signed.Child)-1]
	signed.RemoveChildAt(len(signed.Child) - 1)
	at := 0
	for i, c := range signed.Child {
		if e, ok := c.(*etree.Element); ok && e.Tag == "Issuer" {
			at = i + 1
		}
	}
	signed.InsertChildAt(at, sig)
	out := etree.NewDocument()
	out.SetRoot(signed)
	b, err := out.WriteToBytes()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func mustDeflate(tb testing.TB, b []byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	w, err := flate.NewWriter(&buf, flate.BestCompression)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		tb.Fatal(err)
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// redirectQuery encodes msg for the HTTP-Redirect binding and, when key is
// set, signs it with sigAlg as saml-bindings §3.4.4.1 says.
func redirectQuery(tb testing.TB, msg []byte, relayState string, key crypto.Signer, sigAlg string) string {
	tb.Helper()
	q := "SAMLRequest=" + url.QueryEscape(base64.StdEncoding.EncodeToString(mustDeflate(tb, msg)))
	if relayState != "" {
		q += "&RelayState=" + url.QueryEscape(relayState)
	}
	if key == nil {
		return q
	}
	q += "&SigAlg=" + url.QueryEscape(sigAlg)
	alg := signatureAlgs[sigAlg]
	h := alg.hash.New()
	h.Write([]byte(q))
	sig, err := key.Sign(rand.Reader, h.Sum(nil), alg.hash)
	if err != nil {
		tb.Fatal(err)
	}
	return q + "&Signature=" + url.QueryEscape(base64.StdEncoding.EncodeToString(sig))
}

func postForm(msg []byte, relayState string) url.Values {
	f := url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString(msg)}}
	if relayState != "" {
		f.Set("RelayState", relayState)
	}
	return f
}

func replace(s, old, new string) string {
	if !strings.Contains(s, old) {
		panic("replace: " + old + " not found")
	}
	return strings.Replace(s, old, new, 1)
}
