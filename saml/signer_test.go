package saml

import (
	"crypto"
	"crypto/x509"
	"io"
	"strings"
	"sync/atomic"
	"testing"
)

// countingSigner is a crypto.Signer that counts its signatures.
type countingSigner struct {
	crypto.Signer
	n atomic.Int32
}

func (c *countingSigner) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	c.n.Add(1)
	return c.Signer.Sign(rand, digest, opts)
}

// TestSigner checks that an IdentityProvider with a Signer and no Key signs
// through it, once per signature each Signing asks for, into the very bytes
// Key makes; and that a Signer for another key, or not RSA, is refused.
func TestSigner(t *testing.T) {
	t.Parallel()
	for _, tt := range signings {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := testResponseParams()
			p.Signing = tt.signing
			want, err := mustIdP(t).MakeResponse(p)
			if err != nil {
				t.Fatal(err)
			}
			idp := mustIdP(t)
			s := &countingSigner{Signer: idp.Key}
			idp.Key, idp.Signer = nil, s
			got, err := idp.MakeResponse(p)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Fatal("the Signer's Response differs from the Key's")
			}
			wantN := int32(1)
			if tt.signing == SignBoth {
				wantN = 2
			}
			if n := s.n.Load(); n != wantN {
				t.Fatalf("%d signatures, want %d", n, wantN)
			}
			msg, err := idp.MakeLogoutResponse(LogoutResponseParams{Destination: testSPSLOURL})
			if err != nil {
				t.Fatal(err)
			}
			u, err := idp.RedirectURL(testSPSLOURL, "SAMLResponse", msg, "")
			if err != nil {
				t.Fatal(err)
			}
			m := mustDecodeRedirect(t, u[strings.IndexByte(u, '?')+1:], "SAMLResponse")
			if err := VerifyRedirectSignature(m, []*x509.Certificate{idp.Certificate}, false); err != nil {
				t.Fatal(err)
			}
		})
	}
	ec, _ := mustECDSACert(t)
	for name, s := range map[string]crypto.Signer{
		"another key": mustKey(t, "idp-next-key.pem"),
		"not RSA":     ec,
	} {
		idp := mustIdP(t)
		idp.Key, idp.Signer = nil, s
		if out, err := idp.MakeResponse(testResponseParams()); err == nil || !strings.Contains(err.Error(), "does not match") {
			t.Errorf("%s: %d bytes, %v; want a mismatch", name, len(out), err)
		}
	}
}
