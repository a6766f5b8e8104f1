package fcmtest_test

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/winkk/passport/push/fcmtest"
)

const grantType = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// sendBody is a minimal FCM v1 send request.
const sendBody = `{"message":{"token":"device-1","data":{"challenge_id":"ch_1"},"android":{"priority":"high","ttl":"60s"}}}`

func TestSequence(t *testing.T) {
	a, b, c := fcmtest.Fail(500, "a"), fcmtest.Fail(503, "b"), fcmtest.Fail(429, "c")
	tests := []struct {
		name    string
		replies []fcmtest.Reply
		want    []string // bodies for n = 1, 2, ...
	}{
		{"no replies answers OK", nil, []string{fcmtest.OK.Body, fcmtest.OK.Body}},
		{"one reply repeats", []fcmtest.Reply{a}, []string{"a", "a", "a"}},
		{"the last reply repeats", []fcmtest.Reply{a, b, c}, []string{"a", "b", "c", "c", "c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seq := fcmtest.Sequence(tt.replies...)
			var got []string
			for n := range len(tt.want) {
				got = append(got, seq(n+1, fcmtest.Message{}).Body)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("bodies = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFail(t *testing.T) {
	r := fcmtest.Fail(429, fcmtest.BodyQuota, "Retry-After", "7", "Content-Type", "text/plain")
	if r.Status != 429 || r.Body != fcmtest.BodyQuota || r.Hang ||
		r.Header["Retry-After"] != "7" || r.Header["Content-Type"] != "text/plain" || len(r.Header) != 2 {
		t.Errorf("Fail = %+v", r)
	}
	defer func() {
		if recover() == nil {
			t.Error("Fail with an odd number of header strings did not panic")
		}
	}()
	//lint:ignore SA5012 an odd number of header strings is what this checks Fail refuses
	fcmtest.Fail(503, fcmtest.BodyUnavailable, "Retry-After")
}

func TestErrorBodiesAreFCMErrors(t *testing.T) {
	for name, body := range map[string]string{
		"unregistered": fcmtest.BodyUnregistered, "not found": fcmtest.BodyNotFoundNoFCM,
		"invalid token": fcmtest.BodyInvalidToken, "invalid token field": fcmtest.BodyInvalidTokenField,
		"invalid ttl": fcmtest.BodyInvalidTTL, "sender mismatch": fcmtest.BodySenderMismatch,
		"third party auth": fcmtest.BodyThirdPartyAuth, "quota": fcmtest.BodyQuota,
		"rate limit": fcmtest.BodyRateLimitNoFCM, "unavailable": fcmtest.BodyUnavailable, "internal": fcmtest.BodyInternal,
	} {
		t.Run(name, func(t *testing.T) {
			var e struct {
				Error struct {
					Code   int    `json:"code"`
					Status string `json:"status"`
				} `json:"error"`
			}
			if err := json.Unmarshal([]byte(body), &e); err != nil {
				t.Fatalf("not JSON: %v", err)
			}
			if e.Error.Code < 400 || e.Error.Status == "" {
				t.Errorf("error = %+v, want a google.rpc.Status with code and status", e.Error)
			}
		})
	}
}

func TestSendEndpoint(t *testing.T) {
	tests := []struct {
		name, project, auth, body string
		wantStatus                int
	}{
		{"another project", "other-project", "Bearer " + fcmtest.AccessToken, sendBody, http.StatusUnauthorized},
		{"no authorization", fcmtest.ProjectID, "", sendBody, http.StatusUnauthorized},
		{"wrong access token", fcmtest.ProjectID, "Bearer ya29.stolen", sendBody, http.StatusUnauthorized},
		{"body not json", fcmtest.ProjectID, "Bearer " + fcmtest.AccessToken, `{"message":`, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fcmtest.New(t)
			u := strings.TrimSuffix(f.Endpoint(), "/v1") + "/v1/projects/" + tt.project + "/messages:send"
			if status, _, body := mustPost(t, u, tt.auth, "application/json", tt.body); status != tt.wantStatus {
				t.Errorf("status %d (%s), want %d", status, body, tt.wantStatus)
			}
			if f.Attempts() != 0 || len(f.Received()) != 0 || len(f.Sent) != 0 {
				t.Errorf("attempts %d, received %d, sent %d: a refused request must not count",
					f.Attempts(), len(f.Received()), len(f.Sent))
			}
		})
	}
	t.Run("accepted and recorded", func(t *testing.T) {
		f := fcmtest.New(t)
		status, header, body := mustSend(t, f)
		if status != http.StatusOK || body != fcmtest.OK.Body || header.Get("Content-Type") != "application/json; charset=UTF-8" {
			t.Errorf("answer %d %q %q, want OK as JSON", status, header.Get("Content-Type"), body)
		}
		got := f.Received()
		if f.Attempts() != 1 || len(got) != 1 {
			t.Fatalf("attempts %d, received %d; want 1, 1", f.Attempts(), len(got))
		}
		m := got[0].Message
		if m.Token != "device-1" || m.Data["challenge_id"] != "ch_1" || m.Android.Priority != "high" || m.Android.TTL != "60s" {
			t.Errorf("decoded message = %+v", m)
		}
		if raw, _ := got[0].Raw["message"].(map[string]any); raw["token"] != "device-1" {
			t.Errorf("Raw = %v", got[0].Raw)
		}
		if s := <-f.Sent; s.Message.Token != "device-1" {
			t.Errorf("Sent got %+v", s.Message)
		}
	})
	t.Run("scripted answers count every send", func(t *testing.T) {
		f := fcmtest.New(t)
		var seen []int
		f.Script(func(n int, m fcmtest.Message) fcmtest.Reply {
			seen = append(seen, n) // the sends below are sequential
			if n == 1 {
				return fcmtest.Fail(503, fcmtest.BodyUnavailable, "Retry-After", "4")
			}
			return fcmtest.Fail(502, fcmtest.BodyBadGatewayHTML, "Content-Type", "text/html")
		})
		status, header, body := mustSend(t, f)
		if status != 503 || header.Get("Retry-After") != "4" || body != fcmtest.BodyUnavailable ||
			!strings.HasPrefix(header.Get("Content-Type"), "application/json") {
			t.Errorf("first answer %d %v %q", status, header, body)
		}
		status, header, body = mustSend(t, f)
		if status != 502 || header.Get("Content-Type") != "text/html" || body != fcmtest.BodyBadGatewayHTML {
			t.Errorf("second answer %d %v %q", status, header, body)
		}
		if !slices.Equal(seen, []int{1, 2}) || f.Attempts() != 2 {
			t.Errorf("script saw %v, attempts %d; want [1 2], 2", seen, f.Attempts())
		}
	})
}

func TestTokenEndpoint(t *testing.T) {
	grant := url.Values{"grant_type": {grantType}, "assertion": {"header.claims.signature"}}.Encode()
	tests := []struct {
		name string
		form string
	}{
		{"no grant type", url.Values{"assertion": {"x.y.z"}}.Encode()},
		{"another grant type", url.Values{"grant_type": {"client_credentials"}, "assertion": {"x.y.z"}}.Encode()},
		{"no assertion", url.Values{"grant_type": {grantType}}.Encode()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fcmtest.New(t)
			f.ScriptToken(func(int) fcmtest.Reply { return fcmtest.TokenOK })
			status, _, body := mustPost(t, f.TokenURI(), "", "application/x-www-form-urlencoded", tt.form)
			if status != http.StatusBadRequest || !strings.Contains(body, "invalid_request") {
				t.Errorf("answer %d %q, want 400 invalid_request", status, body)
			}
			if f.TokenFetches() != 1 {
				t.Errorf("token fetches = %d, want 1 (malformed ones count too)", f.TokenFetches())
			}
		})
	}
	t.Run("issues AccessToken", func(t *testing.T) {
		f := fcmtest.New(t)
		status, header, body := mustPost(t, f.TokenURI(), "", "application/x-www-form-urlencoded", grant)
		var tok struct {
			AccessToken string `json:"access_token"`
			ExpiresIn   int    `json:"expires_in"`
		}
		if err := json.Unmarshal([]byte(body), &tok); err != nil || status != http.StatusOK ||
			header.Get("Content-Type") != "application/json" || tok.AccessToken != fcmtest.AccessToken || tok.ExpiresIn <= 0 {
			t.Errorf("answer %d %q %q (%v), want TokenOK", status, header.Get("Content-Type"), body, err)
		}
	})
	t.Run("scripted, then restored", func(t *testing.T) {
		f := fcmtest.New(t)
		f.ScriptToken(func(n int) fcmtest.Reply {
			if n == 1 {
				return fcmtest.Fail(400, `{"error":"invalid_grant"}`)
			}
			return fcmtest.Fail(500, `{"error":"internal_failure"}`)
		})
		for _, want := range []string{"invalid_grant", "internal_failure"} {
			if _, _, body := mustPost(t, f.TokenURI(), "", "application/x-www-form-urlencoded", grant); !strings.Contains(body, want) {
				t.Errorf("answer %q, want %s", body, want)
			}
		}
		f.ScriptToken(nil)
		if status, _, body := mustPost(t, f.TokenURI(), "", "application/x-www-form-urlencoded", grant); status != 200 ||
			body != fcmtest.TokenOK.Body {
			t.Errorf("after ScriptToken(nil): %d %q, want TokenOK", status, body)
		}
		if f.TokenFetches() != 3 {
			t.Errorf("token fetches = %d, want 3", f.TokenFetches())
		}
	})
}

func TestHang(t *testing.T) {
	t.Run("client gives up: aborted", func(t *testing.T) {
		f := fcmtest.New(t)
		f.Script(fcmtest.Sequence(fcmtest.Reply{Hang: true}))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		f.OnSend(func(fcmtest.Message) { cancel() }) // give up as soon as the fake has the message
		resp, err := post(ctx, sendURL(f), "Bearer "+fcmtest.AccessToken, "application/json", sendBody)
		if !errors.Is(err, context.Canceled) {
			if err == nil {
				resp.Body.Close()
			}
			t.Fatalf("post = %v, want context.Canceled", err)
		}
		<-f.Aborted()
		if f.Attempts() != 1 {
			t.Errorf("attempts = %d, want 1", f.Attempts())
		}
	})
	t.Run("test ends first: the connection is cut", func(t *testing.T) {
		tb := newFakeTB(t)
		f := fcmtest.New(tb)
		f.Script(fcmtest.Sequence(fcmtest.Reply{Hang: true}))
		arrived := make(chan struct{})
		f.OnSend(func(fcmtest.Message) { close(arrived) })
		errc := make(chan error, 1)
		go func() {
			resp, err := post(context.Background(), sendURL(f), "Bearer "+fcmtest.AccessToken, "application/json", sendBody)
			if err == nil {
				resp.Body.Close()
			}
			errc <- err
		}()
		<-arrived
		tb.finish() // returns only once the hanging handler has let go
		if err := <-errc; err == nil {
			t.Error("the waiting client got an answer, want a cut connection")
		}
		if len(tb.errors) != 0 {
			t.Errorf("errors at cleanup: %v", tb.errors)
		}
	})
}

func TestOnSendRunsBeforeTheAnswer(t *testing.T) {
	f := fcmtest.New(t)
	var mu sync.Mutex
	var order []string
	f.OnSend(func(m fcmtest.Message) {
		mu.Lock()
		order = append(order, "hook:"+m.Message.Token)
		mu.Unlock()
	})
	f.Script(func(n int, m fcmtest.Message) fcmtest.Reply {
		mu.Lock()
		order = append(order, "reply:"+m.Message.Token)
		mu.Unlock()
		return fcmtest.OK
	})
	mustSend(t, f)
	f.OnSend(nil)
	mustSend(t, f)
	if want := []string{"hook:device-1", "reply:device-1", "reply:device-1"}; !slices.Equal(order, want) {
		t.Errorf("order = %v, want %v", order, want)
	}
}

func TestNoStore(t *testing.T) {
	f := fcmtest.New(t)
	mustSend(t, f)
	f.NoStore()
	mustSend(t, f)
	mustSend(t, f)
	if f.Attempts() != 3 || len(f.Received()) != 1 || len(f.Sent) != 3 {
		t.Errorf("attempts %d, received %d, sent %d; want 3, 1 (kept before NoStore), 3",
			f.Attempts(), len(f.Received()), len(f.Sent))
	}
}

func TestUnexpectedRequestsFailTheTest(t *testing.T) {
	tb := newFakeTB(t)
	f := fcmtest.New(tb)
	mustSend(t, f) // an expected request is not reported
	for _, r := range []struct{ method, path string }{
		{http.MethodGet, "/v1/projects/" + fcmtest.ProjectID + "/messages:send"},
		{http.MethodPost, "/v1/projects/" + fcmtest.ProjectID + "/messages:batchSend"},
	} {
		req, err := http.NewRequest(r.method, strings.TrimSuffix(f.Endpoint(), "/v1")+r.path, strings.NewReader(sendBody))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s %s = %d, want 404", r.method, r.path, resp.StatusCode)
		}
	}
	want := []string{"GET /v1/projects/passport-test/messages:send", "POST /v1/projects/passport-test/messages:batchSend"}
	if got := f.Unexpected(); !slices.Equal(got, want) {
		t.Errorf("Unexpected = %q, want %q", got, want)
	}
	tb.finish()
	if len(tb.errors) != 1 || !strings.Contains(tb.errors[0], "messages:batchSend") {
		t.Errorf("errors at cleanup = %q, want one naming the unexpected requests", tb.errors)
	}
}

func TestCredentialsFile(t *testing.T) {
	f := fcmtest.New(t)
	tests := []struct {
		name, path, wantProject string
	}{
		{"default project", f.CredentialsFile(t), fcmtest.ProjectID},
		{"chosen project", f.CredentialsFileFor(t, "another-project"), "another-project"},
		{"no project", f.CredentialsFileFor(t, ""), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := os.ReadFile(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			var sa map[string]string
			if err := json.Unmarshal(b, &sa); err != nil {
				t.Fatal(err)
			}
			if sa["type"] != "service_account" || sa["project_id"] != tt.wantProject || sa["token_uri"] != f.TokenURI() ||
				sa["client_email"] == "" {
				t.Errorf("service account = %v", sa)
			}
			block, _ := pem.Decode([]byte(sa["private_key"]))
			if block == nil {
				t.Fatal("private_key is not PEM")
			}
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if _, ok := k.(*rsa.PrivateKey); err != nil || !ok {
				t.Errorf("private_key = %T, %v; want an RSA key", k, err)
			}
		})
	}
}

// fakeTB stands in for a test's testing.TB so that its cleanups run, and its errors are seen, inside a test.
type fakeTB struct {
	testing.TB
	once     sync.Once
	mu       sync.Mutex
	cleanups []func()
	errors   []string
}

func newFakeTB(t *testing.T) *fakeTB {
	tb := &fakeTB{TB: t}
	t.Cleanup(tb.finish) // should the test stop early
	return tb
}

func (tb *fakeTB) Cleanup(f func()) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.cleanups = append(tb.cleanups, f)
}

func (tb *fakeTB) Errorf(format string, args ...any) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.errors = append(tb.errors, fmt.Sprintf(format, args...))
}

// finish runs the cleanups, last registered first, once.
func (tb *fakeTB) finish() {
	tb.once.Do(func() {
		for i := len(tb.cleanups) - 1; i >= 0; i-- {
			tb.cleanups[i]()
		}
	})
}

func sendURL(f *fcmtest.Server) string {
	return f.Endpoint() + "/projects/" + fcmtest.ProjectID + "/messages:send"
}

// mustSend posts sendBody with the right credentials.
func mustSend(tb testing.TB, f *fcmtest.Server) (int, http.Header, string) {
	tb.Helper()
	return mustPost(tb, sendURL(f), "Bearer "+fcmtest.AccessToken, "application/json", sendBody)
}

func mustPost(tb testing.TB, u, auth, contentType, body string) (int, http.Header, string) {
	tb.Helper()
	resp, err := post(context.Background(), u, auth, contentType, body)
	if err != nil {
		tb.Fatalf("POST %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("POST %s: read: %v", u, err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

func post(ctx context.Context, u, auth, contentType, body string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", contentType)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	return http.DefaultClient.Do(req)
}
