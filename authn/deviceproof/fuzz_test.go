package deviceproof_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/winkk/passport/authn/deviceproof"
	"github.com/winkk/passport/saml/samltest/fuzzcorpus"
)

// The fuzz targets of the Device-Proof header, the one credential of the device API. Their seeds are proofs
// signed with the published example key (testdata/example-key.pem) at testNow, so they stay valid; the
// fuzzer cannot sign, so anything it makes that verifies came from a seed's signature, and must then be
// exactly what that key signed, for exactly the request it is checked against.

// sentinels are the package's errors: every failure is one of them, the very value, so nothing more than
// their generic messages can reach a client.
var sentinels = []error{deviceproof.ErrMalformed, deviceproof.ErrBadSignature, deviceproof.ErrStale, deviceproof.ErrMismatch}

func mustBeSentinel(t *testing.T, err error) {
	t.Helper()
	for _, s := range sentinels {
		if err == s {
			return
		}
	}
	t.Fatalf("error %q (%T) is not one of the package's errors", err, err)
}

// segments splits a compact JWS and decodes its parts, reporting whether each part is the one canonical
// base64url encoding (RFC 7515 §2: no padding; RFC 4648 §3.5: zero pad bits) of its bytes.
func segments(token string) (parts [3][]byte, ok bool) {
	s := strings.Split(token, ".")
	if len(s) != 3 {
		return parts, false
	}
	for i, seg := range s {
		b, err := base64.RawURLEncoding.Strict().DecodeString(seg)
		if err != nil || base64.RawURLEncoding.EncodeToString(b) != seg {
			return parts, false
		}
		parts[i] = b
	}
	return parts, true
}

// members decodes a JSON object's members by exact name, refusing a name given twice (encoding/json would
// keep the last) and invalid UTF-8 (encoding/json would replace it).
func members(b []byte) (map[string]json.RawMessage, error) {
	if !utf8.Valid(b) {
		return nil, errors.New("invalid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("not an object")
	}
	m := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name := tok.(string)
		if _, dup := m[name]; dup {
			return nil, fmt.Errorf("member %q twice", name)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		m[name] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err == nil {
		return nil, errors.New("data after the object")
	}
	return m, nil
}

func stringMember(m map[string]json.RawMessage, name string) (string, bool) {
	var s string
	raw, ok := m[name]
	return s, ok && json.Unmarshal(raw, &s) == nil
}

// mustBeSound checks, without go-jose, that a proof Verify accepted is what RFC 7515 and the DeviceProof
// scheme of api/openapi.yaml say: the canonical encoding of an ES256 signature by key over a header with
// alg ES256, typ passport-proof+jwt and exactly one of kid (kid, unless kid is "") and jwk (key), and
// claims that are those of the request e, within the skew. c must be those claims.
func mustBeSound(t *testing.T, token string, key *ecdsa.PublicKey, kid string, e deviceproof.Expect, c *deviceproof.Claims) {
	t.Helper()
	parts, ok := segments(token)
	if !ok {
		t.Fatalf("accepted a proof that is not three canonical base64url parts: %q", token)
	}
	dot := strings.LastIndexByte(token, '.')
	sum := sha256.Sum256([]byte(token[:dot]))
	if len(parts[2]) != 64 || !ecdsa.Verify(key, sum[:], new(big.Int).SetBytes(parts[2][:32]), new(big.Int).SetBytes(parts[2][32:])) {
		t.Fatalf("accepted a proof whose signature is not an ES256 signature of the key: %q", token)
	}
	h, err := members(parts[0])
	if err != nil {
		t.Fatalf("accepted a proof whose header is not a plain JSON object (%v): %q", err, parts[0])
	}
	alg, _ := stringMember(h, "alg")
	typ, _ := stringMember(h, "typ")
	gotKID, hasKID := stringMember(h, "kid")
	_, hasJWK := h["jwk"]
	if alg != "ES256" || typ != deviceproof.Type || hasKID == hasJWK || (hasKID && gotKID == "") {
		t.Fatalf("accepted header %s", parts[0])
	}
	if hasKID && kid != "" && gotKID != kid {
		t.Fatalf("accepted kid %q: the key signs only for %q", gotKID, kid)
	}
	if hasJWK {
		pub, err := deviceproof.ParsePublicKey(string(h["jwk"]))
		if err != nil || !pub.Equal(key) {
			t.Fatalf("accepted a jwk other than the signing key: %s", h["jwk"])
		}
	}
	cm, err := members(parts[1])
	if err != nil {
		t.Fatalf("accepted claims that are not a plain JSON object (%v): %q", err, parts[1])
	}
	htm, _ := stringMember(cm, "htm")
	htu, _ := stringMember(cm, "htu")
	bsh, _ := stringMember(cm, "bsh")
	jti, _ := stringMember(cm, "jti")
	if htm != strings.ToUpper(e.Method) || htm == "" {
		t.Fatalf("accepted htm %q for method %q", htm, e.Method)
	}
	if want, _, _ := strings.Cut(e.URL, "?"); htu != strings.SplitN(want, "#", 2)[0] || htu == "" {
		t.Fatalf("accepted htu %q for URL %q", htu, e.URL)
	}
	if bsh != deviceproof.BodyHash(e.Body) {
		t.Fatalf("accepted bsh %q for a body whose hash is %q", bsh, deviceproof.BodyHash(e.Body))
	}
	if id, err := base64.RawURLEncoding.DecodeString(jti); err != nil || len(id) < deviceproof.MinIDBytes {
		t.Fatalf("accepted jti %q", jti)
	}
	var iat json.Number
	dec := json.NewDecoder(bytes.NewReader(cm["iat"]))
	dec.UseNumber()
	if err := dec.Decode(&iat); err != nil {
		t.Fatalf("accepted iat %s", cm["iat"])
	}
	n, ok := new(big.Int).SetString(string(iat), 10)
	if !ok {
		t.Fatalf("accepted iat %s: not a whole number", iat)
	}
	skew := int64(e.MaxSkew / time.Second)
	if e.MaxSkew <= 0 {
		skew = int64(deviceproof.MaxSkew / time.Second)
	}
	if d := new(big.Int).Sub(big.NewInt(e.Now.Unix()), n); d.CmpAbs(big.NewInt(skew)) > 0 {
		t.Fatalf("accepted iat %s, %s s from now (skew %d s)", iat, d, skew)
	}
	if c.Method != htm || c.URL != htu || c.BodyHash != bsh || c.ID != jti || c.IssuedAt != n.Int64() {
		t.Fatalf("claims %+v are not the signed ones %s", *c, parts[1])
	}
}

// verifyAs runs what the server runs: Parse, then Verify with the key the proof names (the device's, for
// a kid; the embedded one, for a jwk). The failures must be the package's own errors.
func verifyAs(t *testing.T, token string, device *ecdsa.PublicKey, e deviceproof.Expect) (*deviceproof.Unverified, *deviceproof.Claims, error) {
	t.Helper()
	u, err := deviceproof.Parse(token)
	if err != nil {
		mustBeSentinel(t, err)
		return nil, nil, err
	}
	if (u.KeyID == "") == (u.JWK == nil) {
		t.Fatalf("Parse returned kid %q and jwk %v: want exactly one", u.KeyID, u.JWK)
	}
	key := device
	if u.JWK != nil {
		key = u.JWK
	}
	c, err := u.Verify(key, e)
	if err != nil {
		mustBeSentinel(t, err)
		if c != nil {
			t.Fatalf("claims returned with error %v", err)
		}
		return u, nil, err
	}
	return u, c, nil
}

// proofSeeds are signed proofs and near-misses for testURL and testBody at testNow.
func proofSeeds(tb testing.TB) []fuzzcorpus.Seed {
	key := mustExampleKey(tb)
	sign := es256(tb, key)
	kidHeader := map[string]any{"alg": "ES256", "typ": deviceproof.Type, "kid": testKID}
	jwkHeader := map[string]any{"alg": "ES256", "typ": deviceproof.Type, "jwk": jwkOf(tb, &key.PublicKey)}
	with := func(h map[string]any, kv ...any) map[string]any {
		out := map[string]any{}
		for k, v := range h {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(out, kv[i].(string))
			} else {
				out[kv[i].(string)] = kv[i+1]
			}
		}
		return out
	}
	good := goodClaims(testBody)
	claims := func(f func(*deviceproof.Claims)) deviceproof.Claims {
		c := good
		f(&c)
		return c
	}
	raw := func(s string) []byte { return []byte(s) }
	goodJSON := string(mustJSON(tb, good))
	signed := func(header, claims string) string {
		input := b64(raw(header)) + "." + b64(raw(claims))
		return input + "." + b64(sign(raw(input)))
	}
	valid := craft(tb, kidHeader, good, sign)
	parts := strings.Split(valid, ".")
	// padBits changes only the unused low bits of a part's last character: the same bytes, another spelling.
	padBits := func(seg string) string {
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		if len(seg)%4 == 0 {
			tb.Fatalf("part %q has no pad bits", seg)
		}
		return seg[:len(seg)-1] + string(alphabet[strings.IndexByte(alphabet, seg[len(seg)-1])^1])
	}
	seed := func(name, token string) fuzzcorpus.Seed { return fuzzcorpus.Seed{Name: name, Values: []any{token}} }
	return []fuzzcorpus.Seed{
		seed("valid-kid", valid),
		seed("valid-jwk", craft(tb, jwkHeader, good, sign)),
		seed("valid-signer", mustSign(tb, &deviceproof.Signer{Key: key, KeyID: testKID, Clock: fixedClock(testNow), Rand: &counterRand{}}, "POST", testURL, []byte(testBody))),
		seed("empty", ""),
		seed("dots", ".."),
		seed("two-parts", parts[0]+"."+parts[1]),
		seed("four-parts", valid+"."+parts[2]),
		seed("padded-signature", valid+"=="),
		seed("signature-pad-bits", parts[0]+"."+parts[1]+"."+padBits(parts[2])),
		seed("claims-pad-bits", parts[0]+"."+padBits(parts[1])+"."+parts[2]),
		seed("newline-in-signature", parts[0]+"."+parts[1]+"."+parts[2][:10]+"\n"+parts[2][10:]),
		seed("standard-base64", parts[0]+"."+parts[1]+"."+strings.NewReplacer("-", "+", "_", "/").Replace(parts[2])),
		seed("json-serialization", `{"payload":"`+parts[1]+`","protected":"`+parts[0]+`","signature":"`+parts[2]+`"}`),
		seed("alg-none", b64(mustJSON(tb, with(kidHeader, "alg", "none")))+"."+parts[1]+"."),
		seed("alg-hs256", craft(tb, with(kidHeader, "alg", "HS256"), good, sign)),
		seed("alg-es256-lower", craft(tb, with(kidHeader, "alg", "es256"), good, sign)),
		seed("typ-missing", craft(tb, with(kidHeader, "typ", nil), good, sign)),
		seed("typ-jwt", craft(tb, with(kidHeader, "typ", "JWT"), good, sign)),
		seed("kid-and-jwk", craft(tb, with(kidHeader, "jwk", jwkOf(tb, &key.PublicKey)), good, sign)),
		seed("no-key", craft(tb, with(kidHeader, "kid", nil), good, sign)),
		seed("kid-empty", craft(tb, with(kidHeader, "kid", ""), good, sign)),
		seed("kid-number", craft(tb, with(kidHeader, "kid", 7), good, sign)),
		seed("jwk-private", craft(tb, with(jwkHeader, "jwk", jwkOf(tb, key)), good, sign)),
		seed("jwk-p384", craft(tb, with(jwkHeader, "jwk", jwkOf(tb, &mustKey(tb, elliptic.P384()).PublicKey)), good, sign)),
		seed("jwk-oct", craft(tb, with(jwkHeader, "jwk", map[string]any{"kty": "oct", "k": "AAEC"}), good, sign)),
		seed("jwk-with-kid", craft(tb, with(jwkHeader, "jwk", with(jwkOf(tb, &key.PublicKey), "kid", testKID)), good, sign)),
		seed("crit", craft(tb, with(kidHeader, "crit", []string{"exp"}, "exp", 1), good, sign)),
		seed("b64-false", craft(tb, with(kidHeader, "b64", false, "crit", []string{"b64"}), good, sign)),
		seed("x5u", craft(tb, with(kidHeader, "x5u", "https://evil.example/cert"), good, sign)),
		seed("nonce", craft(tb, with(kidHeader, "nonce", "n"), good, sign)),
		seed("header-duplicate-alg", signed(`{"alg":"none","alg":"ES256","typ":"passport-proof+jwt","kid":"`+testKID+`"}`, goodJSON)),
		seed("header-escaped-names", signed(`{"\u0061lg":"ES256","typ":"passport-proof+jwt","kid":"`+testKID+`"}`, goodJSON)),
		seed("header-array", signed(`["ES256"]`, goodJSON)),
		seed("header-not-json", signed("ES256", goodJSON)),
		seed("claims-null", craft(tb, kidHeader, raw("null"), sign)),
		seed("claims-array", craft(tb, kidHeader, raw(`[`+goodJSON+`]`), sign)),
		seed("claims-trailing", craft(tb, kidHeader, raw(goodJSON+` {}`), sign)),
		seed("claims-upper-case-names", craft(tb, kidHeader, raw(strings.NewReplacer(`"htm"`, `"HTM"`, `"htu"`, `"Htu"`).Replace(goodJSON)), sign)),
		seed("claims-duplicate-htm", craft(tb, kidHeader, raw(`{"htm":"GET",`+goodJSON[1:]), sign)),
		seed("claims-invalid-utf8", craft(tb, kidHeader, raw(strings.Replace(goodJSON, `"htm":"POST"`, "\"htm\":\"POST\",\"x\":\"\xff\"", 1)), sign)),
		seed("iat-string", craft(tb, kidHeader, raw(strings.Replace(goodJSON, fmt.Sprint(testNow.Unix()), `"`+fmt.Sprint(testNow.Unix())+`"`, 1)), sign)),
		seed("iat-float", craft(tb, kidHeader, raw(strings.Replace(goodJSON, fmt.Sprint(testNow.Unix()), fmt.Sprint(testNow.Unix())+".5", 1)), sign)),
		seed("iat-exponent", craft(tb, kidHeader, raw(strings.Replace(goodJSON, fmt.Sprint(testNow.Unix()), "1.7672256e9", 1)), sign)),
		seed("iat-huge", craft(tb, kidHeader, raw(strings.Replace(goodJSON, fmt.Sprint(testNow.Unix()), "1e400", 1)), sign)),
		seed("iat-stale", craft(tb, kidHeader, claims(func(c *deviceproof.Claims) { c.IssuedAt -= 61 }), sign)),
		seed("iat-future", craft(tb, kidHeader, claims(func(c *deviceproof.Claims) { c.IssuedAt += 61 }), sign)),
		seed("iat-min-int64", craft(tb, kidHeader, claims(func(c *deviceproof.Claims) { c.IssuedAt = math.MinInt64 }), sign)),
		seed("iat-max-int64", craft(tb, kidHeader, claims(func(c *deviceproof.Claims) { c.IssuedAt = math.MaxInt64 }), sign)),
		seed("iat-wraps-to-now", craft(tb, kidHeader, claims(func(c *deviceproof.Claims) { c.IssuedAt = testNow.Unix() + math.MinInt64 }), sign)),
		seed("jti-short", craft(tb, kidHeader, claims(func(c *deviceproof.Claims) { c.ID = "AAECAwQFBgcICQoLDA0O" }), sign)),
		seed("jti-padded", craft(tb, kidHeader, claims(func(c *deviceproof.Claims) { c.ID += "==" }), sign)),
		seed("htm-lower", craft(tb, kidHeader, claims(func(c *deviceproof.Claims) { c.Method = "post" }), sign)),
		seed("htu-query", craft(tb, kidHeader, claims(func(c *deviceproof.Claims) { c.URL += "?a=b" }), sign)),
		seed("htu-other-host", craft(tb, kidHeader, claims(func(c *deviceproof.Claims) { c.URL = strings.Replace(c.URL, "idp.", "evil.", 1) }), sign)),
		seed("bsh-empty-body", craft(tb, kidHeader, claims(func(c *deviceproof.Claims) { c.BodyHash = deviceproof.BodyHash(nil) }), sign)),
		seed("signature-der", parts[0]+"."+parts[1]+"."+b64(derSignature(tb, key, parts[0]+"."+parts[1]))),
		seed("signature-short", parts[0]+"."+parts[1]+"."+parts[2][:40]),
	}
}

// derSignature is an ES256 signature in ASN.1 DER, the form JWS does not use.
func derSignature(tb testing.TB, key *ecdsa.PrivateKey, input string) []byte {
	tb.Helper()
	sum := sha256.Sum256([]byte(input))
	sig, err := ecdsa.SignASN1(nil, key, sum[:])
	if err != nil {
		tb.Fatal(err)
	}
	return sig
}

// FuzzParse feeds whole Device-Proof header values to Parse and Verify against the request of testURL and
// testBody at testNow. Whatever the input: no panic, only the package's errors, an oversized value refused
// before any work, and a proof accepted only when it is sound (mustBeSound) and never under another key.
func FuzzParse(f *testing.F) {
	fuzzcorpus.Use(f, proofSeeds(f))
	key := &mustExampleKey(f).PublicKey
	other := &mustKey(f, elliptic.P256()).PublicKey
	e := expect(testBody)
	f.Fuzz(func(t *testing.T, token string) {
		u, c, err := verifyAs(t, token, key, e)
		if len(token) > 8<<10 && !errors.Is(err, deviceproof.ErrMalformed) {
			t.Fatalf("a %d-byte proof was not refused as malformed: %v", len(token), err)
		}
		if err != nil {
			return
		}
		mustBeSound(t, token, key, testKID, e, c)
		if u.KeyID != "" {
			if c, err := u.Verify(other, e); err == nil {
				t.Fatalf("verified under another device's key: %+v", c)
			}
		}
	})
}

// FuzzClaims signs whatever header and claims the fuzzer makes with the example key, so that the checks
// behind the signature — header fields, the claims' JSON, htm, htu, bsh, iat, jti — are explored
// directly rather than through a signature the fuzzer cannot make.
func FuzzClaims(f *testing.F) {
	// The header and claims of every proof seed whose two are canonical: a choice that must not depend on
	// the signature, which ECDSA draws anew each run (every fuzz worker runs this too).
	var seeds []fuzzcorpus.Seed
	for _, s := range proofSeeds(f) {
		parts := strings.Split(s.Values[0].(string), ".")
		if len(parts) != 3 || strings.HasPrefix(s.Name, "signature-") {
			continue
		}
		header, err1 := base64.RawURLEncoding.Strict().DecodeString(parts[0])
		claims, err2 := base64.RawURLEncoding.Strict().DecodeString(parts[1])
		if err1 != nil || err2 != nil || len(header) == 0 || len(claims) == 0 || b64(header) != parts[0] || b64(claims) != parts[1] {
			continue
		}
		seeds = append(seeds, fuzzcorpus.Seed{Name: s.Name, Values: []any{header, claims}})
	}
	fuzzcorpus.Use(f, seeds)
	priv := mustExampleKey(f)
	e := expect(testBody)
	f.Fuzz(func(t *testing.T, header, claims []byte) {
		input := b64(header) + "." + b64(claims)
		token := input + "." + b64(es256(t, priv)([]byte(input)))
		_, c, err := verifyAs(t, token, &priv.PublicKey, e)
		if err != nil {
			if h, herr := members(header); herr == nil && h["jwk"] == nil && len(token) <= 8<<10 && errors.Is(err, deviceproof.ErrBadSignature) {
				t.Fatalf("a proof signed by the key it names was refused as badly signed")
			}
			return
		}
		mustBeSound(t, token, &priv.PublicKey, "", e, c)
	})
}

// requestSeeds are proofs each with the request it was signed for, and with requests it was not.
func requestSeeds(tb testing.TB) []fuzzcorpus.Seed {
	key := mustExampleKey(tb)
	kid := &deviceproof.Signer{Key: key, KeyID: testKID, Clock: fixedClock(testNow)}
	enroll := &deviceproof.Signer{Key: key, Clock: fixedClock(testNow)}
	const base = "https://idp.example.com/api/v1/device"
	answer := mustSign(tb, kid, "POST", testURL, []byte(testBody))
	seed := func(name, token, method, url, body string) fuzzcorpus.Seed {
		return fuzzcorpus.Seed{Name: name, Values: []any{token, method, url, []byte(body)}}
	}
	return []fuzzcorpus.Seed{
		seed("answer", answer, "POST", testURL, testBody),
		seed("answer-lower-case-method", answer, "post", testURL, testBody),
		seed("answer-with-query", answer, "POST", testURL+"?x=1#f", testBody),
		seed("answer-other-number", answer, "POST", testURL, strings.Replace(testBody, "42", "43", 1)),
		seed("answer-body-respaced", answer, "POST", testURL, strings.Replace(testBody, ":", ": ", 1)),
		seed("answer-other-challenge", answer, "POST", strings.Replace(testURL, "/abc/", "/abd/", 1), testBody),
		seed("answer-trailing-slash", answer, "POST", testURL+"/", testBody),
		seed("answer-as-put", answer, "PUT", testURL, testBody),
		seed("list", mustSign(tb, kid, "GET", base+"/challenges", nil), "GET", base+"/challenges", ""),
		seed("wait", mustSign(tb, kid, "GET", base+"/challenges/wait?timeout=25s", nil), "GET", base+"/challenges/wait?timeout=60s", ""),
		seed("remove", mustSign(tb, kid, "DELETE", base+"/devices/dev_other", nil), "DELETE", base+"/devices/dev_other", ""),
		seed("remove-as-get", mustSign(tb, kid, "DELETE", base+"/devices/dev_other", nil), "GET", base+"/devices/dev_other", ""),
		seed("push-token", mustSign(tb, kid, "PUT", base+"/push-token", []byte(`{"fcm_token":""}`)), "PUT", base+"/push-token", `{"fcm_token":""}`),
		seed("enroll", mustSign(tb, enroll, "POST", base+"/enroll", []byte(`{"token":"inv_x","name":"n"}`)), "POST", base+"/enroll", `{"token":"inv_x","name":"n"}`),
		seed("enroll-other-token", mustSign(tb, enroll, "POST", base+"/enroll", []byte(`{"token":"inv_x","name":"n"}`)), "POST", base+"/enroll", `{"token":"inv_y","name":"n"}`),
	}
}

// FuzzProofForRequest mutates signed proofs and the requests they are checked against together: a proof
// that verifies does so only for the method, URL (query aside) and exact body it was signed for, only as
// the device that signed it, and only in the encoding that device produced.
func FuzzProofForRequest(f *testing.F) {
	fuzzcorpus.Use(f, requestSeeds(f))
	key := &mustExampleKey(f).PublicKey
	f.Fuzz(func(t *testing.T, token, method, url string, body []byte) {
		e := deviceproof.Expect{Method: method, URL: url, Body: body, Now: testNow}
		_, c, err := verifyAs(t, token, key, e)
		if err != nil {
			return
		}
		mustBeSound(t, token, key, testKID, e, c)
	})
}

// TestEveryByteMatters flips each bit of each byte of a valid proof, and swaps the last character of each
// part (where base64url keeps its pad bits) for every other one: no changed proof verifies.
func TestEveryByteMatters(t *testing.T) {
	key := mustExampleKey(t)
	for _, s := range []*deviceproof.Signer{
		{Key: key, KeyID: testKID, Clock: fixedClock(testNow)},
		{Key: key, Clock: fixedClock(testNow)},
	} {
		good := mustSign(t, s, "POST", testURL, []byte(testBody))
		try := func(mutated string) {
			t.Helper()
			if mutated == good {
				return
			}
			if _, c, err := verifyAs(t, mutated, &key.PublicKey, expect(testBody)); err == nil {
				t.Fatalf("a changed proof verifies: %q (claims %+v)\noriginal %q", mutated, c, good)
			}
		}
		for i := range len(good) {
			for bit := range 8 {
				b := []byte(good)
				b[i] ^= 1 << bit
				try(string(b))
			}
		}
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		for end := range len(good) + 1 {
			if end < len(good) && good[end] != '.' {
				continue
			}
			for _, ch := range alphabet + "=+/ \n" {
				try(good[:end-1] + string(ch) + good[end:])
				try(good[:end] + string(ch) + good[end:])
			}
		}
	}
}

// TestParseRefusesHugeInputUnread: a value past the size limit is refused before it is even scanned, so a
// megabyte costs what a byte does.
func TestParseRefusesHugeInputUnread(t *testing.T) {
	huge := strings.Repeat("eyJhbGciOiJFUzI1NiJ9.", 50_000) + "."
	allocs := testing.AllocsPerRun(10, func() {
		if _, err := deviceproof.Parse(huge); err != deviceproof.ErrMalformed {
			t.Fatalf("err = %v, want ErrMalformed", err)
		}
	})
	if allocs != 0 {
		t.Errorf("refusing a %d-byte proof allocated %v times, want 0", len(huge), allocs)
	}
}
