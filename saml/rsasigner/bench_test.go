package rsasigner

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/winkk/passport/saml"
)

// BenchmarkSign is one RSA-2048 PKCS#1 v1.5 SHA-256 signature by each
// backend.
func BenchmarkSign(b *testing.B) {
	key := mustKey(b)
	digest := sha256.Sum256([]byte("passport"))
	for _, bk := range backends(b, key) {
		b.Run(bk.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bk.s.Sign(nil, digest[:], crypto.SHA256); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSignOpenSSLVsGo alternates one OpenSSL signature with one Go
// signature in the same loop, so that both see the same machine load, and
// reports the ratio of their times.
func BenchmarkSignOpenSSLVsGo(b *testing.B) {
	key := mustKey(b)
	s := mustOpenSSL(b, key)
	digest := sha256.Sum256([]byte("passport"))
	var osslNS, goNS int64
	for b.Loop() {
		t0 := time.Now()
		if _, err := s.Sign(nil, digest[:], crypto.SHA256); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, digest[:]); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		osslNS += t1.Sub(t0).Nanoseconds()
		goNS += t2.Sub(t1).Nanoseconds()
	}
	b.ReportMetric(float64(osslNS)/float64(goNS), "openssl/go")
	b.ReportMetric(float64(osslNS)/float64(b.N), "openssl-ns/op")
	b.ReportMetric(float64(goNS)/float64(b.N), "go-ns/op")
}

// BenchmarkSignParallel signs from every CPU at once with one shared signer:
// throughput under load, as a server signs.
func BenchmarkSignParallel(b *testing.B) {
	key := mustKey(b)
	digest := sha256.Sum256([]byte("passport"))
	for _, bk := range backends(b, key) {
		b.Run(bk.name, func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := bk.s.Sign(nil, digest[:], crypto.SHA256); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkMakeResponse makes a saml Response signed by each backend, for
// each Signing, and BenchmarkMakeResponseOpenSSLVsGo their paired ratio.
func BenchmarkMakeResponse(b *testing.B) {
	key := mustKey(b)
	for _, sg := range []saml.Signing{saml.SignBoth, saml.SignAssertion, saml.SignResponse} {
		for _, bk := range backends(b, key) {
			b.Run(sg.String()+"/"+bk.name, func(b *testing.B) {
				idp := benchIdP(b, key, bk.s)
				p := benchParams(sg)
				b.ReportAllocs()
				for b.Loop() {
					if _, err := idp.MakeResponse(p); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkMakeResponseOpenSSLVsGo alternates a Response signed through
// OpenSSL with one signed by Go, both signatures, and reports the ratio.
func BenchmarkMakeResponseOpenSSLVsGo(b *testing.B) {
	key := mustKey(b)
	ossl, gosig := benchIdP(b, key, mustOpenSSL(b, key)), benchIdP(b, key, key)
	p := benchParams(saml.SignBoth)
	var osslNS, goNS int64
	for b.Loop() {
		t0 := time.Now()
		if _, err := ossl.MakeResponse(p); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := gosig.MakeResponse(p); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		osslNS += t1.Sub(t0).Nanoseconds()
		goNS += t2.Sub(t1).Nanoseconds()
	}
	b.ReportMetric(float64(osslNS)/float64(goNS), "openssl/go")
}

type backend struct {
	name string
	s    crypto.Signer
}

// backends returns the Go key and, when this build and machine have it,
// the OpenSSL signer for key.
func backends(b *testing.B, key *rsa.PrivateKey) []backend {
	out := []backend{{BackendGo, key}}
	if s := New(key); BackendOf(s) == BackendOpenSSL {
		out = append(out, backend{BackendOpenSSL, s})
	}
	return out
}

func mustOpenSSL(b *testing.B, key *rsa.PrivateKey) crypto.Signer {
	s := New(key)
	if BackendOf(s) != BackendOpenSSL {
		b.Skipf("no OpenSSL backend here: %s", Backend())
	}
	return s
}

// benchIdP is an IdentityProvider signing with s, with a frozen clock and
// deterministic randomness.
func benchIdP(b testing.TB, key *rsa.PrivateKey, s crypto.Signer) *saml.IdentityProvider {
	pemBytes, err := os.ReadFile(filepath.Join("..", "testdata", "idp-cert.pem"))
	if err != nil {
		b.Fatal(err)
	}
	blk, _ := pem.Decode(pemBytes)
	if blk == nil {
		b.Fatal("idp-cert.pem: no PEM block")
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC)
	return &saml.IdentityProvider{
		EntityID:    "Winkk Passport IdP",
		Key:         key,
		Signer:      s,
		Certificate: cert,
		Clock:       func() time.Time { return now },
		Rand:        rand.NewChaCha8([32]byte([]byte("passport rsasigner bench random!"))),
	}
}

func benchParams(s saml.Signing) saml.ResponseParams {
	return saml.ResponseParams{
		InResponseTo: "_req-4f2a9c",
		Destination:  "https://auth.atlassian.com/login/callback?connection=saml-0123abcd",
		Audience:     "https://auth.atlassian.com/saml/0123abcd/",
		NameID:       "jane.doe@example.com",
		SessionIndex: "_sess-1",
		Attributes: []saml.Attribute{
			{Name: "email", Values: []string{"jane.doe@example.com"}},
			{Name: "groups", Values: []string{"jira-users", "confluence-users"}},
		},
		Signing: s,
	}
}
