package deviceproof_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/winkk/passport/authn/deviceproof"
)

var update = flag.Bool("update", false, "rewrite golden files")

const (
	testURL  = "https://idp.example.com/api/v1/device/challenges/approve"
	testKID  = "dev_7Qm3xKp2"
	testBody = `{"number":42}`
)

var testNow = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func mustKey(tb testing.TB, c elliptic.Curve) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func mustExampleKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	data, err := os.ReadFile("testdata/example-key.pem")
	if err != nil {
		tb.Fatal(err)
	}
	blk, _ := pem.Decode(data)
	if blk == nil {
		tb.Fatal("example-key.pem: no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		tb.Fatal(err)
	}
	return k.(*ecdsa.PrivateKey)
}

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

// counterRand yields 0x00, 0x01, 0x02, ... so jti values are predictable.
type counterRand struct{ n byte }

func (r *counterRand) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r.n
		r.n++
	}
	return len(p), nil
}

func mustSign(tb testing.TB, s *deviceproof.Signer, method, url string, body []byte) string {
	tb.Helper()
	tok, err := s.Sign(method, url, body)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

func expect(body string) deviceproof.Expect {
	return deviceproof.Expect{Method: "POST", URL: testURL, Body: []byte(body), Now: testNow}
}

func verify(token string, key *ecdsa.PublicKey, e deviceproof.Expect) (*deviceproof.Claims, error) {
	u, err := deviceproof.Parse(token)
	if err != nil {
		return nil, err
	}
	if key == nil {
		key = u.JWK
	}
	return u.Verify(key, e)
}

// craft builds a compact JWS by hand: for attacks go-jose will not produce.
func craft(tb testing.TB, header map[string]any, claims any, sign func(input []byte) []byte) string {
	tb.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		tb.Fatal(err)
	}
	var p []byte
	if raw, ok := claims.([]byte); ok {
		p = raw
	} else if p, err = json.Marshal(claims); err != nil {
		tb.Fatal(err)
	}
	input := b64(h) + "." + b64(p)
	return input + "." + b64(sign([]byte(input)))
}

// rawHeader builds a compact JWS from header bytes as they are, which craft's JSON encoding would repair.
func rawHeader(header, payload string, sign func(input []byte) []byte) string {
	input := b64([]byte(header)) + "." + payload
	return input + "." + b64(sign([]byte(input)))
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func es256(tb testing.TB, k *ecdsa.PrivateKey) func([]byte) []byte {
	return func(input []byte) []byte {
		sum := sha256.Sum256(input)
		return rawECDSA(tb, k, sum[:], 32)
	}
}

func rawECDSA(tb testing.TB, k *ecdsa.PrivateKey, digest []byte, size int) []byte {
	tb.Helper()
	r, s, err := ecdsa.Sign(rand.Reader, k, digest)
	if err != nil {
		tb.Fatal(err)
	}
	out := make([]byte, 2*size)
	r.FillBytes(out[:size])
	s.FillBytes(out[size:])
	return out
}

func jwkOf(tb testing.TB, pub any) map[string]any {
	tb.Helper()
	b, err := json.Marshal(jose.JSONWebKey{Key: pub})
	if err != nil {
		tb.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		tb.Fatal(err)
	}
	return m
}

func goodClaims(body string) deviceproof.Claims {
	return deviceproof.Claims{
		Method: "POST", URL: testURL, IssuedAt: testNow.Unix(),
		ID: "AAECAwQFBgcICQoLDA0ODw", BodyHash: deviceproof.BodyHash([]byte(body)),
	}
}

func TestRoundTrip(t *testing.T) {
	key := mustKey(t, elliptic.P256())
	tests := []struct {
		name   string
		kid    string
		method string
		url    string
		body   []byte
		e      deviceproof.Expect
	}{
		{name: "kid with body", kid: testKID, method: "POST", url: testURL, body: []byte(testBody), e: expect(testBody)},
		{name: "jwk enrollment", kid: "", method: "POST", url: testURL, body: []byte(testBody), e: expect(testBody)},
		{name: "empty body is hash of empty string", kid: testKID, method: "GET", url: testURL,
			e: deviceproof.Expect{Method: "GET", URL: testURL, Now: testNow}},
		{name: "lower-case method", kid: testKID, method: "delete", url: testURL,
			e: deviceproof.Expect{Method: "DELETE", URL: testURL, Body: []byte{}, Now: testNow}},
		{name: "query and fragment ignored", kid: testKID, method: "GET", url: testURL + "?timeout=25s#x",
			e: deviceproof.Expect{Method: "get", URL: testURL + "?timeout=30s", Now: testNow}},
		{name: "iat 60s in the past", kid: testKID, method: "POST", url: testURL, body: []byte(testBody),
			e: deviceproof.Expect{Method: "POST", URL: testURL, Body: []byte(testBody), Now: testNow.Add(60 * time.Second)}},
		{name: "iat 60s in the future", kid: testKID, method: "POST", url: testURL, body: []byte(testBody),
			e: deviceproof.Expect{Method: "POST", URL: testURL, Body: []byte(testBody), Now: testNow.Add(-60 * time.Second)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &deviceproof.Signer{Key: key, KeyID: tc.kid, Clock: fixedClock(testNow)}
			tok := mustSign(t, s, tc.method, tc.url, tc.body)
			u, err := deviceproof.Parse(tok)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if u.KeyID != tc.kid {
				t.Errorf("KeyID = %q, want %q", u.KeyID, tc.kid)
			}
			if (tc.kid == "") != (u.JWK != nil) {
				t.Fatalf("JWK = %v, want embedded only when kid is empty", u.JWK)
			}
			if u.JWK != nil && !u.JWK.Equal(&key.PublicKey) {
				t.Errorf("embedded JWK is not the signer's key")
			}
			c, err := u.Verify(&key.PublicKey, tc.e)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if c.IssuedAt != testNow.Unix() || c.Method != strings.ToUpper(tc.method) ||
				c.URL != testURL || c.BodyHash != deviceproof.BodyHash(tc.body) {
				t.Errorf("claims = %+v", c)
			}
			if id, err := base64.RawURLEncoding.DecodeString(c.ID); err != nil || len(id) < 16 {
				t.Errorf("jti %q: want >= 128 bits base64url", c.ID)
			}
		})
	}
}

func TestBodyHashOfEmpty(t *testing.T) {
	// SHA-256("") = e3b0c442...; base64url of it, unpadded.
	const want = "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"
	for _, b := range [][]byte{nil, {}} {
		if got := deviceproof.BodyHash(b); got != want {
			t.Errorf("BodyHash(%v) = %q, want %q", b, got, want)
		}
	}
}

func TestJTIUnique(t *testing.T) {
	s := &deviceproof.Signer{Key: mustKey(t, elliptic.P256()), KeyID: testKID}
	seen := map[string]bool{}
	for range 100 {
		c, err := verify(mustSign(t, s, "GET", testURL, nil), &s.Key.PublicKey,
			deviceproof.Expect{Method: "GET", URL: testURL})
		if err != nil {
			t.Fatal(err)
		}
		if seen[c.ID] {
			t.Fatalf("jti %q repeated", c.ID)
		}
		seen[c.ID] = true
	}
}

func TestRejects(t *testing.T) {
	key := mustKey(t, elliptic.P256())
	other := mustKey(t, elliptic.P256())
	p384 := mustKey(t, elliptic.P384())
	signer := &deviceproof.Signer{Key: key, KeyID: testKID, Clock: fixedClock(testNow)}
	good := mustSign(t, signer, "POST", testURL, []byte(testBody))
	parts := strings.Split(good, ".")
	pubJSON, err := json.Marshal(jose.JSONWebKey{Key: &key.PublicKey})
	if err != nil {
		t.Fatal(err)
	}
	kidHeader := map[string]any{"alg": "ES256", "typ": deviceproof.Type, "kid": testKID}
	withHeader := func(kv ...any) map[string]any {
		h := map[string]any{}
		for k, v := range kidHeader {
			h[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(h, kv[i].(string))
			} else {
				h[kv[i].(string)] = kv[i+1]
			}
		}
		return h
	}
	claimsWith := func(f func(*deviceproof.Claims)) deviceproof.Claims {
		c := goodClaims(testBody)
		f(&c)
		return c
	}
	hs256, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: pubJSON},
		(&jose.SignerOptions{}).WithType(deviceproof.Type).WithHeader("kid", testKID))
	if err != nil {
		t.Fatal(err)
	}
	hsJWS, err := hs256.Sign(mustJSON(t, goodClaims(testBody)))
	if err != nil {
		t.Fatal(err)
	}
	hsTok, err := hsJWS.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	es384 := func(input []byte) []byte {
		sum := sha512.Sum384(input)
		return rawECDSA(t, p384, sum[:], 48)
	}
	hmacSHA256 := func(input []byte) []byte {
		m := hmac.New(sha256.New, pubJSON)
		m.Write(input)
		return m.Sum(nil)
	}

	tests := []struct {
		name  string
		token string
		key   *ecdsa.PublicKey // nil: the embedded JWK
		e     deviceproof.Expect
		want  error
	}{
		{name: "empty token", token: "", key: &key.PublicKey, e: expect(testBody), want: deviceproof.ErrMalformed},
		{name: "garbage", token: "not.a.jws", key: &key.PublicKey, e: expect(testBody), want: deviceproof.ErrMalformed},
		{name: "two segments", token: parts[0] + "." + parts[1], key: &key.PublicKey, e: expect(testBody), want: deviceproof.ErrMalformed},
		{name: "JSON serialization", token: `{"payload":"` + parts[1] + `","protected":"` + parts[0] + `","signature":"` + parts[2] + `"}`,
			key: &key.PublicKey, e: expect(testBody), want: deviceproof.ErrMalformed},
		{name: "oversized", token: strings.Repeat("A", 9000) + "..", key: &key.PublicKey, e: expect(testBody), want: deviceproof.ErrMalformed},
		{name: "method tampered", token: good, key: &key.PublicKey,
			e: deviceproof.Expect{Method: "PUT", URL: testURL, Body: []byte(testBody), Now: testNow}, want: deviceproof.ErrMismatch},
		{name: "url tampered", token: good, key: &key.PublicKey,
			e: deviceproof.Expect{Method: "POST", URL: "https://idp.example.com/api/v1/device/challenges/xyz/answer", Body: []byte(testBody), Now: testNow}, want: deviceproof.ErrMismatch},
		{name: "url other host", token: good, key: &key.PublicKey,
			e: deviceproof.Expect{Method: "POST", URL: "https://evil.example.com/api/v1/device/challenges/abc/answer", Body: []byte(testBody), Now: testNow}, want: deviceproof.ErrMismatch},
		{name: "body tampered", token: good, key: &key.PublicKey,
			e: expect(`{"decision":"approve","number":43,"report":false}`), want: deviceproof.ErrMismatch},
		{name: "body re-serialized", token: good, key: &key.PublicKey,
			e: expect(`{"decision": "approve","number":42,"report":false}`), want: deviceproof.ErrMismatch},
		{name: "iat too old", token: good, key: &key.PublicKey,
			e: deviceproof.Expect{Method: "POST", URL: testURL, Body: []byte(testBody), Now: testNow.Add(61 * time.Second)}, want: deviceproof.ErrStale},
		{name: "iat in the future", token: good, key: &key.PublicKey,
			e: deviceproof.Expect{Method: "POST", URL: testURL, Body: []byte(testBody), Now: testNow.Add(-61 * time.Second)}, want: deviceproof.ErrStale},
		{name: "custom MaxSkew", token: good, key: &key.PublicKey,
			e: deviceproof.Expect{Method: "POST", URL: testURL, Body: []byte(testBody), Now: testNow.Add(11 * time.Second), MaxSkew: 10 * time.Second}, want: deviceproof.ErrStale},
		{name: "wrong key", token: good, key: &other.PublicKey, e: expect(testBody), want: deviceproof.ErrBadSignature},
		{name: "nil key", token: good, key: nil, e: expect(testBody), want: deviceproof.ErrBadSignature},
		{name: "P-384 verification key", token: good, key: &p384.PublicKey, e: expect(testBody), want: deviceproof.ErrBadSignature},
		{name: "signature bit flipped", token: parts[0] + "." + parts[1] + "." + flip(parts[2]), key: &key.PublicKey, e: expect(testBody), want: deviceproof.ErrBadSignature},
		{name: "payload swapped", token: parts[0] + "." + b64(mustJSON(t, claimsWith(func(c *deviceproof.Claims) { c.URL = testURL + "x" }))) + "." + parts[2],
			key: &key.PublicKey, e: expect(testBody), want: deviceproof.ErrBadSignature},
		{name: "alg none", token: b64(mustJSON(t, withHeader("alg", "none"))) + "." + parts[1] + ".",
			key: &key.PublicKey, e: expect(testBody), want: deviceproof.ErrMalformed},
		{name: "alg HS256 with the public key as secret (go-jose)", token: hsTok, key: &key.PublicKey, e: expect(testBody), want: deviceproof.ErrMalformed},
		{name: "alg HS256 with the public key as secret (hand-made)", token: craft(t, withHeader("alg", "HS256"), goodClaims(testBody), hmacSHA256),
			key: &key.PublicKey, e: expect(testBody), want: deviceproof.ErrMalformed},
		{name: "alg RS256", token: craft(t, withHeader("alg", "RS256"), goodClaims(testBody), es256(t, key)),
			key: &key.PublicKey, e: expect(testBody), want: deviceproof.ErrMalformed},
		{name: "alg ES384 with P-384 key", token: craft(t, withHeader("alg", "ES384"), goodClaims(testBody), es384),
			key: &p384.PublicKey, e: expect(testBody), want: deviceproof.ErrMalformed},
		{name: "alg ES256 with embedded P-384 jwk", token: craft(t, withHeader("kid", nil, "jwk", jwkOf(t, &p384.PublicKey)), goodClaims(testBody), es384),
			key: nil, e: expect(testBody), want: deviceproof.ErrMalformed},
		{name: "kid and jwk both", token: craft(t, withHeader("jwk", jwkOf(t, &key.PublicKey)), goodClaims(testBody), es256(t, key)),
			key: &key.PublicKey, e: expect(testBody), want: deviceproof.ErrMalformed},
		{name: "neither kid nor jwk", token: craft(t, withHeader("kid", nil), goodClaims(testBody), es256(t, key)),
			key: &key.PublicKey, e: expect(testBody), want: deviceproof.ErrMalformed},
		{name: "jwk carrying the private key", token: craft(t, withHeader("kid", nil, "jwk", jwkOf(t, key)), goodClaims(testBody), es256(t, key)),
			key: &key.PublicKey, e: expect(testBody), want: deviceproof.ErrMalformed},
		{name: "jwk signed by another key", token: craft(t, withHeader("kid", nil, "jwk", jwkOf(t, &key.PublicKey)), goodClaims(testBody), es256(t, other)),
			key: nil, e: expect(testBody), want: deviceproof.ErrBadSignature},
		{name: "typ missing", token: craft(t, withHeader("typ", nil), goodClaims(testBody), es256(t, key)),
			key: &key.PublicKey, e: expect(testBody), want: deviceproof.ErrMalformed},
		{name: "typ JWT", token: craft(t, withHeader("typ", "JWT"), goodClaims(testBody), es256(t, key)),
			key: &key.PublicKey, e: expect(testBody), want: deviceproof.ErrMalformed},
		{name: "typ dpop+jwt", token: craft(t, withHeader("typ", "dpop+jwt"), goodClaims(testBody), es256(t, key)),
			key: &key.PublicKey, e: expect(testBody), want: deviceproof.ErrMalformed},
		{name: "crit header", token: craft(t, withHeader("crit", []string{"exp"}, "exp", 1), goodClaims(testBody), es256(t, key)),
			key: &key.PublicKey, e: expect(testBody), want: deviceproof.ErrMalformed},
		{name: "b64 false", token: craft(t, withHeader("b64", false, "crit", []string{"b64"}), goodClaims(testBody), es256(t, key)),
			key: &key.PublicKey, e: expect(testBody), want: deviceproof.ErrMalformed},
		{name: "jti missing", token: craft(t, kidHeader, claimsWith(func(c *deviceproof.Claims) { c.ID = "" }), es256(t, key)),
			key: &key.PublicKey, e: expect(testBody), want: deviceproof.ErrMalformed},
		{name: "jti under 128 bits", token: craft(t, kidHeader, claimsWith(func(c *deviceproof.Claims) { c.ID = "AAECAwQFBgcICQoLDA0O" }), es256(t, key)),
			key: &key.PublicKey, e: expect(testBody), want: deviceproof.ErrMalformed},
		{name: "jti not base64url", token: craft(t, kidHeader, claimsWith(func(c *deviceproof.Claims) { c.ID = "AAECAwQFBgcICQoLDA0O+/==" }), es256(t, key)),
			key: &key.PublicKey, e: expect(testBody), want: deviceproof.ErrMalformed},
		{name: "iat missing", token: craft(t, kidHeader, claimsWith(func(c *deviceproof.Claims) { c.IssuedAt = 0 }), es256(t, key)),
			key: &key.PublicKey, e: expect(testBody), want: deviceproof.ErrMalformed},
		{name: "bsh missing", token: craft(t, kidHeader, claimsWith(func(c *deviceproof.Claims) { c.BodyHash = "" }), es256(t, key)),
			key: &key.PublicKey, e: expect(testBody), want: deviceproof.ErrMalformed},
		{name: "htm missing", token: craft(t, kidHeader, claimsWith(func(c *deviceproof.Claims) { c.Method = "" }), es256(t, key)),
			key: &key.PublicKey, e: expect(testBody), want: deviceproof.ErrMalformed},
		{name: "htm lower case", token: craft(t, kidHeader, claimsWith(func(c *deviceproof.Claims) { c.Method = "post" }), es256(t, key)),
			key: &key.PublicKey, e: expect(testBody), want: deviceproof.ErrMismatch},
		{name: "htu with query", token: craft(t, kidHeader, claimsWith(func(c *deviceproof.Claims) { c.URL = testURL + "?a=b" }), es256(t, key)),
			key: &key.PublicKey, e: expect(testBody), want: deviceproof.ErrMismatch},
		{name: "payload not JSON", token: craft(t, kidHeader, []byte("hello"), es256(t, key)),
			key: &key.PublicKey, e: expect(testBody), want: deviceproof.ErrMalformed},
		{name: "iat at the int64 wrap", token: craft(t, kidHeader, claimsWith(func(c *deviceproof.Claims) { c.IssuedAt = testNow.Unix() + math.MinInt64 }), es256(t, key)),
			key: &key.PublicKey, e: expect(testBody), want: deviceproof.ErrStale},
		{name: "claim names in upper case", token: craft(t, kidHeader, []byte(`{"HTM":"POST","HTU":"`+testURL+`","IAT":1767225600,"JTI":"AAECAwQFBgcICQoLDA0ODw","BSH":"`+deviceproof.BodyHash([]byte(testBody))+`"}`), es256(t, key)),
			key: &key.PublicKey, e: expect(testBody), want: deviceproof.ErrMalformed},
		{name: "htm twice", token: craft(t, kidHeader, []byte(`{"htm":"GET",`+string(mustJSON(t, goodClaims(testBody)))[1:]), es256(t, key)),
			key: &key.PublicKey, e: expect(testBody), want: deviceproof.ErrMalformed},
		{name: "claims with invalid UTF-8", token: craft(t, kidHeader, []byte(`{"x":"`+"\xff"+`",`+string(mustJSON(t, goodClaims(testBody)))[1:]), es256(t, key)),
			key: &key.PublicKey, e: expect(testBody), want: deviceproof.ErrMalformed},
		{name: "header with invalid UTF-8", token: rawHeader(`{"alg":"ES256","typ":"passport-proof+jwt","kid":"`+testKID+"\",\"\x81\":\"\"}", parts[1], es256(t, key)),
			key: &key.PublicKey, e: expect(testBody), want: deviceproof.ErrMalformed},
		{name: "signature pad bits set", token: parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-1] + string(parts[2][len(parts[2])-1]+1),
			key: &key.PublicKey, e: expect(testBody), want: deviceproof.ErrMalformed},
		{name: "line break in the signature", token: parts[0] + "." + parts[1] + "." + parts[2][:20] + "\r\n" + parts[2][20:],
			key: &key.PublicKey, e: expect(testBody), want: deviceproof.ErrMalformed},
		{name: "padded signature", token: good + "==", key: &key.PublicKey, e: expect(testBody), want: deviceproof.ErrMalformed},
		{name: "iat as string", token: craft(t, kidHeader, []byte(`{"htm":"POST","htu":"`+testURL+`","iat":"1767225600","jti":"AAECAwQFBgcICQoLDA0ODw","bsh":"x"}`), es256(t, key)),
			key: &key.PublicKey, e: expect(testBody), want: deviceproof.ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := verify(tc.token, tc.key, tc.e)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if c != nil {
				t.Fatalf("claims returned with error: %+v", c)
			}
		})
	}
}

func TestVerifyWithoutParse(t *testing.T) {
	var u *deviceproof.Unverified
	if _, err := u.Verify(&mustKey(t, elliptic.P256()).PublicKey, expect("")); !errors.Is(err, deviceproof.ErrMalformed) {
		t.Fatalf("nil Unverified: err = %v", err)
	}
	if _, err := (&deviceproof.Unverified{KeyID: "x"}).Verify(&mustKey(t, elliptic.P256()).PublicKey, expect("")); !errors.Is(err, deviceproof.ErrMalformed) {
		t.Fatalf("zero Unverified: err = %v", err)
	}
}

func TestSignErrors(t *testing.T) {
	tests := []struct {
		name string
		s    *deviceproof.Signer
	}{
		{name: "nil signer", s: nil},
		{name: "no key", s: &deviceproof.Signer{KeyID: testKID}},
		{name: "P-384 key", s: &deviceproof.Signer{Key: mustKey(t, elliptic.P384()), KeyID: testKID}},
		{name: "broken rand", s: &deviceproof.Signer{Key: mustKey(t, elliptic.P256()), Rand: bytes.NewReader(nil)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tok, err := tc.s.Sign("GET", testURL, nil); err == nil {
				t.Fatalf("Sign = %q, want error", tok)
			}
		})
	}
}

func TestThumbprint(t *testing.T) {
	key := mustExampleKey(t)
	// RFC 7638 §3.2: the required members, lexicographic order, no spaces.
	x := b64(key.X.FillBytes(make([]byte, 32)))
	y := b64(key.Y.FillBytes(make([]byte, 32)))
	sum := sha256.Sum256([]byte(`{"crv":"P-256","kty":"EC","x":"` + x + `","y":"` + y + `"}`))
	if got, want := deviceproof.Thumbprint(&key.PublicKey), b64(sum[:]); got != want {
		t.Errorf("Thumbprint = %q, want %q", got, want)
	}
	if got := deviceproof.Thumbprint(nil); got != "" {
		t.Errorf("Thumbprint(nil) = %q, want empty", got)
	}
	if deviceproof.Thumbprint(&mustKey(t, elliptic.P256()).PublicKey) == deviceproof.Thumbprint(&key.PublicKey) {
		t.Errorf("two keys share a thumbprint")
	}
}

func TestPublicKeyJSON(t *testing.T) {
	key := mustExampleKey(t)
	s, err := deviceproof.MarshalPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(s, `"d"`) {
		t.Fatalf("marshalled public key holds private part: %s", s)
	}
	pub, err := deviceproof.ParsePublicKey(s)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(&key.PublicKey) {
		t.Fatal("round trip changed the key")
	}

	if _, err := deviceproof.MarshalPublicKey(&mustKey(t, elliptic.P384()).PublicKey); err == nil {
		t.Error("MarshalPublicKey(P-384) succeeded")
	}
	if _, err := deviceproof.MarshalPublicKey(nil); err == nil {
		t.Error("MarshalPublicKey(nil) succeeded")
	}
	bad := []struct{ name, in string }{
		{"empty", ""},
		{"not JSON", "xyz"},
		{"private key", string(mustJSON(t, jwkOf(t, key)))},
		{"P-384", string(mustJSON(t, jwkOf(t, &mustKey(t, elliptic.P384()).PublicKey)))},
		{"symmetric", `{"kty":"oct","k":"AAEC"}`},
		{"point off curve", `{"kty":"EC","crv":"P-256","x":"` + b64(big.NewInt(1).FillBytes(make([]byte, 32))) + `","y":"` + b64(big.NewInt(1).FillBytes(make([]byte, 32))) + `"}`},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			if k, err := deviceproof.ParsePublicKey(tc.in); err == nil {
				t.Fatalf("ParsePublicKey = %v, want error", k)
			}
		})
	}
}

// TestWorkedExample pins the example documented in api/openapi.yaml: the
// fixed key in testdata, a fixed clock and jti, and the resulting header,
// claims, signing input and JWS. ECDSA signatures are randomized, so the
// stored JWS is checked by verifying it, and its signing input by equality.
// Run with -update to rewrite the golden files (then paste them into
// openapi.yaml).
func TestWorkedExample(t *testing.T) {
	key := mustExampleKey(t)
	s := &deviceproof.Signer{Key: key, KeyID: testKID, Clock: fixedClock(testNow), Rand: &counterRand{}}
	tok := mustSign(t, s, "POST", testURL, []byte(testBody))
	parts := strings.Split(tok, ".")
	header, _ := base64.RawURLEncoding.DecodeString(parts[0])
	claims, _ := base64.RawURLEncoding.DecodeString(parts[1])
	input := parts[0] + "." + parts[1]

	enroll := &deviceproof.Signer{Key: key, Clock: fixedClock(testNow), Rand: &counterRand{}}
	etok := mustSign(t, enroll, "POST", "https://idp.example.com/api/v1/device/enroll", []byte(`{"token":"inv_example","name":"Pixel 9","fcm_token":"","platform":"android"}`))
	eheader, _ := base64.RawURLEncoding.DecodeString(strings.Split(etok, ".")[0])

	golden := map[string]string{
		"header.json":        string(header),
		"claims.json":        string(claims),
		"signing-input.txt":  input,
		"enroll-header.json": string(eheader),
	}
	dir := filepath.Join("testdata", t.Name())
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		golden["proof.jws"] = tok
		for name, v := range golden {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(v+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSuffix(string(b), "\n")
	}
	for name, v := range golden {
		if got := read(name); got != v {
			t.Errorf("%s:\n got %s\nwant %s", name, v, got)
		}
	}

	stored := read("proof.jws")
	if !strings.HasPrefix(stored, input+".") {
		t.Errorf("stored proof.jws does not start with the signing input")
	}
	c, err := verify(stored, &key.PublicKey, expect(testBody))
	if err != nil {
		t.Fatalf("stored proof.jws does not verify: %v", err)
	}
	if c.ID != "AAECAwQFBgcICQoLDA0ODw" {
		t.Errorf("jti = %q", c.ID)
	}

	// The OpenAPI document shows the same example, verbatim.
	doc, err := os.ReadFile("../../api/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"signing-input.txt", "proof.jws", "header.json", "claims.json", "enroll-header.json"} {
		if !bytes.Contains(doc, []byte(read(name))) {
			t.Errorf("api/openapi.yaml lacks the worked example's %s", name)
		}
	}
	pemKey, err := os.ReadFile("testdata/example-key.pem")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(pemKey)), "\n") {
		if !bytes.Contains(doc, []byte(line)) {
			t.Errorf("api/openapi.yaml lacks the example key line %q", line)
		}
	}
}

func BenchmarkSign(b *testing.B) {
	s := &deviceproof.Signer{Key: mustKey(b, elliptic.P256()), KeyID: testKID}
	body := []byte(testBody)
	for b.Loop() {
		if _, err := s.Sign("POST", testURL, body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseVerify(b *testing.B) {
	key := mustKey(b, elliptic.P256())
	s := &deviceproof.Signer{Key: key, KeyID: testKID}
	body := []byte(testBody)
	tok := mustSign(b, s, "POST", testURL, body)
	e := deviceproof.Expect{Method: "POST", URL: testURL, Body: body}
	for b.Loop() {
		if _, err := verify(tok, &key.PublicKey, e); err != nil {
			b.Fatal(err)
		}
	}
}

func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func flip(sig string) string {
	b, _ := base64.RawURLEncoding.DecodeString(sig)
	b[len(b)/2] ^= 1
	return b64(b)
}
