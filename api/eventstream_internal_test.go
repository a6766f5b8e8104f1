package api

import (
	"bufio"
	"io"
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
	got := readOnce(t, client)
	for _, want := range []string{"HTTP/1.1 200 OK\r\n", "Content-Type: text/event-stream\r\n", "X-Content-Type-Options: nosniff\r\n", "\r\n\r\nevent: state\ndata: pending\n\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("the stream's first write is %q, want it to hold %q", got, want)
		}
	}
	if !strings.HasPrefix(got, "HTTP/1.1 200 OK\r\n") || !strings.HasSuffix(got, "data: pending\n\n") {
		t.Errorf("the stream's first write is %q, want the whole answer's head and its first event", got)
	}
}

// readOnce returns what one read of c gets: one write of the other end (net.Pipe; TCP on loopback for a
// write of less than a segment).
func readOnce(t *testing.T, c net.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64<<10)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("reading the stream: %v", err)
	}
	return string(buf[:n])
}

// TestChunkedStreamHandsConnectionBack: a stream on a connection of a Server.Listener writes its answer in
// chunks; its last event goes out with the last chunk, in one write, and the connection is then handed back:
// the listener's Accept returns it for net/http to serve the browser's next request. Closing the listener
// closes a connection handed back and not yet taken.
func TestChunkedStreamHandsConnectionBack(t *testing.T) {
	s := &Server{}
	s.cfg.Clock = time.Now
	h := newHub(s)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rl := s.Listener(ln).(*reuseListener)
	defer rl.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	conn, err := rl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := conn.(*homeConn); !ok {
		t.Fatalf("Accept returned a %T, want a connection that can be handed back", conn)
	}

	ended := make(chan struct{})
	st := &eventStream{id: "aaaaaaaaaaaaaaaaaaaaaaaaaa", stop: func() {}, release: func() { close(ended) }}
	msg := authn.LoginChange{State: authn.StateApproved, ExpiresAt: time.Now().Add(time.Minute)}.String()
	st.news.Store(&msg)
	c := echo.New().NewContext(httptest.NewRequest(http.MethodGet, "/login/x/events", nil), hijackable{httptest.NewRecorder(), conn})
	if err := h.serve(c, st); err != nil {
		t.Fatal(err)
	}
	got := readOnce(t, client)
	if !strings.HasPrefix(got, "HTTP/1.1 200 OK\r\n") || !strings.Contains(got, "Transfer-Encoding: chunked\r\n") ||
		strings.Contains(got, "Connection: close") || !strings.HasSuffix(got, "\r\n\r\n1d\r\nevent: state\ndata: approved\n\n\r\n0\r\n\r\n") {
		t.Fatalf("the stream's one write is %q, want the head (chunked, kept alive), the approval as a chunk and the last chunk", got)
	}
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(got)), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil || string(body) != "event: state\ndata: approved\n\n" {
		t.Fatalf("the answer as an HTTP client reads it: %q, %v", body, err)
	}
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream of an approved login did not end")
	}
	again := make(chan net.Conn, 1)
	go func() {
		c, _ := rl.Accept()
		again <- c
	}()
	select {
	case c := <-again:
		if c != conn {
			t.Fatalf("Accept returned %v, want the stream's connection handed back", c)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream's connection was not handed back")
	}

	// Handed back again and not taken: closing the listener closes it.
	if !rl.giveBack(conn.(*homeConn)) {
		t.Fatal("giveBack refused on an open listener")
	}
	if err := rl.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("after the listener closed, the waiting connection reads %v, want EOF", err)
	}
	if rl.giveBack(conn.(*homeConn)) {
		t.Error("giveBack accepted a connection on a closed listener")
	}
	if _, err := rl.Accept(); err == nil {
		t.Error("Accept on a closed listener succeeded")
	}
}

// TestGoneThroughWrapper: the probe for a browser that left sees through a Server.Listener's wrapper, also of
// a connection without a descriptor (it reads with a short deadline there): open is not gone, closed is.
func TestGoneThroughWrapper(t *testing.T) {
	server, client := net.Pipe()
	defer server.Close()
	c := &homeConn{Conn: server}
	if gone(c) {
		t.Fatal("an open connection's browser is reported gone")
	}
	client.Close()
	if !gone(c) {
		t.Fatal("a closed connection's browser is not reported gone")
	}
}
