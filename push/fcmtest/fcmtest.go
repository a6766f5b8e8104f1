// Package fcmtest runs a fake FCM HTTP v1 server and OAuth token endpoint on loopback, for tests that drive
// the real Firebase Admin SDK (through PASSPORT_FCM_ENDPOINT / push.FCMConfig.Endpoint) without leaving the
// machine. It records every message it receives and answers as scripted: with FCM's real error bodies
// (the Body* constants), with a hang that lasts until the client gives up, or with a refused access token.
// It is the one fake FCM of the repository: push's own tests and benchmarks use it, and so do api's.
package fcmtest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// ProjectID is the Firebase project of the credentials the fake issues; sends to any other project are
// answered 401.
const ProjectID = "passport-test"

// AccessToken is the OAuth access token the fake hands out and then requires.
const AccessToken = "ya29.fake-access-token"

// Real FCM HTTP v1 error bodies, as FCM sends them (firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode
// and answers quoted in firebase-admin-* issues). Use them with Fail.
const (
	// BodyUnregistered (404): the app instance is gone; the token is dead.
	BodyUnregistered = `{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND",` +
		`"details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}`
	// BodyNotFoundNoFCM (404) carries no FcmError detail, so it says nothing about the token.
	BodyNotFoundNoFCM = `{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND"}}`
	// BodyInvalidToken (400): the registration token is malformed.
	BodyInvalidToken = `{"error":{"code":400,"message":"The registration token is not a valid FCM registration token",` +
		`"status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"INVALID_ARGUMENT"}]}}`
	// BodyInvalidTokenField (400) names message.token in a BadRequest field violation.
	BodyInvalidTokenField = `{"error":{"code":400,"message":"Request contains an invalid argument.","status":"INVALID_ARGUMENT",` +
		`"details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"INVALID_ARGUMENT"},` +
		`{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"message.token","description":"Invalid registration token"}]}]}}`
	// BodyInvalidTTL (400) is an invalid argument that is not about the token.
	BodyInvalidTTL = `{"error":{"code":400,"message":"Invalid value at 'message.android.ttl' (type.googleapis.com/google.protobuf.Duration), Field 'ttl', Illegal duration format; duration must end with 's'",` +
		`"status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"message.android.ttl","description":"Invalid value"}]}]}}`
	// BodySenderMismatch (403): the token belongs to another sender.
	BodySenderMismatch = `{"error":{"code":403,"message":"SenderId mismatch","status":"PERMISSION_DENIED",` +
		`"details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"SENDER_ID_MISMATCH"}]}}`
	// BodyThirdPartyAuth (401): APNs or Web Push refused the project's credentials.
	BodyThirdPartyAuth = `{"error":{"code":401,"message":"Auth error from APNS or Web Push Service","status":"UNAUTHENTICATED",` +
		`"details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"THIRD_PARTY_AUTH_ERROR"}]}}`
	// BodyQuota (429) with FCM's QUOTA_EXCEEDED detail.
	BodyQuota = `{"error":{"code":429,"message":"Quota exceeded for quota metric 'Send requests' and limit 'Send requests per minute' of service 'fcm.googleapis.com' for consumer 'project_number:1234567890'.",` +
		`"status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"QUOTA_EXCEEDED"},` +
		`{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"subject":"projects/` + ProjectID + `","description":"Device message rate exceeded."}]}]}}`
	// BodyRateLimitNoFCM (429) is Google's generic rate limit, without an FcmError detail.
	BodyRateLimitNoFCM = `{"error":{"code":429,"message":"Quota exceeded for quota metric 'Send requests' and limit 'Send requests per minute' of service 'fcm.googleapis.com' for consumer 'project_number:1234567890'.",` +
		`"status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"RATE_LIMIT_EXCEEDED","domain":"googleapis.com",` +
		`"metadata":{"quota_metric":"fcm.googleapis.com/send_requests","service":"fcm.googleapis.com","quota_limit":"SendsPerMinutePerProject"}}]}}`
	// BodyUnavailable (503): FCM is overloaded.
	BodyUnavailable = `{"error":{"code":503,"message":"The service is currently unavailable.","status":"UNAVAILABLE",` +
		`"details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNAVAILABLE"}]}}`
	// BodyInternal (500): FCM failed.
	BodyInternal = `{"error":{"code":500,"message":"Internal error encountered.","status":"INTERNAL",` +
		`"details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"INTERNAL"}]}}`
	// BodyBadGatewayHTML (502) is the HTML page Google's front end serves; send it as text/html.
	BodyBadGatewayHTML = `<!DOCTYPE html><html lang=en><title>Error 502 (Server Error)!!1</title><p><b>502.</b> That’s an error.`
)

// Message is the JSON body FCM received, as FCM documents it.
type Message struct {
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
	// Raw is the whole body, for checks on fields the struct does not name.
	Raw map[string]any `json:"-"`
}

// Reply is one scripted answer, to a send or (with ScriptToken) to a token request.
type Reply struct {
	Status int
	Header map[string]string // Content-Type defaults to JSON
	Body   string
	// Hang blocks until the client gives up, then signals Aborted. Should the test end first, the
	// connection is cut so that the server can close.
	Hang bool
}

// OK is FCM's answer to an accepted message.
var OK = Reply{Status: http.StatusOK, Body: `{"name":"projects/` + ProjectID + `/messages/0:1"}`}

// TokenOK is the token endpoint's answer to a well-formed JWT-bearer grant: AccessToken for an hour.
var TokenOK = Reply{Status: http.StatusOK, Body: `{"access_token":"` + AccessToken + `","token_type":"Bearer","expires_in":3600}`}

// Fail is an error reply with the given status and body; header holds key, value pairs
// (Fail(429, BodyQuota, "Retry-After", "7")). It panics on an odd number of header strings.
func Fail(status int, body string, header ...string) Reply {
	if len(header)%2 != 0 {
		panic("fcmtest: Fail needs header key, value pairs")
	}
	r := Reply{Status: status, Body: body, Header: map[string]string{}}
	for i := 0; i < len(header); i += 2 {
		r.Header[header[i]] = header[i+1]
	}
	return r
}

// Sequence answers the n-th message with replies[n-1], repeating the last one; with no replies it answers OK.
func Sequence(replies ...Reply) func(int, Message) Reply {
	if len(replies) == 0 {
		replies = []Reply{OK}
	}
	return func(n int, _ Message) Reply { return replies[max(1, min(n, len(replies)))-1] }
}

// Server is the fake. Its zero value is not usable: call New. Its methods are safe for concurrent use;
// configure it (Script, ScriptToken, OnSend, NoStore) before or between sends.
type Server struct {
	srv *httptest.Server
	// Sent receives a copy of every message the fake accepted for processing (buffered; a full buffer drops).
	Sent chan Message

	aborted chan struct{}
	done    chan struct{} // closed when the test ends: hanging handlers cut their connection

	mu         sync.Mutex
	reply      func(n int, m Message) Reply
	tokenReply func(n int) Reply
	onSend     func(Message)
	noStore    bool
	sends      []Message
	sendCount  int
	tokenCount int
	unexpected []string
}

// New starts a fake that issues AccessToken and answers OK to every message. It stops when tb ends, and
// then fails tb if any request went to a path FCM does not serve (see Unexpected).
func New(tb testing.TB) *Server {
	tb.Helper()
	f := &Server{
		Sent:       make(chan Message, 256),
		aborted:    make(chan struct{}, 256),
		done:       make(chan struct{}),
		reply:      Sequence(OK),
		tokenReply: func(int) Reply { return TokenOK },
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", f.token)
	mux.HandleFunc("POST /v1/projects/{project}/messages:send", f.send)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.unexpected = append(f.unexpected, r.Method+" "+r.URL.Path)
		f.mu.Unlock()
		http.NotFound(w, r)
	})
	f.srv = httptest.NewServer(mux)
	tb.Cleanup(func() {
		close(f.done)
		f.srv.Close()
		if u := f.Unexpected(); len(u) > 0 {
			tb.Errorf("fake FCM got unexpected requests: %v", u)
		}
	})
	return f
}

// Endpoint is the FCM v1 base URL to configure (…/v1).
func (f *Server) Endpoint() string { return f.srv.URL + "/v1" }

// TokenURI is the OAuth token endpoint the credentials point at.
func (f *Server) TokenURI() string { return f.srv.URL + "/token" }

// Script makes the fake answer the n-th message (1-based, counting every send since New) with reply(n, m).
// reply runs on the request's goroutine, concurrently with other sends.
func (f *Server) Script(reply func(n int, m Message) Reply) {
	f.mu.Lock()
	f.reply = reply
	f.mu.Unlock()
}

// ScriptToken makes the fake answer the n-th well-formed token request (1-based) with reply(n) instead of
// TokenOK; nil restores TokenOK. A malformed grant is answered 400 invalid_request whatever the script.
func (f *Server) ScriptToken(reply func(n int) Reply) {
	if reply == nil {
		reply = func(int) Reply { return TokenOK }
	}
	f.mu.Lock()
	f.tokenReply = reply
	f.mu.Unlock()
}

// OnSend makes the fake call hook with every accepted message after recording it and before answering, on
// the request's goroutine; a hook that blocks holds that answer back. nil removes the hook.
func (f *Server) OnSend(hook func(Message)) {
	f.mu.Lock()
	f.onSend = hook
	f.mu.Unlock()
}

// NoStore stops the fake keeping messages, for benchmarks: Received returns only those kept before, while
// Attempts, Sent, OnSend and Script go on as before.
func (f *Server) NoStore() {
	f.mu.Lock()
	f.noStore = true
	f.mu.Unlock()
}

// Aborted receives one value for every hanging reply whose client gave up (buffered).
func (f *Server) Aborted() <-chan struct{} { return f.aborted }

// Attempts is the number of authorised, well-formed send requests received.
func (f *Server) Attempts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sendCount
}

// Received returns every message received so far (see NoStore).
func (f *Server) Received() []Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Message(nil), f.sends...)
}

// TokenFetches is the number of access-token requests received, well-formed or not.
func (f *Server) TokenFetches() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tokenCount
}

// Unexpected lists the requests ("METHOD /path") that went to neither the send nor the token endpoint.
func (f *Server) Unexpected() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.unexpected...)
}

func (f *Server) token(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.tokenCount++
	n := f.tokenCount
	reply := f.tokenReply
	f.mu.Unlock()
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" ||
		r.PostForm.Get("assertion") == "" {
		http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
		return
	}
	f.answer(w, r, reply(n), "application/json")
}

func (f *Server) send(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("project") != ProjectID || r.Header.Get("Authorization") != "Bearer "+AccessToken {
		http.Error(w, `{"error":{"code":401,"status":"UNAUTHENTICATED"}}`, http.StatusUnauthorized)
		return
	}
	var m Message
	b, err := io.ReadAll(r.Body)
	if err == nil {
		err = json.Unmarshal(b, &m)
	}
	if err == nil {
		err = json.Unmarshal(b, &m.Raw)
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
	reply, onSend := f.reply, f.onSend
	f.mu.Unlock()
	select {
	case f.Sent <- m:
	default:
	}
	if onSend != nil {
		onSend(m)
	}
	f.answer(w, r, reply(n, m), "application/json; charset=UTF-8")
}

// answer writes rep, or hangs until the client gives up (signalling Aborted) or the test ends.
func (f *Server) answer(w http.ResponseWriter, r *http.Request, rep Reply, contentType string) {
	if rep.Hang {
		select {
		case <-r.Context().Done():
			select {
			case f.aborted <- struct{}{}:
			case <-f.done:
			}
			return
		case <-f.done:
			panic(http.ErrAbortHandler) // cut the connection: the server is closing under a client still waiting
		}
	}
	for k, v := range rep.Header {
		w.Header().Set(k, v)
	}
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", contentType)
	}
	w.WriteHeader(rep.Status)
	_, _ = io.WriteString(w, rep.Body)
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

// CredentialsFile writes a service-account JSON for ProjectID whose token_uri is the fake's token endpoint,
// so the SDK fetches its access token here; nothing leaves the machine. It returns the file's path.
func (f *Server) CredentialsFile(tb testing.TB) string {
	tb.Helper()
	return f.CredentialsFileFor(tb, ProjectID)
}

// CredentialsFileFor is CredentialsFile with the given project_id ("" leaves the file without one). The
// fake still serves only ProjectID, so another id is for tests of configuration, not of sending.
func (f *Server) CredentialsFileFor(tb testing.TB, projectID string) string {
	tb.Helper()
	key, err := testKeyPEM()
	if err != nil {
		tb.Fatalf("fcmtest: generate key: %v", err)
	}
	sa := map[string]string{
		"type":           "service_account",
		"project_id":     projectID,
		"private_key_id": "test-key-1",
		"private_key":    string(key),
		"client_email":   "passport-push@" + ProjectID + ".iam.gserviceaccount.com",
		"client_id":      "100000000000000000001",
		"token_uri":      f.TokenURI(),
	}
	b, err := json.Marshal(sa)
	if err != nil {
		tb.Fatalf("fcmtest: credentials: %v", err)
	}
	p := filepath.Join(tb.TempDir(), "credentials.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		tb.Fatalf("fcmtest: credentials: %v", err)
	}
	return p
}
