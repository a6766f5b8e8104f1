//go:build cgo && linux

package rsasigner

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/big"
	"sync"

	"github.com/golang-fips/openssl/v2"
	"github.com/golang-fips/openssl/v2/bbig"
)

// libcrypto is the library loaded: OpenSSL 3's, as Debian 12, Ubuntu 22.04 and later, RHEL 9 ship it.
var libcrypto = "libcrypto.so.3"

// load loads libcrypto once per process.
var load = sync.OnceValue(func() error {
	if err := openssl.Init(libcrypto); err != nil {
		return fmt.Errorf("%s: %w", libcrypto, err)
	}
	return nil
})

// New returns a crypto.Signer for key. When libcrypto.so.3 loads and makes, for a test digest, the very
// signature Go makes (PKCS#1 v1.5 is deterministic), it is an OpenSSL-backed signer; otherwise it is key
// itself. Either is safe for concurrent use, and either signs PKCS#1 v1.5 over a SHA-256 digest the same,
// byte for byte. The OpenSSL signer makes those itself and hands any other request (PSS, other hashes) to
// key. Its OpenSSL key (an EVP_PKEY) is freed when the signer is garbage collected.
func New(key *rsa.PrivateKey) crypto.Signer {
	if load() != nil {
		return key
	}
	s, err := newOpenSSL(key)
	if err != nil {
		return key
	}
	return s
}

// Backend says which backend New uses in this process, and why: "openssl (OpenSSL 3.0.17 1 Jul 2025)",
// or "go (libcrypto.so.3: ...)" with the reason it did not load. A key OpenSSL refuses (New's check)
// still gets Go: BackendOf tells.
func Backend() string {
	if err := load(); err != nil {
		return BackendGo + " (" + err.Error() + ")"
	}
	return BackendOpenSSL + " (" + openssl.VersionText() + ")"
}

// BackendOf returns the backend of a signer New returned: BackendOpenSSL or BackendGo.
func BackendOf(s crypto.Signer) string {
	if _, ok := s.(*opensslSigner); ok {
		return BackendOpenSSL
	}
	return BackendGo
}

// opensslSigner signs with an OpenSSL copy of key.
type opensslSigner struct {
	key  *rsa.PrivateKey        // for Public and what OpenSSL is not asked to sign
	priv *openssl.PrivateKeyRSA // freed by its finalizer
}

// newOpenSSL copies key into OpenSSL and checks that it signs as Go does.
func newOpenSSL(key *rsa.PrivateKey) (*opensslSigner, error) {
	if len(key.Primes) != 2 {
		return nil, errors.New("rsasigner: only two-prime keys")
	}
	key.Precompute()
	if key.Precomputed.Dp == nil || key.Precomputed.Dq == nil || key.Precomputed.Qinv == nil {
		return nil, errors.New("rsasigner: key has no CRT values")
	}
	priv, err := openssl.NewPrivateKeyRSA(
		bbig.Enc(key.N), bbig.Enc(bigE(key)), bbig.Enc(key.D),
		bbig.Enc(key.Primes[0]), bbig.Enc(key.Primes[1]),
		bbig.Enc(key.Precomputed.Dp), bbig.Enc(key.Precomputed.Dq), bbig.Enc(key.Precomputed.Qinv))
	if err != nil {
		return nil, fmt.Errorf("rsasigner: %w", err)
	}
	s := &opensslSigner{key: key, priv: priv}
	digest := sha256.Sum256([]byte("rsasigner self-check"))
	want, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, digest[:])
	if err != nil {
		return nil, fmt.Errorf("rsasigner: %w", err)
	}
	got, err := s.Sign(nil, digest[:], crypto.SHA256)
	if err != nil || !bytes.Equal(got, want) {
		return nil, fmt.Errorf("rsasigner: OpenSSL's signature differs from Go's (%v)", err)
	}
	return s, nil
}

func (s *opensslSigner) Public() crypto.PublicKey { return &s.key.PublicKey }

// Sign signs a SHA-256 digest with PKCS#1 v1.5 in OpenSSL, anything else with the Go key. rand is not used
// by PKCS#1 v1.5, and passed on otherwise.
func (s *opensslSigner) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if !signsHere(digest, opts) {
		return s.key.Sign(rand, digest, opts)
	}
	sig, err := openssl.SignRSAPKCS1v15(s.priv, crypto.SHA256, digest)
	if err != nil {
		return nil, fmt.Errorf("rsasigner: openssl: %w", err)
	}
	return sig, nil
}

func bigE(key *rsa.PrivateKey) *big.Int { return big.NewInt(int64(key.E)) }

// signsHere reports whether a Sign call with these options is PKCS#1 v1.5 over a SHA-256 digest, the one
// kind the OpenSSL signer makes itself.
func signsHere(digest []byte, opts crypto.SignerOpts) bool {
	if _, pss := opts.(*rsa.PSSOptions); pss {
		return false
	}
	return opts != nil && opts.HashFunc() == crypto.SHA256 && len(digest) == crypto.SHA256.Size()
}
