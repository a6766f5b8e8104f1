// Package samltest checks SAML messages with tools Passport did not write: xmlsec1 for signatures and
// xmllint with the SAML 2.0 XSDs (Debian's opensaml-schemas) for structure. When a tool is missing, a test
// fails under CI=true and is skipped otherwise.
package samltest

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/beevik/etree"
)

// Schemas from Debian's opensaml-schemas package.
const (
	ProtocolXSD = "/usr/share/xml/opensaml/saml-schema-protocol-2.0.xsd"
	MetadataXSD = "/usr/share/xml/opensaml/saml-schema-metadata-2.0.xsd"
)

// NeedTool returns the path of an external tool. When it is missing the test fails under CI=true and is
// skipped otherwise.
func NeedTool(tb testing.TB, name string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("%s is required in CI but not installed", name)
		}
		tb.Skipf("%s not installed; skipping (it is required when CI=true)", name)
	}
	return p
}

// needSchema fails tb under CI=true and skips it otherwise when the schema file xsd is missing.
func needSchema(tb testing.TB, xsd string) {
	tb.Helper()
	if _, err := os.Stat(xsd); err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("schema %s missing (install opensaml-schemas)", xsd)
		}
		tb.Skipf("schema %s missing (install opensaml-schemas)", xsd)
	}
}

// NeedCheckers returns when xmlsec1, xmllint and the SAML protocol schema are all present; otherwise, as
// NeedTool does, it fails tb under CI=true and skips it elsewhere. A test whose steps build on each other
// calls it first: a checker found missing halfway would skip only the step that needs it (t.Skip ends that
// subtest) and leave the next step to fail on what the skipped one never did.
func NeedCheckers(tb testing.TB) {
	tb.Helper()
	NeedTool(tb, "xmlsec1")
	NeedTool(tb, "xmllint")
	needSchema(tb, ProtocolXSD)
}

// ParseCertificatePEM parses one PEM certificate or fails tb.
func ParseCertificatePEM(tb testing.TB, b []byte) *x509.Certificate {
	tb.Helper()
	block, _ := pem.Decode(b)
	if block == nil {
		tb.Fatal("samltest: no PEM block")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		tb.Fatalf("samltest: parse certificate: %v", err)
	}
	return c
}

// XMLSecVerify verifies the first signature in doc with xmlsec1, trusting only cert's key.
func XMLSecVerify(tb testing.TB, doc []byte, cert *x509.Certificate) {
	tb.Helper()
	if err := XMLSecCheck(tb, doc, cert); err != nil {
		tb.Fatal(err)
	}
}

// XMLSecCheck is XMLSecVerify returning the failure instead, for tests that expect one.
func XMLSecCheck(tb testing.TB, doc []byte, cert *x509.Certificate) error {
	tb.Helper()
	xmlsec := NeedTool(tb, "xmlsec1")
	certFile, docFile := tempFiles(tb, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), doc)
	cmd := exec.Command(xmlsec, "--verify", "--pubkey-cert-pem", certFile,
		"--id-attr:ID", "urn:oasis:names:tc:SAML:2.0:protocol:Response",
		"--id-attr:ID", "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
		"--id-attr:ID", "urn:oasis:names:tc:SAML:2.0:protocol:LogoutResponse",
		"--id-attr:ID", "urn:oasis:names:tc:SAML:2.0:protocol:LogoutRequest",
		docFile)
	out, err := cmd.CombinedOutput()
	if err != nil || !(bytes.Contains(out, []byte("\nOK\n")) || bytes.HasPrefix(out, []byte("OK\n"))) {
		return &XMLSecError{Output: string(out)}
	}
	return nil
}

// XMLSecDecrypt decrypts the xenc:EncryptedData that is the root of doc with xmlsec1 and the PEM private
// key keyPEM (which unwraps the EncryptedKey inside it), and returns the decrypted content.
func XMLSecDecrypt(tb testing.TB, doc, keyPEM []byte) []byte {
	tb.Helper()
	xmlsec := NeedTool(tb, "xmlsec1")
	keyFile, docFile := tempFiles(tb, keyPEM, doc)
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(xmlsec, "--decrypt", "--privkey-pem", keyFile, docFile)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("xmlsec1 --decrypt: %v\n%s", err, stderr.Bytes())
	}
	return stdout.Bytes()
}

// tempFiles writes a PEM key or certificate and a document to files removed when tb ends, and returns
// their names. Not tb.TempDir: xmlsec1 splits file arguments at commas, which test names may contain.
func tempFiles(tb testing.TB, pemBytes, doc []byte) (pemFile, docFile string) {
	tb.Helper()
	dir, err := os.MkdirTemp("", "xmlsec")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	pemFile, docFile = filepath.Join(dir, "key.pem"), filepath.Join(dir, "doc.xml")
	for name, b := range map[string][]byte{pemFile: pemBytes, docFile: doc} {
		if err := os.WriteFile(name, b, 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	return pemFile, docFile
}

// XMLSecError is xmlsec1's refusal.
type XMLSecError struct{ Output string }

func (e *XMLSecError) Error() string { return "xmlsec1 --verify failed: " + e.Output }

// ExtractAssertion returns the Assertion of a Response as a document of its own, so that xmlsec1 checks the
// assertion's signature rather than the response's. The assertion's bytes are cut out verbatim
// (re-serializing could change what the digest covers), and namespace declarations in scope from its
// ancestors that it does not make itself are added to its start tag.
func ExtractAssertion(tb testing.TB, resp []byte) []byte {
	tb.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(resp); err != nil {
		tb.Fatalf("samltest: parse: %v", err)
	}
	a := findAssertion(doc.Root())
	if a == nil {
		tb.Fatal("samltest: no Assertion")
	}
	open := []byte("<" + a.FullTag())
	closeTag := []byte("</" + a.FullTag() + ">")
	i := bytes.Index(resp, open)
	j := bytes.LastIndex(resp, closeTag)
	if i < 0 || j < i || bytes.Count(resp, open) != 1 {
		tb.Fatal("samltest: cannot find exactly one assertion")
	}
	out := append([]byte{}, open...)
	out = append(out, inheritedNamespaces(a)...)
	return append(out, resp[i+len(open):j+len(closeTag)]...)
}

// findAssertion returns the first saml:Assertion at or under el, in document order.
func findAssertion(el *etree.Element) *etree.Element {
	if el.Tag == "Assertion" && el.NamespaceURI() == "urn:oasis:names:tc:SAML:2.0:assertion" {
		return el
	}
	for _, c := range el.ChildElements() {
		if a := findAssertion(c); a != nil {
			return a
		}
	}
	return nil
}

// inheritedNamespaces returns, as attributes to add to el's start tag, the namespace declarations in scope
// from el's ancestors that el does not make itself, the nearest first.
func inheritedNamespaces(el *etree.Element) []byte {
	isDecl := func(at etree.Attr) bool { return at.Space == "xmlns" || (at.Space == "" && at.Key == "xmlns") }
	declared := map[string]bool{}
	for _, at := range el.Attr {
		if isDecl(at) {
			declared[at.Key] = true
		}
	}
	var extra []byte
	for p := el.Parent(); p != nil; p = p.Parent() {
		for _, at := range p.Attr {
			if isDecl(at) && !declared[at.Key] {
				declared[at.Key] = true
				extra = append(extra, " "+at.FullKey()+"=\""+at.Value+"\""...)
			}
		}
	}
	return extra
}

// catalog is the XML catalog mapping the W3C schemas the SAML XSDs import to local copies.
func catalog(tb testing.TB) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		tb.Fatal("samltest: cannot locate the schema catalog")
	}
	return filepath.Join(filepath.Dir(file), "..", "testdata", "xsd", "catalog.xml")
}

// SchemaValid validates doc against xsd with xmllint, never using the network.
func SchemaValid(tb testing.TB, xsd string, doc []byte) {
	tb.Helper()
	xmllint := NeedTool(tb, "xmllint")
	needSchema(tb, xsd)
	f := filepath.Join(tb.TempDir(), "doc.xml")
	if err := os.WriteFile(f, doc, 0o600); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(xmllint, "--nonet", "--noout", "--schema", xsd, f)
	cmd.Env = append(os.Environ(), "XML_CATALOG_FILES="+catalog(tb))
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte(" validates")) {
		tb.Fatalf("xmllint --schema %s: %v\n%s", filepath.Base(xsd), err, out)
	}
}
