package rsasigner

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/winkk/passport/saml"
)

// mustKey reads the IdP test key of the saml package.
func mustKey(tb testing.TB) *rsa.PrivateKey {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "idp-key.pem"))
	if err != nil {
		tb.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		tb.Fatal("idp-key.pem: no PEM block")
	}
	k, err := x509.ParsePKCS1PrivateKey(blk.Bytes)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// randomDigest returns a SHA-256 digest of fresh random bytes.
func randomDigest(tb testing.TB) []byte {
	tb.Helper()
	var msg [64]byte
	if _, err := rand.Read(msg[:]); err != nil {
		tb.Fatal(err)
	}
	d := sha256.Sum256(msg[:])
	return d[:]
}

// mustSignAsGo signs digest with s and checks that crypto/rsa verifies the
// signature and would have made the very same bytes (PKCS#1 v1.5 is
// deterministic).
func mustSignAsGo(tb testing.TB, s crypto.Signer, key *rsa.PrivateKey, digest []byte) {
	tb.Helper()
	sig, err := s.Sign(rand.Reader, digest, crypto.SHA256)
	if err != nil {
		tb.Fatal(err)
	}
	if err := rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA256, digest, sig); err != nil {
		tb.Fatalf("crypto/rsa does not verify the %s signature: %v", BackendOf(s), err)
	}
	want, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, digest)
	if err != nil {
		tb.Fatal(err)
	}
	if !bytes.Equal(sig, want) {
		tb.Fatalf("the %s signature differs from Go's", BackendOf(s))
	}
}

// TestSignaturesVerify signs many random digests with the test key (2048
// bits) and a fresh 3072-bit key.
func TestSignaturesVerify(t *testing.T) {
	t.Parallel()
	key3072, err := rsa.GenerateKey(rand.Reader, 3072)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		key  *rsa.PrivateKey
		n    int
	}{{"2048", mustKey(t), 300}, {"3072", key3072, 40}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := New(tt.key)
			mustExpectedBackend(t, s)
			for range tt.n {
				mustSignAsGo(t, s, tt.key, randomDigest(t))
			}
		})
	}
}

// TestConcurrentSign shares one signer between goroutines (run with -race;
// OpenSSL's own locking is exercised, not seen, by the race detector).
func TestConcurrentSign(t *testing.T) {
	t.Parallel()
	key := mustKey(t)
	s := New(key)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 25 {
				digest := randomDigest(t)
				sig, err := s.Sign(rand.Reader, digest, crypto.SHA256)
				if err != nil {
					t.Error(err)
					return
				}
				if err := rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA256, digest, sig); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestOtherRequests checks what the OpenSSL signer hands to Go: PSS and
// other hashes are signed correctly, and a digest of the wrong length is
// refused, as crypto/rsa does.
func TestOtherRequests(t *testing.T) {
	t.Parallel()
	key := mustKey(t)
	s := New(key)
	if !key.PublicKey.Equal(s.Public()) {
		t.Fatal("Public is not the key's public key")
	}
	d256 := randomDigest(t)
	pss := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
	sig, err := s.Sign(rand.Reader, d256, pss)
	if err != nil {
		t.Fatal(err)
	}
	if err := rsa.VerifyPSS(&key.PublicKey, crypto.SHA256, d256, sig, pss); err != nil {
		t.Fatalf("PSS: %v", err)
	}
	d384 := sha512.Sum384(d256)
	if sig, err = s.Sign(rand.Reader, d384[:], crypto.SHA384); err != nil {
		t.Fatal(err)
	}
	if err := rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA384, d384[:], sig); err != nil {
		t.Fatalf("SHA-384: %v", err)
	}
	if sig, err := s.Sign(rand.Reader, d384[:], crypto.SHA256); err == nil {
		t.Fatalf("a 48-byte digest signed as SHA-256: %x", sig)
	}
}

// TestMakeResponseSameBytes has a saml IdentityProvider sign through New's
// signer and through the key, with the same clock and randomness: the
// Responses must be the same bytes, for every Signing.
func TestMakeResponseSameBytes(t *testing.T) {
	t.Parallel()
	key := mustKey(t)
	s := New(key)
	mustExpectedBackend(t, s)
	for _, sg := range []saml.Signing{saml.SignBoth, saml.SignAssertion, saml.SignResponse} {
		p := benchParams(sg)
		want, err := benchIdP(t, key, nil).MakeResponse(p)
		if err != nil {
			t.Fatal(err)
		}
		idp := benchIdP(t, nil, s)
		got, err := idp.MakeResponse(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%v: the Response signed by %s differs from Go's", sg, BackendOf(s))
		}
	}
}
