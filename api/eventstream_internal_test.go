package api

import (
	"bufio"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/winkk/passport/authn"
)

// TestHubWaitsForServe: a stream subscribes to its login before the login is read and the stream served, so
// a message can come first. It only marks the stream: no worker writes to a stream without a connection
// (that crashed the server under load), and once served the stream sends what the message said.
func TestHubWaitsForServe(t *testing.T) {
	s := &Server{}
	s.cfg.Clock = time.Now
	h := newHub(s)
	ended := make(chan struct{})
	st := &eventStream{id: "aaaaaaaaaaaaaaaaaaaaaaaaaa", stop: func() {}, release: func() {}, done: ended}
	msg := authn.LoginChange{State: authn.StateApproved, ExpiresAt: time.Now().Add(time.Minute)}.String()
	st.news.Store(&msg)
	h.mark(st)
	if !st.dirty.Load() || st.queued.Load() {
		t.Fatalf("a stream not yet served: dirty %v, queued %v; want marked and not queued", st.dirty.Load(), st.queued.Load())
	}

	server, client := net.Pipe()
	defer client.Close()
	st.conn = server
	h.add(st)
	st.live.Store(true)
	h.mark(st) // as serve does
	_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(client)
	var got []string
	for len(got) < 2 {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the stream: %v (so far %q)", err, got)
		}
		if line = strings.TrimSpace(line); line != "" {
			got = append(got, line)
		}
	}
	if got[0] != "event: state" || got[1] != "data: approved" {
		t.Fatalf("the served stream sent %q, want the state the message said", got)
	}
	select { // an approved login no longer waits: the stream ends
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream of an approved login did not end")
	}
}

// hijackable is a response writer whose connection can be taken over, as net/http's is: the test holds the
// other end.
type hijackable struct {
	*httptest.ResponseRecorder
	conn net.Conn
}

func (w hijackable) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return w.conn, bufio.NewReadWriter(bufio.NewReader(w.conn), bufio.NewWriter(w.conn)), nil
}

// TestStreamAnswerInOneWrite: a stream taken over from net/http writes its status line, headers and first
// event in one write. Written header by header on the bare connection they took four system calls a line,
// some thirty for every waiting page. A net.Pipe hands each write to one read, so one read sees them all.
func TestStreamAnswerInOneWrite(t *testing.T) {
	s := &Server{}
	s.cfg.Clock = time.Now
	h := newHub(s)
	st := &eventStream{id: "aaaaaaaaaaaaaaaaaaaaaaaaaa", stop: func() {}, release: func() {}}
	msg := authn.LoginChange{State: authn.StatePending, ExpiresAt: time.Now().Add(time.Minute)}.String()
	st.news.Store(&msg)
	server, client := net.Pipe()
	defer client.Close()
	c := echo.New().NewContext(httptest.NewRequest(http.MethodGet, "/login/x/events", nil), hijackable{httptest.NewRecorder(), server})
	c.Response().Header().Set("X-Content-Type-Options", "nosniff")
	if err := h.serve(c, st); err != nil {
		t.Fatal(err)
	}
	defer h.end(st)
	_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64<<10)
	n, err := client.Read(buf)
	if err != nil {
		t.Fatalf("reading the stream: %v", err)
	}
	got := string(buf[:n])
	for _, want := range []string{"HTTP/1.1 200 OK\r\n", "Content-Type: text/event-stream\r\n", "X-Content-Type-Options: nosniff\r\n", "\r\n\r\nevent: state\ndata: pending\n\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("the stream's first write is %q, want it to hold %q", got, want)
		}
	}
	if !strings.HasPrefix(got, "HTTP/1.1 200 OK\r\n") || !strings.HasSuffix(got, "data: pending\n\n") {
		t.Errorf("the stream's first write is %q, want the whole answer's head and its first event", got)
	}
}
