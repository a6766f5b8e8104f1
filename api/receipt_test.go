package api_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/winkk/passport/api/apitest"
	"github.com/winkk/passport/api/deviceapi"
	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/authn/audit"
	"github.com/winkk/passport/store"
)

// contextHashOf is the canonical context hash of a challenge as the phone shows it, computed here from the
// documented form (not with the server's or the client library's code).
func contextHashOf(ch *deviceapi.Challenge) string {
	canonical := "passport-challenge-context/v1\nid=" + ch.ID + "\napp=" + ch.AppName + "\nip=" + ch.IP +
		"\nuser_agent=" + ch.UserAgent + "\ntime=" + ch.CreatedAt.UTC().Format("2006-01-02T15:04:05Z")
	sum := sha256.Sum256([]byte(canonical))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// verifyReceipt checks receipt (a compact JWS) against the device's public key as the admin API shows it,
// twice: with go-jose, and with plain crypto/ecdsa over the JWS signing input (RFC 7515 §5.2, RFC 7518
// §3.4). It returns the verified claims.
func verifyReceipt(t *testing.T, receipt string, jwkJSON json.RawMessage) map[string]any {
	t.Helper()
	var jwk jose.JSONWebKey
	if err := json.Unmarshal(jwkJSON, &jwk); err != nil {
		t.Fatalf("the admin device view's public_key is not a JWK: %v: %s", err, jwkJSON)
	}
	sig, err := jose.ParseSignedCompact(receipt, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatalf("go-jose parses the receipt: %v", err)
	}
	payload, err := sig.Verify(jwk.Key)
	if err != nil {
		t.Fatalf("go-jose: the receipt does not verify: %v", err)
	}
	if !ecdsaVerifies(t, receipt, jwkJSON) {
		t.Fatal("crypto/ecdsa: the receipt does not verify")
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

// ecdsaVerifies is the independent check: the JWK's x and y, SHA-256 of "header.payload", r||s.
func ecdsaVerifies(t *testing.T, receipt string, jwkJSON json.RawMessage) bool {
	t.Helper()
	var k struct{ Kty, Crv, X, Y string }
	if err := json.Unmarshal(jwkJSON, &k); err != nil || k.Kty != "EC" || k.Crv != "P-256" {
		t.Fatalf("public_key is not a P-256 JWK: %s", jwkJSON)
	}
	b64 := base64.RawURLEncoding
	x, err1 := b64.DecodeString(k.X)
	y, err2 := b64.DecodeString(k.Y)
	parts := strings.Split(receipt, ".")
	if err1 != nil || err2 != nil || len(parts) != 3 {
		t.Fatalf("malformed key or receipt")
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return false
	}
	if len(x) != 32 || len(y) != 32 {
		t.Fatalf("the JWK's coordinates are not 32 bytes")
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
	if err != nil {
		t.Fatalf("the JWK is not a P-256 point: %v", err)
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	return ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:]))
}

// TestReceipts: the phone's signed answer — naming the hash of the context it showed — is kept in the
// login.approved and login.denied events, and verifies years later against the device's public key from
// the admin API with go-jose and with plain crypto/ecdsa; a tampered receipt does not.
func TestReceipts(t *testing.T) {
	t.Parallel()
	e := newAuditEnv(t, apitest.Options{})
	jira := e.newApp("Jira", atlassianAudience, acsURL)
	ph := e.enroll(employee)
	ctx := t.Context()

	b := newBrowser(t)
	waiting := b.identify(b.startLogin(e.sp(jira), ""), employee)
	ch := ph.waitChallenge(t)
	want := contextHashOf(ch)
	if ch.AppName != "Jira" || ch.IP != "127.0.0.1" || ch.UserAgent == "" || ch.ContextHash != want || deviceapi.ContextHash(*ch) != want {
		t.Fatalf("challenge context: %+v (hash here %s)", ch, want)
	}
	if _, err := ph.AnswerChallenge(ctx, ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionApprove, Number: waiting.number(t), ContextHash: want}); err != nil {
		t.Fatal(err)
	}
	resp, _ := samlForm(t, b.get(waiting.URL), acsURL)
	e.bothAccept(t, jira, resp, employee, []string{b.requestID})

	var dev struct {
		PublicKey json.RawMessage `json:"public_key"`
	}
	e.do("GET", "/api/v1/admin/users/"+employee+"/devices/"+ph.ID, adminToken, nil, http.StatusOK, &dev)

	check := func(ev audit.Event, ch *deviceapi.Challenge, decision string) {
		t.Helper()
		receipt, _ := ev.Details["receipt"].(string)
		body, _ := ev.Details["receipt_body"].(string)
		if receipt == "" || body == "" || ev.DeviceID != ph.ID {
			t.Fatalf("%s carries no receipt: %+v", ev.Type, ev)
		}
		claims := verifyReceipt(t, receipt, dev.PublicKey)
		sum := sha256.Sum256([]byte(body))
		if claims["htm"] != "POST" || !strings.HasSuffix(claims["htu"].(string), "/api/v1/device/challenges/"+ch.ID+"/answer") ||
			claims["bsh"] != base64.RawURLEncoding.EncodeToString(sum[:]) {
			t.Errorf("%s: the receipt's claims do not bind the answer: %v", ev.Type, claims)
		}
		var answer deviceapi.AnswerRequest
		if err := json.Unmarshal([]byte(body), &answer); err != nil || answer.Decision != decision || answer.ContextHash != contextHashOf(ch) {
			t.Errorf("%s: the signed answer %s does not name the context shown (%v)", ev.Type, body, err)
		}
		// One changed character of the payload and neither check accepts it.
		parts := strings.Split(receipt, ".")
		p := []byte(parts[1])
		p[5] ^= 1
		forged := parts[0] + "." + string(p) + "." + parts[2]
		if s, err := jose.ParseSignedCompact(forged, []jose.SignatureAlgorithm{jose.ES256}); err == nil {
			var jwk jose.JSONWebKey
			_ = json.Unmarshal(dev.PublicKey, &jwk)
			if _, err := s.Verify(jwk.Key); err == nil {
				t.Error("go-jose accepts a tampered receipt")
			}
		}
		if ecdsaVerifies(t, forged, dev.PublicKey) {
			t.Error("crypto/ecdsa accepts a tampered receipt")
		}
	}
	approved := e.events(t, "type=login.approved", func(es []audit.Event) bool { return len(es) == 1 })
	check(approved[0], ch, deviceapi.DecisionApprove)

	// A denial carries its receipt too.
	b2 := newBrowser(t)
	b2.identify(b2.startLogin(e.sp(jira), ""), employee)
	ch2 := ph.waitChallenge(t)
	if _, err := ph.AnswerChallenge(ctx, ch2.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionDeny, ContextHash: contextHashOf(ch2)}); err != nil {
		t.Fatal(err)
	}
	denied := e.events(t, "type=login.denied", func(es []audit.Event) bool { return len(es) == 1 })
	check(denied[0], ch2, deviceapi.DecisionDeny)
}

// TestReceiptContextChanged: a login whose context is changed in the store after the phone was shown it
// cannot be approved (nor denied) with the hash of what the phone showed, by either way of answering; the
// login still waits, untouched.
func TestReceiptContextChanged(t *testing.T) {
	t.Parallel()
	e, ph, b, waiting := jiraLogin(t)
	ctx := t.Context()
	ch := ph.waitChallenge(t)
	shown := contextHashOf(ch)
	logins := store.NewSpreadTable[authn.Login](e.svc.Store(), "login")
	if _, err := logins.Update(ctx, ch.ID, func(l authn.Login) (authn.Login, error) {
		l.ClientIP, l.UserAgent = "203.0.113.66", "Mozilla/5.0 (an attacker's browser)"
		return l, nil
	}); err != nil {
		t.Fatal(err)
	}
	number := waiting.number(t)
	_, err := ph.AnswerChallenge(ctx, ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionApprove, Number: number, ContextHash: shown})
	if apiCode(err) != "409 "+deviceapi.CodeContextChanged {
		t.Fatalf("approve after the context changed: %v, want context_changed", err)
	}
	_, err = ph.Approve(ctx, deviceapi.ApproveByNumberRequest{Number: number, ContextHash: shown})
	if apiCode(err) != "409 "+deviceapi.CodeContextChanged {
		t.Fatalf("approve by number after the context changed: %v, want context_changed", err)
	}
	_, err = ph.AnswerChallenge(ctx, ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionDeny, ContextHash: shown})
	if apiCode(err) != "409 "+deviceapi.CodeContextChanged {
		t.Fatalf("deny after the context changed: %v, want context_changed", err)
	}
	if _, ok := b.get(waiting.URL).testID("match-number"); !ok {
		t.Fatal("a refused answer changed the login")
	}
	// What the phone is shown now has the new context, and its hash answers.
	now, err := ph.GetChallenge(ctx, ch.ID)
	if err != nil || now.IP != "203.0.113.66" || now.ContextHash == shown {
		t.Fatalf("the challenge as shown now: %+v, %v", now, err)
	}
	if _, err := ph.AnswerChallenge(ctx, ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionDeny, ContextHash: contextHashOf(now)}); err != nil {
		t.Fatalf("deny what is shown now: %v", err)
	}
}

// TestStreamToldByTheMessage: the waiting page's event stream learns of the approval from the message that
// announced it (the login's state and expiry as written), without reading the login again, so telling
// 10,000 waiting browsers costs no reads of Redis. Here the login is changed behind the stream's back so
// that a read for this browser would be refused (the stream would then say "reload"), and the stream still
// says "approved".
func TestStreamToldByTheMessage(t *testing.T) {
	t.Parallel()
	e, ph, b, waiting := jiraLogin(t)
	ctx := t.Context()
	number := waiting.number(t)
	first, events, stop := openStream(t, b.c, waiting.URL)
	defer stop()
	if first != "state pending" {
		t.Fatalf("first event %q, want state pending", first)
	}
	ch := ph.waitChallenge(t)
	logins := store.NewSpreadTable[authn.Login](e.svc.Store(), "login")
	if _, err := logins.Update(ctx, ch.ID, func(l authn.Login) (authn.Login, error) {
		l.BrowserHash = "another browser's"
		return l, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := ph.ApproveByNumber(ctx, number); err != nil {
		t.Fatal(err)
	}
	wantEvent(t, events, "state approved", "the approval, told by its message")
}
