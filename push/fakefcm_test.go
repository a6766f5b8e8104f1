package push

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Real FCM HTTP v1 error bodies (firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode and
// answers quoted in firebase-admin-* issues).
const (
	bodyUnregistered = `{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND",` +
		`"details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}`
	bodyNotFoundNoFcm = `{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND"}}`
	bodyInvalidToken  = `{"error":{"code":400,"message":"The registration token is not a valid FCM registration token",` +
		`"status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"INVALID_ARGUMENT"}]}}`
	bodyInvalidTokenField = `{"error":{"code":400,"message":"Request contains an invalid argument.","status":"INVALID_ARGUMENT",` +
		`"details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"INVALID_ARGUMENT"},` +
		`{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"message.token","description":"Invalid registration token"}]}]}}`
	bodyInvalidTTL = `{"error":{"code":400,"message":"Invalid value at 'message.android.ttl' (type.googleapis.com/google.protobuf.Duration), Field 'ttl', Illegal duration format; duration must end with 's'",` +
		`"status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"message.android.ttl","description":"Invalid value"}]}]}}`
	bodySenderMismatch = `{"error":{"code":403,"message":"SenderId mismatch","status":"PERMISSION_DENIED",` +
		`"details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"SENDER_ID_MISMATCH"}]}}`
	bodyThirdPartyAuth = `{"error":{"code":401,"message":"Auth error from APNS or Web Push Service","status":"UNAUTHENTICATED",` +
		`"details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"THIRD_PARTY_AUTH_ERROR"}]}}`
	bodyQuota = `{"error":{"code":429,"message":"Quota exceeded for quota metric 'Send requests' and limit 'Send requests per minute' of service 'fcm.googleapis.com' for consumer 'project_number:1234567890'.",` +
		`"status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"QUOTA_EXCEEDED"},` +
		`{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"subject":"projects/passport-test","description":"Device message rate exceeded."}]}]}}`
	bodyRateLimitNoFcm = `{"error":{"code":429,"message":"Quota exceeded for quota metric 'Send requests' and limit 'Send requests per minute' of service 'fcm.googleapis.com' for consumer 'project_number:1234567890'.",` +
		`"status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"RATE_LIMIT_EXCEEDED","domain":"googleapis.com",` +
		`"metadata":{"quota_metric":"fcm.googleapis.com/send_requests","service":"fcm.googleapis.com","quota_limit":"SendsPerMinutePerProject"}}]}}`
	bodyUnavailable = `{"error":{"code":503,"message":"The service is currently unavailable.","status":"UNAVAILABLE",` +
		`"details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNAVAILABLE"}]}}`
	bodyInternal = `{"error":{"code":500,"message":"Internal error encountered.","status":"INTERNAL",` +
		`"details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"INTERNAL"}]}}`
	bodyBadGatewayHTML = `<!DOCTYPE html><html lang=en><title>Error 502 (Server Error)!!1</title><p><b>502.</b> That’s an error.`
)

const (
	testProject     = "passport-test"
	testAccessToken = "ya29.fake-access-token"
)

// reply is one scripted answer of the fake FCM server.
type reply struct {
	status int
	header map[string]string
	body   string
	hang   bool // block until the client gives up
}

var okReply = reply{status: http.StatusOK, body: `{"name":"projects/passport-test/messages/0:1"}`}

func fail(status int, body string, header ...string) reply {
	r := reply{status: status, body: body, header: map[string]string{}}
	for i := 0; i+1 < len(header); i += 2 {
		r.header[header[i]] = header[i+1]
	}
	return r
}

// script answers the n-th send (1-based) with replies[n-1], repeating the last one.
func script(replies ...reply) func(int, sentMessage) reply {
	return func(n int, _ sentMessage) reply { return replies[min(n, len(replies))-1] }
}

// sentMessage is the JSON body FCM received, as FCM documents it.
type sentMessage struct {
	Message struct {
		Token        string            `json:"token"`
		Data         map[string]string `json:"data"`
		Notification map[string]any    `json:"notification"`
		Android      struct {
			Priority     string         `json:"priority"`
			TTL          string         `json:"ttl"`
			Notification map[string]any `json:"notification"`
		} `json:"android"`
		APNS struct {
			Headers map[string]string `json:"headers"`
			Payload struct {
				Aps map[string]any `json:"aps"`
			} `json:"payload"`
		} `json:"apns"`
	} `json:"message"`
	raw map[string]any
}

// fakeFCM is an FCM HTTP v1 server plus an OAuth token endpoint on loopback.
type fakeFCM struct {
	srv     *httptest.Server
	reply   func(n int, m sentMessage) reply
	noStore bool // benchmarks: count, do not keep bodies

	mu          sync.Mutex
	sends       []sentMessage
	sendCount   int
	tokenCount  int
	tokenReply  *reply
	aborted     chan struct{}     // one value per hanging request the client abandoned
	onSend      func(sentMessage) // called before replying, outside mu
	badRequests []string
}

func newFakeFCM(tb testing.TB) *fakeFCM {
	tb.Helper()
	f := &fakeFCM{reply: script(okReply), aborted: make(chan struct{}, 64)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", f.token)
	mux.HandleFunc("POST /v1/projects/{project}/messages:send", f.send)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.badRequests = append(f.badRequests, r.Method+" "+r.URL.Path)
		f.mu.Unlock()
		http.NotFound(w, r)
	})
	f.srv = httptest.NewServer(mux)
	tb.Cleanup(func() {
		f.srv.Close()
		if len(f.badRequests) > 0 {
			tb.Errorf("fake FCM got unexpected requests: %v", f.badRequests)
		}
	})
	return f
}

func (f *fakeFCM) token(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.tokenCount++
	tr := f.tokenReply
	f.mu.Unlock()
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" ||
		r.PostForm.Get("assertion") == "" {
		http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if tr != nil {
		w.WriteHeader(tr.status)
		io.WriteString(w, tr.body)
		return
	}
	fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":3600}`, testAccessToken)
}

func (f *fakeFCM) send(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("project") != testProject || r.Header.Get("Authorization") != "Bearer "+testAccessToken {
		http.Error(w, `{"error":{"code":401,"status":"UNAUTHENTICATED"}}`, http.StatusUnauthorized)
		return
	}
	var m sentMessage
	b, err := io.ReadAll(r.Body)
	if err == nil {
		err = json.Unmarshal(b, &m)
	}
	if err == nil {
		err = json.Unmarshal(b, &m.raw)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.sendCount++
	n := f.sendCount
	if !f.noStore {
		f.sends = append(f.sends, m)
	}
	onSend := f.onSend
	f.mu.Unlock()
	if onSend != nil {
		onSend(m)
	}

	rep := f.reply(n, m)
	if rep.hang {
		<-r.Context().Done()
		f.aborted <- struct{}{}
		return
	}
	for k, v := range rep.header {
		w.Header().Set(k, v)
	}
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	}
	w.WriteHeader(rep.status)
	io.WriteString(w, rep.body)
}

func (f *fakeFCM) endpoint() string { return f.srv.URL + "/v1" }

func (f *fakeFCM) attempts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sendCount
}

func (f *fakeFCM) received() []sentMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]sentMessage(nil), f.sends...)
}

func (f *fakeFCM) tokenFetches() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tokenCount
}

var testKeyPEM = sync.OnceValues(func() ([]byte, error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
})

// mustCredentials writes a service-account JSON whose token_uri is tokenURI, so the SDK fetches
// its access token from the fake server; nothing leaves the machine.
func mustCredentials(tb testing.TB, tokenURI, projectID string) string {
	tb.Helper()
	key, err := testKeyPEM()
	if err != nil {
		tb.Fatalf("generate key: %v", err)
	}
	sa := map[string]string{
		"type":           "service_account",
		"project_id":     projectID,
		"private_key_id": "test-key-1",
		"private_key":    string(key),
		"client_email":   "passport-push@" + testProject + ".iam.gserviceaccount.com",
		"client_id":      "100000000000000000001",
		"token_uri":      tokenURI,
	}
	return mustWriteJSON(tb, sa)
}

func mustWriteJSON(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	p := filepath.Join(tb.TempDir(), "credentials.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

// fakeClock is FCMConfig's Now and Sleep: sleeping advances time and is recorded.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_800_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.sleeps = append(c.sleeps, d)
	return nil
}

func (c *fakeClock) slept() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// testConfig is a config for fake with tiny backoffs and a fake clock.
func testConfig(tb testing.TB, fake *fakeFCM, clock *fakeClock) FCMConfig {
	tb.Helper()
	return FCMConfig{
		CredentialsFile: mustCredentials(tb, fake.srv.URL+"/token", testProject),
		Endpoint:        fake.endpoint(),
		SendTimeout:     5 * time.Second,
		MaxAttempts:     3,
		Backoff:         100 * time.Millisecond,
		MaxBackoff:      10 * time.Second,
		QuotaBackoff:    time.Second,
		Now:             clock.Now,
		Sleep:           clock.Sleep,
	}
}

// mustFCM builds an FCM sender with exact (unjittered) backoffs.
func mustFCM(tb testing.TB, cfg FCMConfig, opts ...Option) *FCM {
	tb.Helper()
	f, err := NewFCM(context.Background(), cfg, opts...)
	if err != nil {
		tb.Fatalf("NewFCM: %v", err)
	}
	f.jitter = func(d time.Duration) time.Duration { return d }
	return f
}

func testMessage(token string) Message {
	return Message{
		Token:       token,
		ChallengeID: "ch_7Qm2xkP4",
		Title:       "Sign-in request",
		Body:        "Open Passport to review a sign-in",
		TTL:         5 * time.Minute,
	}
}
