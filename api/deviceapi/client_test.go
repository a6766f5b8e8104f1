package deviceapi_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/winkk/passport/api/deviceapi"
	"github.com/winkk/passport/api/deviceapi/deviceapitest"
	"github.com/winkk/passport/authn/deviceproof"
)

func mustKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// mustEnrolled returns a fake and a client whose device is enrolled for email.
func mustEnrolled(tb testing.TB, email string) (*deviceapitest.Fake, *deviceapi.Client, deviceapi.Device) {
	tb.Helper()
	f := deviceapitest.NewServer(tb)
	c := &deviceapi.Client{BaseURL: f.URL + "/", HTTP: f.Client(), Signer: &deviceproof.Signer{Key: mustKey(tb)}}
	d := mustEnroll(tb, f, c, email)
	return f, c, d
}

func mustEnroll(tb testing.TB, f *deviceapitest.Fake, c *deviceapi.Client, email string) deviceapi.Device {
	tb.Helper()
	tok := "inv_" + email
	f.AddInvitation(tok, email)
	res, err := c.EnrollByInvitation(context.Background(), deviceapi.EnrollByInvitationRequest{
		Token: tok, Name: "test phone", Platform: "android", FCMToken: "fcm-1",
	})
	if err != nil {
		tb.Fatal(err)
	}
	c.Signer.KeyID = res.Device.ID
	return res.Device
}

func lastCall(tb testing.TB, f *deviceapitest.Fake) deviceapitest.Call {
	tb.Helper()
	calls := f.Calls()
	if len(calls) == 0 {
		tb.Fatal("no call reached the fake")
	}
	return calls[len(calls)-1]
}

// checkProof asserts the last call carried a valid proof of the right kind
// for the operation, with htu = base URL + path.
func checkProof(tb testing.TB, f *deviceapitest.Fake, op, kid string) {
	tb.Helper()
	call := lastCall(tb, f)
	if call.Operation != op {
		tb.Fatalf("last operation = %s, want %s", call.Operation, op)
	}
	if call.Claims == nil {
		tb.Fatalf("%s: no valid proof (status %d)", op, call.Status)
	}
	if call.KeyID != kid || call.JWK != (kid == "") {
		tb.Errorf("%s: kid=%q jwk=%v, want kid=%q", op, call.KeyID, call.JWK, kid)
	}
	if want := f.URL + call.Path; call.Claims.URL != want {
		tb.Errorf("%s: htu = %q, want %q", op, call.Claims.URL, want)
	}
	if call.Claims.Method != call.Method {
		tb.Errorf("%s: htm = %q, want %q", op, call.Claims.Method, call.Method)
	}
	if call.Claims.BodyHash != deviceproof.BodyHash(call.Body) {
		tb.Errorf("%s: bsh does not match body", op)
	}
}

func TestEnrollByInvitation(t *testing.T) {
	f := deviceapitest.NewServer(t)
	key := mustKey(t)
	// A KeyID already set must not leak into an enrollment proof.
	c := &deviceapi.Client{BaseURL: f.URL, HTTP: f.Client(), Signer: &deviceproof.Signer{Key: key, KeyID: "stale"}}
	f.AddInvitation("inv_ok", "ann@example.com")
	res, err := c.EnrollByInvitation(context.Background(), deviceapi.EnrollByInvitationRequest{Token: "inv_ok", Name: "Pixel", Platform: "android", FCMToken: "fcm"})
	if err != nil {
		t.Fatal(err)
	}
	checkProof(t, f, "enrollByInvitation", "")
	if res.Device.Email != "ann@example.com" || res.Device.Name != "Pixel" || res.Device.PushStatus != deviceapi.PushOK || !res.Device.Current {
		t.Errorf("device = %+v", res.Device)
	}

	t.Run("used invitation", func(t *testing.T) {
		_, err := c.EnrollByInvitation(context.Background(), deviceapi.EnrollByInvitationRequest{Token: "inv_ok", Name: "Pixel"})
		wantAPIError(t, err, http.StatusGone, deviceapi.CodeInvitationInvalid)
	})
	t.Run("no signer", func(t *testing.T) {
		c := &deviceapi.Client{BaseURL: f.URL, HTTP: f.Client()}
		if _, err := c.EnrollByInvitation(context.Background(), deviceapi.EnrollByInvitationRequest{Token: "x", Name: "y"}); err == nil {
			t.Fatal("enrolled without a signer")
		}
	})
}

func TestEnrollByEmail(t *testing.T) {
	f := deviceapitest.NewServer(t)
	c := &deviceapi.Client{BaseURL: f.URL, HTTP: f.Client(), Signer: &deviceproof.Signer{Key: mustKey(t)}}
	ctx := context.Background()

	t.Run("domain refused", func(t *testing.T) {
		_, err := c.RequestEmailCode(ctx, deviceapi.RequestEmailCodeRequest{Email: "eve@blocked.example"})
		wantAPIError(t, err, http.StatusForbidden, deviceapi.CodeEmailNotAllowed)
	})
	t.Run("invalid email", func(t *testing.T) {
		_, err := c.RequestEmailCode(ctx, deviceapi.RequestEmailCodeRequest{Email: "nope"})
		wantAPIError(t, err, http.StatusBadRequest, deviceapi.CodeInvalidRequest)
	})

	res, err := c.RequestEmailCode(ctx, deviceapi.RequestEmailCodeRequest{Email: "bob@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if call := lastCall(t, f); call.Operation != "requestEmailCode" || call.Claims != nil || call.KeyID != "" || call.JWK {
		t.Errorf("requestEmailCode carried a proof: %+v", call)
	}
	if res.ExpiresAt.IsZero() {
		t.Error("expires_at missing")
	}
	code := f.EmailCode("bob@example.com")

	t.Run("wrong code", func(t *testing.T) {
		_, err := c.EnrollByEmail(ctx, deviceapi.EnrollByEmailRequest{Email: "bob@example.com", Code: "x" + code, Name: "n"})
		wantAPIError(t, err, http.StatusBadRequest, deviceapi.CodeCodeInvalid)
	})

	en, err := c.EnrollByEmail(ctx, deviceapi.EnrollByEmailRequest{Email: "bob@example.com", Code: code, Name: "iPhone", Platform: "ios"})
	if err != nil {
		t.Fatal(err)
	}
	checkProof(t, f, "enrollByEmail", "")
	if en.Device.Email != "bob@example.com" || en.Device.PushStatus != deviceapi.PushNone {
		t.Errorf("device = %+v", en.Device)
	}
}

func TestDeviceOperations(t *testing.T) {
	f, c, me := mustEnrolled(t, "ann@example.com")
	ctx := context.Background()
	// A second device of the same user, and one of another user.
	c2 := &deviceapi.Client{BaseURL: f.URL, HTTP: f.Client(), Signer: &deviceproof.Signer{Key: mustKey(t)}}
	other := mustEnroll(t, f, c2, "ann@example.com")
	c3 := &deviceapi.Client{BaseURL: f.URL, HTTP: f.Client(), Signer: &deviceproof.Signer{Key: mustKey(t)}}
	stranger := mustEnroll(t, f, c3, "zed@example.com")

	list, err := c.ListDevices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkProof(t, f, "listDevices", me.ID)
	if len(list.Devices) != 2 || !list.Devices[0].Current || list.Devices[1].Current || list.Devices[1].ID != other.ID {
		t.Errorf("devices = %+v", list.Devices)
	}

	d, err := c.RenameDevice(ctx, other.ID, deviceapi.RenameDeviceRequest{Name: "old phone"})
	if err != nil {
		t.Fatal(err)
	}
	checkProof(t, f, "renameDevice", me.ID)
	if d.Name != "old phone" || d.ID != other.ID {
		t.Errorf("renamed = %+v", d)
	}

	d, err = c.UpdatePushToken(ctx, deviceapi.UpdatePushTokenRequest{FCMToken: "fcm-2"})
	if err != nil {
		t.Fatal(err)
	}
	checkProof(t, f, "updatePushToken", me.ID)
	if _, tok, _ := f.Device(me.ID); tok != "fcm-2" || d.PushTokenUpdatedAt == nil {
		t.Errorf("push token not updated: %q %+v", tok, d)
	}

	t.Run("rename another user's device", func(t *testing.T) {
		_, err := c.RenameDevice(ctx, stranger.ID, deviceapi.RenameDeviceRequest{Name: "mine now"})
		wantAPIError(t, err, http.StatusNotFound, deviceapi.CodeNotFound)
	})
	t.Run("rename to empty", func(t *testing.T) {
		_, err := c.RenameDevice(ctx, me.ID, deviceapi.RenameDeviceRequest{})
		wantAPIError(t, err, http.StatusBadRequest, deviceapi.CodeInvalidRequest)
	})
	t.Run("device id is path-escaped", func(t *testing.T) {
		err := c.RemoveDevice(ctx, "../devices")
		wantAPIError(t, err, http.StatusNotFound, deviceapi.CodeNotFound)
		if p := lastCall(t, f).Path; p != "/api/v1/device/devices/..%2Fdevices" {
			t.Errorf("path = %q", p)
		}
	})

	if err := c.RemoveDevice(ctx, other.ID); err != nil {
		t.Fatal(err)
	}
	checkProof(t, f, "removeDevice", me.ID)
	t.Run("removed device is revoked", func(t *testing.T) {
		_, err := c2.ListDevices(ctx)
		wantAPIError(t, err, http.StatusUnauthorized, deviceapi.CodeDeviceRevoked)
	})
	t.Run("unknown device", func(t *testing.T) {
		c4 := &deviceapi.Client{BaseURL: f.URL, HTTP: f.Client(), Signer: &deviceproof.Signer{Key: mustKey(t), KeyID: "dev_nope"}}
		_, err := c4.ListDevices(ctx)
		wantAPIError(t, err, http.StatusUnauthorized, deviceapi.CodeUnknownDevice)
	})
	t.Run("wrong key for the device id", func(t *testing.T) {
		c5 := &deviceapi.Client{BaseURL: f.URL, HTTP: f.Client(), Signer: &deviceproof.Signer{Key: mustKey(t), KeyID: me.ID}}
		_, err := c5.ListDevices(ctx)
		wantAPIError(t, err, http.StatusUnauthorized, deviceapi.CodeInvalidProof)
	})
	t.Run("base url the server does not answer for", func(t *testing.T) {
		// htu names another host than the server checks against.
		alias := strings.Replace(f.URL, "127.0.0.1", "localhost", 1)
		c6 := &deviceapi.Client{BaseURL: alias, HTTP: f.Client(), Signer: c.Signer}
		_, err := c6.ListDevices(ctx)
		wantAPIError(t, err, http.StatusUnauthorized, deviceapi.CodeInvalidProof)
	})
	t.Run("no device id", func(t *testing.T) {
		c7 := &deviceapi.Client{BaseURL: f.URL, HTTP: f.Client(), Signer: &deviceproof.Signer{Key: mustKey(t)}}
		if _, err := c7.ListDevices(ctx); err == nil {
			t.Fatal("signed a kid call without a device id")
		}
	})
}

func TestChallengeOperations(t *testing.T) {
	f, c, me := mustEnrolled(t, "ann@example.com")
	ctx := context.Background()

	list, err := c.ListChallenges(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkProof(t, f, "listChallenges", me.ID)
	if len(list.Challenges) != 0 {
		t.Fatalf("challenges = %+v", list.Challenges)
	}

	t.Run("wait times out with ErrNoChallenge", func(t *testing.T) {
		ch, err := c.WaitForChallenge(ctx, time.Millisecond)
		if !errors.Is(err, deviceapi.ErrNoChallenge) || ch != nil {
			t.Fatalf("WaitForChallenge = %+v, %v", ch, err)
		}
		checkProof(t, f, "waitForChallenge", me.ID)
		if q := lastCall(t, f).Query; q != "timeout=0.001s" {
			t.Errorf("query = %q", q)
		}
	})

	zed := f.AddChallenge("zed@example.com", 11) // another user's: never shown
	first := f.AddChallenge("ann@example.com", 42)
	t.Run("wait returns a pending challenge at once", func(t *testing.T) {
		ch, err := c.WaitForChallenge(ctx, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if ch.ID != first.ID || ch.State != deviceapi.StatePending || ch.AppName == "" {
			t.Errorf("challenge = %+v", ch)
		}
	})

	got, err := c.GetChallenge(ctx, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	checkProof(t, f, "getChallenge", me.ID)
	if got.ID != first.ID {
		t.Errorf("got %+v", got)
	}
	t.Run("another user's challenge", func(t *testing.T) {
		_, err := c.GetChallenge(ctx, zed.ID)
		wantAPIError(t, err, http.StatusNotFound, deviceapi.CodeChallengeNotFound)
	})

	ans, err := c.AnswerChallenge(ctx, first.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionApprove, Number: 42})
	if err != nil {
		t.Fatal(err)
	}
	checkProof(t, f, "answerChallenge", me.ID)
	if ans.State != deviceapi.StateApproved {
		t.Errorf("state = %q", ans.State)
	}
	t.Run("answer twice", func(t *testing.T) {
		_, err := c.AnswerChallenge(ctx, first.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionDeny})
		wantAPIError(t, err, http.StatusConflict, deviceapi.CodeChallengeClosed)
	})
	t.Run("wrong number denies", func(t *testing.T) {
		ch := f.AddChallenge("ann@example.com", 7)
		_, err := c.AnswerChallenge(ctx, ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionApprove, Number: 8})
		wantAPIError(t, err, http.StatusUnprocessableEntity, deviceapi.CodeNumberMismatch)
		if now, _, _ := f.Challenge(ch.ID); now.State != deviceapi.StateDenied {
			t.Errorf("state after mismatch = %q", now.State)
		}
	})
	t.Run("deny with report", func(t *testing.T) {
		ch := f.AddChallenge("ann@example.com", 7)
		ans, err := c.AnswerChallenge(ctx, ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionDeny, Report: true})
		if err != nil || ans.State != deviceapi.StateDenied {
			t.Fatalf("answer = %+v, %v", ans, err)
		}
		if _, reported, _ := f.Challenge(ch.ID); !reported {
			t.Error("report not recorded")
		}
	})
	t.Run("bad decision", func(t *testing.T) {
		ch := f.AddChallenge("ann@example.com", 7)
		_, err := c.AnswerChallenge(ctx, ch.ID, deviceapi.AnswerRequest{Decision: "maybe"})
		wantAPIError(t, err, http.StatusBadRequest, deviceapi.CodeInvalidRequest)
	})
	t.Run("wait wakes when a challenge arrives", func(t *testing.T) {
		type result struct {
			ch  *deviceapi.Challenge
			err error
		}
		// Drain the challenges left pending above.
		for {
			l, err := c.ListChallenges(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(l.Challenges) == 0 {
				break
			}
			if _, err := c.AnswerChallenge(ctx, l.Challenges[0].ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionDeny}); err != nil {
				t.Fatal(err)
			}
		}
		done := make(chan result, 1)
		go func() {
			ch, err := c.WaitForChallenge(ctx, deviceapi.MaxWait)
			done <- result{ch, err}
		}()
		<-f.Waiting()
		want := f.AddChallenge("ann@example.com", 5)
		r := <-done
		if r.err != nil || r.ch.ID != want.ID {
			t.Fatalf("wait = %+v, %v", r.ch, r.err)
		}
	})
}

func TestReplayedProofRejected(t *testing.T) {
	_, c, _ := mustEnrolled(t, "ann@example.com")
	// A signer that always draws the same jti.
	c.Signer.Rand = zeroReader{}
	if _, err := c.ListDevices(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, err := c.ListDevices(context.Background())
	wantAPIError(t, err, http.StatusUnauthorized, deviceapi.CodeProofReplayed)
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestErrorAnswers(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		body    string
		code    string
		message string
	}{
		{name: "error body", status: 429, body: `{"error":{"code":"rate_limited","message":"slow down"}}`, code: "rate_limited", message: "slow down"},
		{name: "not JSON", status: 502, body: `<html>bad gateway</html>`, message: "Bad Gateway"},
		{name: "JSON without code", status: 500, body: `{"error":{}}`, message: "Internal Server Error"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			c := &deviceapi.Client{BaseURL: srv.URL, HTTP: srv.Client(), Signer: &deviceproof.Signer{Key: mustKey(t), KeyID: "dev_1"}}
			_, err := c.ListDevices(context.Background())
			var ae *deviceapi.APIError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v, want *APIError", err)
			}
			if ae.Status != tc.status || ae.Code != tc.code || ae.Message != tc.message {
				t.Errorf("APIError = %+v", ae)
			}
		})
	}
	t.Run("unexpected success status", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK) // enroll must answer 201
			_, _ = w.Write([]byte(`{}`))
		}))
		defer srv.Close()
		c := &deviceapi.Client{BaseURL: srv.URL, HTTP: srv.Client(), Signer: &deviceproof.Signer{Key: mustKey(t)}}
		if _, err := c.EnrollByInvitation(context.Background(), deviceapi.EnrollByInvitationRequest{}); err == nil {
			t.Fatal("accepted 200 for a 201 operation")
		}
	})
	t.Run("empty base url", func(t *testing.T) {
		c := &deviceapi.Client{Signer: &deviceproof.Signer{Key: mustKey(t), KeyID: "d"}}
		if _, err := c.ListDevices(context.Background()); err == nil {
			t.Fatal("no error without a base url")
		}
	})
}

func TestHTTPStatus(t *testing.T) {
	for _, code := range deviceapi.Codes() {
		if s := deviceapi.HTTPStatus(code); s < 400 || s > 599 {
			t.Errorf("HTTPStatus(%s) = %d", code, s)
		}
	}
	if s := deviceapi.HTTPStatus("no_such_code"); s != 500 {
		t.Errorf("unknown code → %d, want 500", s)
	}
}

func TestFormatWait(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{{25 * time.Second, "25s"}, {time.Minute, "60s"}, {1500 * time.Millisecond, "1.5s"}} {
		got := deviceapi.FormatWait(tc.d)
		if got != tc.want {
			t.Errorf("FormatWait(%v) = %q, want %q", tc.d, got, tc.want)
		}
		if back, err := time.ParseDuration(got); err != nil || back != tc.d {
			t.Errorf("ParseDuration(%q) = %v, %v", got, back, err)
		}
	}
}

func wantAPIError(tb testing.TB, err error, status int, code string) {
	tb.Helper()
	var ae *deviceapi.APIError
	if !errors.As(err, &ae) {
		tb.Fatalf("err = %v, want APIError %d %s", err, status, code)
	}
	if ae.Status != status || ae.Code != code {
		tb.Fatalf("APIError = %d %s (%s), want %d %s", ae.Status, ae.Code, ae.Message, status, code)
	}
}
