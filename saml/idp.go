package saml

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"sync/atomic"
	"time"
)

// Defaults for the zero values of IdentityProvider's durations.
const (
	DefaultAssertionLifetime = 5 * time.Minute
	DefaultClockSkew         = 90 * time.Second
	DefaultRequestMaxAge     = 5 * time.Minute
)

// IdentityProvider holds the IdP's identity, signing key and time policy.
// Its methods only read its exported fields, so one value may be shared by
// concurrent goroutines as long as nobody modifies it meanwhile, and Clock
// and Rand are themselves safe for concurrent use (time.Now and crypto/rand
// are). It must not be copied after first use: it keeps a cache.
type IdentityProvider struct {
	EntityID          string              // e.g. "Winkk Passport IdP" (spaces allowed)
	Key               *rsa.PrivateKey     // RSA-2048 signing key
	Certificate       *x509.Certificate   // signing cert, embedded in KeyInfo and metadata
	ExtraCertificates []*x509.Certificate // also published in metadata (key rollover: next / previous certs)
	Clock             func() time.Time    // nil = time.Now
	Rand              io.Reader           // nil = crypto/rand.Reader; used for IDs
	AssertionLifetime time.Duration       // default 5m: NotOnOrAfter = issue time + lifetime
	ClockSkew         time.Duration       // default 90s: NotBefore = issue time - skew; also tolerance for request IssueInstant
	RequestMaxAge     time.Duration       // default 5m: how old a request IssueInstant may be

	// Signer, when set, makes the signatures in Key's place: PKCS#1 v1.5
	// over a SHA-256 digest, with Certificate's RSA key (rsasigner.New(Key)
	// gives one backed by OpenSSL). Key may then be nil.
	Signer crypto.Signer

	// certB64 is Certificate's DER in base64, as every signature's KeyInfo
	// carries it, computed on first use.
	certB64 atomic.Pointer[certCache]
}

func (idp *IdentityProvider) now() time.Time {
	if idp.Clock != nil {
		return idp.Clock().UTC()
	}
	return time.Now().UTC()
}

func (idp *IdentityProvider) rand() io.Reader {
	if idp.Rand != nil {
		return idp.Rand
	}
	return rand.Reader
}

func (idp *IdentityProvider) assertionLifetime() time.Duration {
	if idp.AssertionLifetime > 0 {
		return idp.AssertionLifetime
	}
	return DefaultAssertionLifetime
}

func (idp *IdentityProvider) clockSkew() time.Duration {
	if idp.ClockSkew > 0 {
		return idp.ClockSkew
	}
	return DefaultClockSkew
}

func (idp *IdentityProvider) requestMaxAge() time.Duration {
	if idp.RequestMaxAge > 0 {
		return idp.RequestMaxAge
	}
	return DefaultRequestMaxAge
}

// RequestWindow is how long a request stays acceptable after it was issued by a clock at most ClockSkew
// off on either side: a consumer that remembers request IDs this long refuses every replay.
func (idp *IdentityProvider) RequestWindow() time.Duration {
	return idp.requestMaxAge() + 2*idp.clockSkew()
}

// idBytes is the entropy of generated IDs: 160 bits, as saml-core §1.3.4
// recommends.
const idBytes = 20

// appendID appends a fresh xs:ID: "_" and 40 lowercase hex digits.
func appendID(b []byte, r io.Reader) ([]byte, error) {
	var raw [idBytes]byte
	if _, err := io.ReadFull(r, raw[:]); err != nil {
		return b, fmt.Errorf("saml: random id: %w", err)
	}
	b = append(b, '_')
	return hex.AppendEncode(b, raw[:]), nil
}

// NewID returns a fresh xs:ID from idp.Rand: "_" and 40 hex digits. Use it
// for messages built outside this package (e.g. LogoutResponses).
func (idp *IdentityProvider) NewID() (string, error) {
	b, err := appendID(make([]byte, 0, 1+2*idBytes), idp.rand())
	return string(b), err
}

// certCache is a certificate and its DER in base64.
type certCache struct {
	cert *x509.Certificate
	b64  []byte
}

// certificateBase64 returns Certificate's DER in base64, encoding it only
// when Certificate is not the one encoded last. Concurrent callers may both
// encode it; they store equal values.
func (idp *IdentityProvider) certificateBase64() []byte {
	c := idp.Certificate
	if cc := idp.certB64.Load(); cc != nil && cc.cert == c {
		return cc.b64
	}
	cc := &certCache{cert: c, b64: base64.StdEncoding.AppendEncode(nil, c.Raw)}
	idp.certB64.Store(cc)
	return cc.b64
}

// sign signs a SHA-256 digest with PKCS#1 v1.5 (RSA-SHA256, xmldsig-core
// §6.4.2), by Signer when set and Key otherwise.
func (idp *IdentityProvider) sign(digest []byte) ([]byte, error) {
	if idp.Signer != nil {
		return idp.Signer.Sign(idp.rand(), digest, crypto.SHA256)
	}
	return rsa.SignPKCS1v15(nil, idp.Key, crypto.SHA256, digest)
}
