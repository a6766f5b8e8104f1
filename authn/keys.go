package authn

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"time"

	"github.com/winkk/passport/store"
)

// SigningKey is an RSA key of the IdP and its self-signed certificate.
type SigningKey struct {
	Key         *rsa.PrivateKey
	Certificate *x509.Certificate
	// CertificatePEM is the certificate as published at /saml/certificate.pem.
	CertificatePEM []byte
}

// KeyRing is the IdP's signing keys: Current signs; Next, when staged, is already published in metadata so
// SPs can trust it before it signs; Previous certificates stay published until their grace period ends.
type KeyRing struct {
	Current  *SigningKey
	Next     *SigningKey
	Previous []RetiredCertificate
}

// RetiredCertificate is a former signing certificate, still published until Until.
type RetiredCertificate struct {
	Certificate *x509.Certificate
	Until       time.Time
}

// Published returns the certificates metadata lists besides the current one: the staged next certificate and
// the retired ones still in their grace period at now.
func (r *KeyRing) Published(now time.Time) []*x509.Certificate {
	var out []*x509.Certificate
	if r.Next != nil {
		out = append(out, r.Next.Certificate)
	}
	for _, p := range r.Previous {
		if now.Before(p.Until) {
			out = append(out, p.Certificate)
		}
	}
	return out
}

// storedRing is the key ring as kept in the store: private keys are PEM, optionally sealed with the
// key-encryption key (AES-256-GCM).
type storedRing struct {
	Current  storedKey      `json:"current"`
	Next     *storedKey     `json:"next,omitempty"`
	Previous []storedRetire `json:"previous,omitempty"`
}

type storedKey struct {
	KeyPEM  string `json:"key_pem,omitempty"`  // clear PEM (no key-encryption key configured)
	KeySeal string `json:"key_seal,omitempty"` // base64 of nonce||AES-256-GCM(PEM)
	CertPEM string `json:"cert_pem"`
}

type storedRetire struct {
	CertPEM string    `json:"cert_pem"`
	Until   time.Time `json:"until"`
}

const keyRingID = "keyring"

// CertificateLifetime is the validity of a generated signing certificate.
const CertificateLifetime = 5 * 365 * 24 * time.Hour

// seal encrypts a private key PEM with the key-encryption key, when one is configured.
func (s *core) seal(k *SigningKey) (storedKey, error) {
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k.Key)})
	sk := storedKey{CertPEM: string(k.CertificatePEM)}
	if len(s.cfg.KeyEncryptionKey) == 0 {
		sk.KeyPEM = string(keyPEM)
		return sk, nil
	}
	sealed, err := s.sealBytes(keyPEM, []byte(sk.CertPEM))
	if err != nil {
		return sk, fmt.Errorf("authn: seal key: %w", err)
	}
	sk.KeySeal = sealed
	return sk, nil
}

// sealBytes encrypts plain with the key-encryption key (AES-256-GCM, a fresh nonce from the random source),
// bound to aad, and returns base64 of nonce||ciphertext. The caller checks that a key is configured.
func (s *core) sealBytes(plain, aad []byte) (string, error) {
	aead, err := s.kek()
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := io.ReadFull(s.cfg.Rand, nonce); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(aead.Seal(nonce, nonce, plain, aad)), nil
}

// errSealCorrupt and errSealKey: what openSealed refuses.
var (
	errSealCorrupt = errors.New("authn: sealed data is corrupt")
	errSealKey     = errors.New("authn: sealed data does not open with the configured key-encryption key")
)

// openSealed reverses sealBytes (same aad).
func (s *core) openSealed(sealed string, aad []byte) ([]byte, error) {
	aead, err := s.kek()
	if err != nil {
		return nil, err
	}
	raw, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil || len(raw) < aead.NonceSize() {
		return nil, errSealCorrupt
	}
	plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], aad)
	if err != nil {
		return nil, errSealKey
	}
	return plain, nil
}

func (s *core) kek() (cipher.AEAD, error) {
	if len(s.cfg.KeyEncryptionKey) != 32 {
		return nil, errors.New("authn: the key-encryption key must be 32 bytes")
	}
	block, err := aes.NewCipher(s.cfg.KeyEncryptionKey)
	if err != nil {
		return nil, fmt.Errorf("authn: key-encryption key: %w", err)
	}
	return cipher.NewGCM(block)
}

func (s *core) unseal(sk storedKey) (*SigningKey, error) {
	keyPEM := []byte(sk.KeyPEM)
	if sk.KeySeal != "" {
		if len(s.cfg.KeyEncryptionKey) == 0 {
			return nil, errors.New("authn: the signing key is encrypted at rest: configure the key-encryption key")
		}
		var err error
		keyPEM, err = s.openSealed(sk.KeySeal, []byte(sk.CertPEM))
		switch {
		case errors.Is(err, errSealCorrupt):
			return nil, errors.New("authn: the sealed signing key is corrupt")
		case errors.Is(err, errSealKey):
			return nil, errors.New("authn: the signing key does not open with the configured key-encryption key")
		case err != nil:
			return nil, err
		}
	} else if len(s.cfg.KeyEncryptionKey) > 0 {
		s.log.Warn("the signing key is stored in clear although a key-encryption key is configured; stage and activate a new key to seal it")
	}
	return ParseSigningKey([]byte(sk.CertPEM), keyPEM)
}

func (s *core) loadRing(sr storedRing) (*KeyRing, error) {
	cur, err := s.unseal(sr.Current)
	if err != nil {
		return nil, err
	}
	r := &KeyRing{Current: cur}
	if sr.Next != nil {
		if r.Next, err = s.unseal(*sr.Next); err != nil {
			return nil, err
		}
	}
	for _, p := range sr.Previous {
		c, err := ParseCertificatePEM(p.CertPEM)
		if err != nil {
			return nil, fmt.Errorf("authn: retired certificate: %w", err)
		}
		r.Previous = append(r.Previous, RetiredCertificate{Certificate: c, Until: p.Until})
	}
	return r, nil
}

// Ring returns the IdP's keys, creating an RSA-2048 key and self-signed certificate on first start.
// Concurrent first starts (several replicas) agree on one key: the first to store it wins.
func (s *Keys) Ring(ctx context.Context, entityID string) (*KeyRing, error) {
	if r, err := s.svc.Keys.Load(ctx); !errors.Is(err, ErrNoKeyRing) {
		return r, err
	}
	sk, err := s.newStoredKey(entityID)
	if err != nil {
		return nil, err
	}
	if err := s.keys.Create(ctx, keyRingID, storedRing{Current: sk}, 0); err != nil && !errors.Is(err, store.ErrAlreadyExists) {
		return nil, internal("store signing key", err)
	}
	return s.svc.Keys.Load(ctx) // ours, or the one a concurrent first start stored first
}

// newStoredKey generates a signing key for entityID, sealed for the store when a key-encryption key is set.
func (s *core) newStoredKey(entityID string) (storedKey, error) {
	k, err := GenerateSigningKey(entityID, s.now())
	if err != nil {
		return storedKey{}, err
	}
	return s.seal(k)
}

// Load returns the IdP's keys as stored, without ever creating them (ErrNoKeyRing when missing).
func (s *Keys) Load(ctx context.Context) (*KeyRing, error) {
	sr, err := s.keys.Get(ctx, keyRingID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNoKeyRing
	}
	if err != nil {
		return nil, internal("load signing key", err)
	}
	return s.loadRing(sr)
}

// Stage generates the next signing key (if none is staged) so metadata publishes it beside the
// current one. SPs that refresh metadata then trust it before it ever signs. Every replica is told.
func (s *Keys) Stage(ctx context.Context, entityID string) (*KeyRing, error) {
	if _, err := s.svc.Keys.Load(ctx); err != nil {
		return nil, err
	}
	sk, err := s.newStoredKey(entityID)
	if err != nil {
		return nil, err
	}
	sr, err := s.keys.Update(ctx, keyRingID, func(cur storedRing) (storedRing, error) {
		if cur.Next == nil {
			cur.Next = &sk
		}
		return cur, nil
	})
	if err != nil {
		return nil, internal("stage key", err)
	}
	if err := s.st.Publish(ctx, KeysChannel, "staged"); err != nil {
		s.log.Warn("announce key change", "err", err)
	}
	r, err := s.loadRing(sr)
	if err != nil {
		return nil, err
	}
	s.log.Info("next signing key staged", "not_after", r.Next.Certificate.NotAfter)
	return r, nil
}

// Activate makes the staged key the signing key. The old certificate stays published for grace.
func (s *Keys) Activate(ctx context.Context, grace time.Duration) (*KeyRing, error) {
	now := s.now()
	sr, err := s.keys.Update(ctx, keyRingID, func(cur storedRing) (storedRing, error) {
		if cur.Next == nil {
			return cur, ErrNoNextKey
		}
		// Never activate a key this server cannot open (a missing or wrong key-encryption key): the change
		// would land and then fail, with every replica signing with a key the operator cannot manage.
		if _, err := s.unseal(*cur.Next); err != nil {
			return cur, &Error{Code: ErrKeyUnopenable.Code, Message: ErrKeyUnopenable.Message, Err: err}
		}
		var keep []storedRetire
		for _, p := range cur.Previous {
			if now.Before(p.Until) {
				keep = append(keep, p)
			}
		}
		cur.Previous = append(keep, storedRetire{CertPEM: cur.Current.CertPEM, Until: now.Add(grace)})
		cur.Current, cur.Next = *cur.Next, nil
		return cur, nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNoKeyRing
	}
	if errors.Is(err, ErrKeyUnopenable) || errors.Is(err, ErrNoNextKey) {
		return nil, err
	}
	if err != nil {
		return nil, internal("activate key", err)
	}
	if err := s.st.Publish(ctx, KeysChannel, "activated"); err != nil {
		s.log.Warn("announce key change", "err", err)
	}
	s.log.Info("next signing key activated", "old_published_until", now.Add(grace))
	return s.loadRing(sr)
}

// staticKeyMark is the store value that says a running server signs with a key from files; it lives
// staticKeyMarkTTL and the server renews it every minute.
const (
	staticKeyMark    = "idp:static-key"
	staticKeyMarkTTL = 3 * time.Minute
)

// NoteStatic records, for the keys command, that a server on this store signs with a key from files (so
// the keys in the store are not the ones in use). Call it at start and then every minute.
func (s *Keys) NoteStatic(ctx context.Context) error {
	if err := s.st.SetValue(ctx, staticKeyMark, s.now().UTC().Format(time.RFC3339), staticKeyMarkTTL); err != nil {
		return internal("note static key", err)
	}
	return nil
}

// StaticInUse reports whether a server noted in the last few minutes that it signs with a key from files.
func (s *Keys) StaticInUse(ctx context.Context) (bool, error) {
	_, err := s.st.GetValue(ctx, staticKeyMark)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, internal("read static key note", err)
	}
	return true, nil
}

// KeysChannel announces key changes so every replica reloads its key ring at once.
const KeysChannel = "idp-keys"

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
func (s *Keys) Secret(ctx context.Context, name string) ([]byte, error) {
	key := secretKey(name)
	fresh := make([]byte, 32)
	if _, err := io.ReadFull(s.cfg.Rand, fresh); err != nil {
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

// DefaultRolloverGrace is how long a retired certificate stays published after a rollover.
const DefaultRolloverGrace = 30 * 24 * time.Hour

// CertificatePEM encodes a certificate as PEM.
func CertificatePEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// StaticKeyRing is a key ring of one key loaded from files: it never rolls over through the store.
func StaticKeyRing(k *SigningKey) *KeyRing { return &KeyRing{Current: k} }

// CertificateWarningWindow is how long before expiry a signing certificate is warned about.
const CertificateWarningWindow = 30 * 24 * time.Hour

// CertificateWarning says when cert is near or past expiry at now, or "" when it is fine.
func CertificateWarning(cert *x509.Certificate, now time.Time) string {
	left := cert.NotAfter.Sub(now)
	switch {
	case left <= 0:
		return "the signing certificate has expired: SPs refuse its signatures; stage and activate a new key now"
	case left < CertificateWarningWindow:
		return fmt.Sprintf("the signing certificate expires in %s (%s): stage a new key, let SPs load the metadata, then activate it", left.Round(time.Hour), cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return ""
}

// KeyChange tells what a change of the signing keys (Change.Table TableKeys) was: "created" (the first key,
// at first start), "staged" (a next key) or "activated" (the next key now signs), with the SHA-256 of the
// certificate concerned (hex). It never exposes the keys themselves. ok is false for another change.
func KeyChange(c Change) (kind, certSHA256 string, ok bool) {
	after, isRing := c.After.(storedRing)
	if c.Table != TableKeys || !isRing {
		return "", "", false
	}
	before, hadRing := c.Before.(storedRing)
	switch {
	case c.Op == OpCreate || !hadRing:
		return "created", certFingerprint(after.Current.CertPEM), true
	case before.Current.CertPEM != after.Current.CertPEM:
		return "activated", certFingerprint(after.Current.CertPEM), true
	case after.Next != nil && (before.Next == nil || before.Next.CertPEM != after.Next.CertPEM):
		return "staged", certFingerprint(after.Next.CertPEM), true
	}
	return "", "", false
}

// certFingerprint is the hex SHA-256 of a PEM certificate's DER ("" when it does not parse).
func certFingerprint(certPEM string) string {
	c, err := ParseCertificatePEM(certPEM)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}
