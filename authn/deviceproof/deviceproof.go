// Package deviceproof creates and checks the Device-Proof header: a DPoP-style
// (RFC 9449) compact JWS, signed with a device's P-256 key (ES256, RFC 7518
// §3.4), that binds one device API request — its method, URL and exact body —
// to the device that sent it, at one moment.
//
// The proof is pure crypto: no HTTP framework, no storage. A server calls
// [Parse] to learn which key to look up (the kid of an enrolled device, or the
// JWK embedded by an enrollment request), then [Unverified.Verify] with that
// key and what it actually received, and finally claims the returned jti as
// one-time so a captured proof cannot be replayed.
//
// Errors are the sentinels [ErrMalformed], [ErrBadSignature], [ErrStale] and
// [ErrMismatch]; their messages are generic on purpose and may be shown to a
// client.
package deviceproof

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	jose "github.com/go-jose/go-jose/v4"
	josejson "github.com/go-jose/go-jose/v4/json"
)

// Header is the name of the HTTP request header that carries the proof.
const Header = "Device-Proof"

// Type is the value of the JWS "typ" protected header (RFC 7515 §4.1.9).
const Type = "passport-proof+jwt"

// MaxSkew is the default largest allowed distance between a proof's iat and
// the verifier's clock.
const MaxSkew = 60 * time.Second

// MinIDBytes is the least entropy, in bytes, a jti must carry (128 bits).
const MinIDBytes = 16

// maxTokenLen bounds the header value we are willing to parse.
const maxTokenLen = 8 << 10

// Sentinel errors. Each failure wraps exactly one of them; the messages say
// nothing about which check failed in detail.
var (
	// ErrMalformed: not a compact JWS of the expected shape (alg other than
	// ES256, wrong typ, kid and jwk both or neither, bad claims JSON, ...).
	ErrMalformed = errors.New("deviceproof: malformed proof")
	// ErrBadSignature: the signature does not verify with the given key, or
	// the key is not a P-256 public key.
	ErrBadSignature = errors.New("deviceproof: bad proof signature")
	// ErrStale: iat is further than MaxSkew from the verifier's clock.
	ErrStale = errors.New("deviceproof: proof not fresh")
	// ErrMismatch: method, URL or body hash differ from the request.
	ErrMismatch = errors.New("deviceproof: proof does not match request")
)

// Claims is the JSON payload of a proof.
type Claims struct {
	// Method is the HTTP method, upper case (DPoP "htm").
	Method string `json:"htm"`
	// URL is the absolute request URL without query or fragment (DPoP "htu").
	URL string `json:"htu"`
	// IssuedAt is the signing time in unix seconds.
	IssuedAt int64 `json:"iat"`
	// ID is a random identifier (>= 128 bits, base64url) that the server
	// accepts once.
	ID string `json:"jti"`
	// BodyHash is base64url (no padding) of SHA-256 of the exact body bytes;
	// for an empty body, the hash of "".
	BodyHash string `json:"bsh"`
}

// Signer signs proofs with a device key. It is safe for concurrent use when
// Rand is.
type Signer struct {
	// Key is the device's P-256 private key.
	Key *ecdsa.PrivateKey
	// KeyID is the enrolled device's ID, sent as "kid". Empty during
	// enrollment: the public key is then embedded as "jwk" instead.
	KeyID string
	// Clock gives iat; nil means time.Now.
	Clock func() time.Time
	// Rand feeds the jti; nil means crypto/rand.Reader. (ECDSA signing itself
	// always draws from crypto/rand.)
	Rand io.Reader
}

// Sign returns a compact JWS proof for a request with the given method, URL
// and body. Any query or fragment is cut from url before it becomes htu.
func (s *Signer) Sign(method, url string, body []byte) (string, error) {
	if s == nil || s.Key == nil || s.Key.Curve != elliptic.P256() {
		return "", errors.New("deviceproof: sign: signer needs a P-256 key")
	}
	r := s.Rand
	if r == nil {
		r = rand.Reader
	}
	id := make([]byte, MinIDBytes)
	if _, err := io.ReadFull(r, id); err != nil {
		return "", fmt.Errorf("deviceproof: sign: read jti: %w", err)
	}
	now := time.Now
	if s.Clock != nil {
		now = s.Clock
	}
	payload, err := json.Marshal(Claims{
		Method:   strings.ToUpper(method),
		URL:      stripURL(url),
		IssuedAt: now().Unix(),
		ID:       base64.RawURLEncoding.EncodeToString(id),
		BodyHash: BodyHash(body),
	})
	if err != nil {
		return "", fmt.Errorf("deviceproof: sign: %w", err)
	}
	opts := (&jose.SignerOptions{EmbedJWK: s.KeyID == ""}).WithType(Type)
	key := jose.JSONWebKey{Key: s.Key, KeyID: s.KeyID}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, opts)
	if err != nil {
		return "", fmt.Errorf("deviceproof: sign: %w", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("deviceproof: sign: %w", err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		return "", fmt.Errorf("deviceproof: sign: %w", err)
	}
	return out, nil
}

// Unverified is a parsed proof whose signature has not been checked yet.
// Exactly one of KeyID and JWK is set.
type Unverified struct {
	// KeyID is the "kid" header: the ID of an enrolled device.
	KeyID string
	// JWK is the embedded P-256 public key of an enrollment request; nil
	// unless embedded.
	JWK *ecdsa.PublicKey

	jws *jose.JSONWebSignature
}

// Parse decodes a compact JWS proof without verifying it and returns its kid
// or embedded JWK, so the caller can look up the key to verify with. It
// rejects, with ErrMalformed, anything but a single-signature compact JWS
// whose protected header has alg ES256, typ passport-proof+jwt, no crit/b64,
// and exactly one of kid and a public P-256 jwk. Each part must be the one
// base64url spelling of its bytes, and header and claims valid UTF-8, so a
// signed proof can be written in one way only.
func Parse(token string) (*Unverified, error) {
	if token == "" || len(token) > maxTokenLen || strings.Count(token, ".") != 2 || !canonical(token) {
		return nil, ErrMalformed
	}
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil || len(jws.Signatures) != 1 {
		return nil, ErrMalformed
	}
	sig := jws.Signatures[0]
	h := sig.Protected
	if h.Algorithm != string(jose.ES256) || sig.Header.Algorithm != h.Algorithm {
		return nil, ErrMalformed
	}
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != Type {
		return nil, ErrMalformed
	}
	for _, k := range []jose.HeaderKey{"crit", "b64", "x5u", "jku", "x5t", "x5t#S256"} {
		if _, ok := h.ExtraHeaders[k]; ok {
			return nil, ErrMalformed
		}
	}
	if h.Nonce != "" {
		return nil, ErrMalformed
	}
	u := &Unverified{KeyID: h.KeyID, jws: jws}
	if h.JSONWebKey != nil {
		pub, ok := h.JSONWebKey.Key.(*ecdsa.PublicKey)
		if !ok || pub.Curve != elliptic.P256() || h.JSONWebKey.KeyID != "" {
			return nil, ErrMalformed
		}
		u.JWK = pub
	}
	if (u.KeyID == "") == (u.JWK == nil) {
		return nil, ErrMalformed
	}
	return u, nil
}

// Expect is what the verifier actually received.
type Expect struct {
	// Method is the request's HTTP method (compared upper-cased).
	Method string
	// URL is the absolute request URL as the server's public base URL spells
	// it; query and fragment are ignored.
	URL string
	// Body is the exact request body (nil for none).
	Body []byte
	// Now is the verifier's clock; zero means time.Now().
	Now time.Time
	// MaxSkew bounds |iat - Now|; zero means the package's MaxSkew (60s).
	MaxSkew time.Duration
}

// Verify checks the signature with key (a P-256 public key; for an
// enrollment request, u.JWK), then the claims against e: htm, htu, bsh,
// |iat-now| <= MaxSkew and a jti of at least 128 bits. It returns the claims;
// the caller must then accept claims.ID only once within the skew window.
// Errors: ErrBadSignature, ErrMalformed, ErrStale, ErrMismatch.
func (u *Unverified) Verify(key *ecdsa.PublicKey, e Expect) (*Claims, error) {
	if u == nil || u.jws == nil {
		return nil, ErrMalformed
	}
	if key == nil || key.Curve != elliptic.P256() {
		return nil, ErrBadSignature
	}
	payload, err := u.jws.Verify(key)
	if err != nil {
		return nil, ErrBadSignature
	}
	// go-jose's JSON, as for the header: member names match exactly and
	// none may appear twice (encoding/json would match "HTM" to htm and keep
	// the last of two), so every reader of a proof sees the same claims.
	var c Claims
	if err := josejson.Unmarshal(payload, &c); err != nil {
		return nil, ErrMalformed
	}
	if c.Method == "" || c.URL == "" || c.IssuedAt == 0 || c.BodyHash == "" {
		return nil, ErrMalformed
	}
	if id, err := base64.RawURLEncoding.DecodeString(c.ID); err != nil || len(id) < MinIDBytes {
		return nil, ErrMalformed
	}
	now, skew := e.Now, e.MaxSkew
	if now.IsZero() {
		now = time.Now()
	}
	if skew <= 0 {
		skew = MaxSkew
	}
	// Compared as bounds, not as a difference, which a far iat would overflow.
	if n, s := now.Unix(), int64(skew/time.Second); c.IssuedAt < n-s || c.IssuedAt > n+s {
		return nil, ErrStale
	}
	if c.Method != strings.ToUpper(e.Method) || c.URL != stripURL(e.URL) || c.BodyHash != BodyHash(e.Body) {
		return nil, ErrMismatch
	}
	return &c, nil
}

// BodyHash returns the bsh claim for body: base64url (no padding) of its
// SHA-256.
func BodyHash(body []byte) string {
	sum := sha256.Sum256(body)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// Thumbprint returns the RFC 7638 JWK SHA-256 thumbprint of pub, base64url
// without padding; "" if pub is not a usable EC public key.
func Thumbprint(pub *ecdsa.PublicKey) string {
	if pub == nil {
		return ""
	}
	k := jose.JSONWebKey{Key: pub}
	b, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// MarshalPublicKey encodes a P-256 public key as JWK JSON (RFC 7517), for
// storage.
func MarshalPublicKey(pub *ecdsa.PublicKey) (string, error) {
	if pub == nil || pub.Curve != elliptic.P256() {
		return "", errors.New("deviceproof: marshal key: not a P-256 public key")
	}
	b, err := json.Marshal(jose.JSONWebKey{Key: pub})
	if err != nil {
		return "", fmt.Errorf("deviceproof: marshal key: %w", err)
	}
	return string(b), nil
}

// ParsePublicKey decodes a JWK written by MarshalPublicKey. It accepts only a
// public P-256 key.
func ParsePublicKey(s string) (*ecdsa.PublicKey, error) {
	var k jose.JSONWebKey
	if err := json.Unmarshal([]byte(s), &k); err != nil {
		return nil, fmt.Errorf("deviceproof: parse key: %w", err)
	}
	pub, ok := k.Key.(*ecdsa.PublicKey)
	if !ok || !k.IsPublic() || pub.Curve != elliptic.P256() {
		return nil, errors.New("deviceproof: parse key: not a P-256 public key")
	}
	return pub, nil
}

// canonical reports whether each part of a compact JWS is the one base64url
// spelling of its bytes — unpadded (RFC 7515 §2), pad bits zero (RFC 4648
// §3.5), no line breaks — and its header and claims valid UTF-8. go-jose
// decodes the other spellings to the same bytes and signing input.
func canonical(token string) bool {
	i := 0
	for part := range strings.SplitSeq(token, ".") {
		b, err := base64.RawURLEncoding.Strict().DecodeString(part)
		if err != nil || base64.RawURLEncoding.EncodedLen(len(b)) != len(part) || (i < 2 && !utf8.Valid(b)) {
			return false
		}
		i++
	}
	return true
}

// stripURL cuts the query and fragment off an absolute URL.
func stripURL(u string) string {
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		return u[:i]
	}
	return u
}
