package saml

import (
	"crypto/x509"
	"fmt"

	"github.com/beevik/etree"
	"github.com/crewjam/saml/xmlenc"
	dsig "github.com/russellhaering/goxmldsig"
)

// Algorithms of the EncryptedAssertions MakeResponse writes (xmlenc-core1
// §5.2.4, §5.5.2).
const (
	// AlgAES256GCM encrypts the assertion: authenticated encryption, so a
	// modified ciphertext is refused rather than decrypted into an oracle
	// (the CBC attacks of Jager and Somorovsky, 2011).
	AlgAES256GCM = "http://www.w3.org/2009/xmlenc11#aes256-gcm"
	// AlgRSAOAEPMGF1P transports the AES key: RSA-OAEP with SHA-1 as both
	// digest and MGF1 hash. The xmlenc11#rsa-oaep variant with SHA-256 would
	// be newer, but gosaml2 (v0.12) knows SHA-256 only by a non-standard
	// URI, so it could not unwrap the key; SHA-1 inside OAEP is not affected
	// by SHA-1 collisions. Shibboleth, gosaml2 and crewjam/saml all decrypt it.
	AlgRSAOAEPMGF1P = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"
)

// encryptAssertion encrypts plain, a signed saml:Assertion that declares
// every namespace it uses, to cert (an RSA key) and returns the
// saml:EncryptedAssertion element in exclusive canonical form, so that it
// can be digested as written. The encryption is crewjam/saml's xmlenc
// package: AES-256-GCM content encryption (AlgAES256GCM) under a fresh key
// wrapped with RSA-OAEP (AlgRSAOAEPMGF1P), the EncryptedKey inside the
// EncryptedData's KeyInfo, which names cert. xmlenc draws the key, nonce
// and Id attributes from crypto/rand.
func encryptAssertion(plain []byte, cert *x509.Certificate) ([]byte, error) {
	enc := xmlenc.OAEP()
	enc.BlockCipher = xmlenc.AES256GCM
	enc.DigestMethod = xmlenc.SHA1
	data, err := enc.Encrypt(cert, plain, nil)
	if err != nil {
		return nil, fmt.Errorf("encrypt assertion: %w", err)
	}
	ea := etree.NewElement("saml:EncryptedAssertion")
	ea.CreateAttr("xmlns:saml", NamespaceAssertion)
	ea.AddChild(data)
	out, err := dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("").Canonicalize(ea)
	if err != nil {
		return nil, fmt.Errorf("encrypt assertion: canonicalize: %w", err)
	}
	return out, nil
}
