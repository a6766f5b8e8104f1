// Package fcmtest runs a fake FCM HTTP v1 server and OAuth token endpoint on loopback, for tests that drive
// the real Firebase Admin SDK (through PASSPORT_FCM_ENDPOINT / push.FCMConfig.Endpoint) without leaving the
// machine. It records every message it receives and answers as scripted.
package fcmtest

import (
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
)

// ProjectID is the Firebase project of the credentials the fake issues.
const ProjectID = "passport-test"

// AccessToken is the OAuth access token the fake hands out and then requires.
const AccessToken = "ya29.fake-access-token"

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

// Reply is one scripted answer.
type Reply struct {
	Status int
	Header map[string]string
	Body   string
	Hang   bool // block until the client gives up
}

// OK is FCM's answer to an accepted message.
var OK = Reply{Status: http.StatusOK, Body: `{"name":"projects/passport-test/messages/0:1"}`}

// Server is the fake. Its zero value is not usable: call New.
type Server struct {
	srv *httptest.Server
	// Sent receives a copy of every message the fake accepted for processing (buffered; a full buffer drops).
	Sent chan Message

	mu         sync.Mutex
	reply      func(n int, m Message) Reply
	sends      []Message
	sendCount  int
	tokenCount int
	unexpected []string
}

// New starts a fake that answers OK to every message; it stops when tb ends.
func New(tb testing.TB) *Server {
	tb.Helper()
	f := &Server{reply: func(int, Message) Reply { return OK }, Sent: make(chan Message, 256)}
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
		f.srv.Close()
		if len(f.unexpected) > 0 {
			tb.Errorf("fake FCM got unexpected requests: %v", f.unexpected)
		}
	})
	return f
}

// Endpoint is the FCM v1 base URL to configure (…/v1).
func (f *Server) Endpoint() string { return f.srv.URL + "/v1" }

// TokenURI is the OAuth token endpoint the credentials point at.
func (f *Server) TokenURI() string { return f.srv.URL + "/token" }

// Script makes the fake answer the n-th message (1-based) with reply(n, m).
func (f *Server) Script(reply func(n int, m Message) Reply) {
	f.mu.Lock()
	f.reply = reply
	f.mu.Unlock()
}

// Sequence answers the n-th message with replies[n-1], repeating the last one.
func Sequence(replies ...Reply) func(int, Message) Reply {
	return func(n int, _ Message) Reply { return replies[min(n, len(replies))-1] }
}

// Attempts is the number of send requests received.
func (f *Server) Attempts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sendCount
}

// Received returns every message received so far.
func (f *Server) Received() []Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Message(nil), f.sends...)
}

// TokenFetches is the number of access-token requests received.
func (f *Server) TokenFetches() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tokenCount
}

func (f *Server) token(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.tokenCount++
	f.mu.Unlock()
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" ||
		r.PostForm.Get("assertion") == "" {
		http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":3600}`, AccessToken)
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
	f.sends = append(f.sends, m)
	reply := f.reply
	f.mu.Unlock()
	select {
	case f.Sent <- m:
	default:
	}
	rep := reply(n, m)
	if rep.Hang {
		<-r.Context().Done()
		return
	}
	for k, v := range rep.Header {
		w.Header().Set(k, v)
	}
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
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

// CredentialsFile writes a service-account JSON whose token_uri is the fake's token endpoint, so the SDK
// fetches its access token here; nothing leaves the machine. It returns the file's path.
func (f *Server) CredentialsFile(tb testing.TB) string {
	tb.Helper()
	key, err := testKeyPEM()
	if err != nil {
		tb.Fatalf("fcmtest: generate key: %v", err)
	}
	sa := map[string]string{
		"type":           "service_account",
		"project_id":     ProjectID,
		"private_key_id": "test-key-1",
		"private_key":    string(key),
		"client_email":   "passport-push@" + ProjectID + ".iam.gserviceaccount.com",
		"client_id":      "100000000000000000001",
		"token_uri":      f.TokenURI(),
	}
	b, err := json.Marshal(sa)
	if err != nil {
		tb.Fatal(err)
	}
	p := filepath.Join(tb.TempDir(), "credentials.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}
