package authn

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/winkk/passport/store"
)

// SigningKey is the IdP's RSA key and self-signed certificate.
type SigningKey struct {
	Key         *rsa.PrivateKey
	Certificate *x509.Certificate
	// CertificatePEM is the certificate as published at /saml/certificate.pem.
	CertificatePEM []byte
}

type storedKey struct {
	KeyPEM  string `json:"key_pem"`
	CertPEM string `json:"cert_pem"`
}

const signingKeyName = "idp:signing-key"

// CertificateLifetime is the validity of a generated signing certificate.
const CertificateLifetime = 5 * 365 * 24 * time.Hour

// SigningKey returns the IdP's signing key from the store, creating an RSA-2048 key and a self-signed
// certificate on first start. Concurrent first starts (several replicas) agree on one key: the first to store
// it wins and the others load it.
func (s *Service) SigningKey(ctx context.Context, entityID string) (*SigningKey, error) {
	raw, err := s.st.GetValue(ctx, signingKeyName)
	if errors.Is(err, store.ErrNotFound) {
		k, err := GenerateSigningKey(entityID, s.now())
		if err != nil {
			return nil, err
		}
		blob, err := json.Marshal(storedKey{KeyPEM: string(k.keyPEM()), CertPEM: string(k.CertificatePEM)})
		if err != nil {
			return nil, internal("encode signing key", err)
		}
		if _, err := s.st.SetIfAbsent(ctx, signingKeyName, string(blob), 0); err != nil {
			return nil, internal("store signing key", err)
		}
		raw, err = s.st.GetValue(ctx, signingKeyName)
		if err != nil {
			return nil, internal("load signing key", err)
		}
	} else if err != nil {
		return nil, internal("load signing key", err)
	}
	var sk storedKey
	if err := json.Unmarshal([]byte(raw), &sk); err != nil {
		return nil, internal("decode signing key", err)
	}
	return ParseSigningKey([]byte(sk.CertPEM), []byte(sk.KeyPEM))
}

// GenerateSigningKey makes an RSA-2048 key and a self-signed certificate for entityID valid from now.
func GenerateSigningKey(entityID string, now time.Time) (*SigningKey, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("authn: generate signing key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("authn: certificate serial: %w", err)
	}
	cn := entityID
	if len(cn) > 64 {
		cn = cn[:64]
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"Passport IdP"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(CertificateLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("authn: self-sign certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("authn: parse certificate: %w", err)
	}
	return &SigningKey{Key: key, Certificate: cert, CertificatePEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

func (k *SigningKey) keyPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k.Key)})
}

// ParseSigningKey loads a PEM certificate and its PEM RSA private key (PKCS#1 or PKCS#8), checking they match.
func ParseSigningKey(certPEM, keyPEM []byte) (*SigningKey, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("authn: signing key: %w", err)
	}
	key, ok := pair.PrivateKey.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("authn: signing key: not an RSA key")
	}
	if key.N.BitLen() < 2048 {
		return nil, errors.New("authn: signing key: RSA key shorter than 2048 bits")
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("authn: signing certificate: %w", err)
	}
	return &SigningKey{Key: key, Certificate: cert, CertificatePEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})}, nil
}

// Secret returns the 32-byte secret called name, creating it on first use; every replica gets the same one.
// It keys derived identifiers (persistent NameIDs) that must stay stable and reveal nothing.
func (s *Service) Secret(ctx context.Context, name string) ([]byte, error) {
	key := "idp:secret:" + name
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, fmt.Errorf("authn: secret: %w", err)
	}
	if _, err := s.st.SetIfAbsent(ctx, key, base64.RawStdEncoding.EncodeToString(fresh), 0); err != nil {
		return nil, internal("store secret", err)
	}
	v, err := s.st.GetValue(ctx, key)
	if err != nil {
		return nil, internal("load secret", err)
	}
	return base64.RawStdEncoding.DecodeString(v)
}
