package api_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"testing"
	"time"
)

// streamOn opens the event stream of the login page at loginURL with c, as the page's EventSource does, and
// returns the answer, its events ("state pending", ...; closed at the answer's end) and the client end of
// the connection it came on.
func streamOn(t *testing.T, c *http.Client, loginURL string, closeAfter bool) (*http.Response, <-chan string, net.Addr) {
	t.Helper()
	var local net.Addr
	ctx := httptrace.WithClientTrace(t.Context(), &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { local = i.Conn.LocalAddr() }})
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, loginURL+"/events", nil)
	req.Close = closeAfter
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("event stream: %v", err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("event stream: %d", resp.StatusCode)
	}
	return resp, sseEvents(resp.Body), local
}

// approvedThenEnds approves the login showing number with ph and waits for the stream whose events are events
// to say "approved" after "pending", and then to end, with no further event.
func approvedThenEnds(t *testing.T, ph *phone, number int, events <-chan string) {
	t.Helper()
	wantEvent(t, events, "state pending", "first event")
	if _, err := ph.ApproveByNumber(t.Context(), number); err != nil {
		t.Fatal(err)
	}
	wantEvent(t, events, "state approved", "the approval")
	select {
	case ev, ok := <-events:
		if ok {
			t.Fatalf("the stream sent %q after its last state, want its end", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream did not end after the approval")
	}
}

// TestStreamConnectionServesTheNextPage: the login page's event stream ends with its answer's last chunk, not
// by closing its connection, so the browser's next request — the page with the Response, once the stream said
// "approved" — goes on the same connection, as on any kept-alive one. (Closing it cost every sign-in a
// connection set up and torn down.) The Response served there is whole and verifies.
func TestStreamConnectionServesTheNextPage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	jira, ph, b, waiting := e.jiraLogin(t)
	// Its own pool of connections, to see which one each request takes; one connection at most, so that the
	// page's request waits for the stream's connection to be idle (the transport puts it back once it read
	// the answer's end, on its own goroutine) instead of racing it with a new one.
	b.c.Transport = &http.Transport{MaxConnsPerHost: 1}
	number := waiting.number(t)
	resp, events, streamConn := streamOn(t, b.c, waiting.URL, false)
	if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" || resp.Close {
		t.Fatalf("stream answer: Transfer-Encoding %v, Connection close %v; want chunked and kept alive", resp.TransferEncoding, resp.Close)
	}
	approvedThenEnds(t, ph, number, events)

	var reused bool
	var pageConn net.Addr
	ctx := httptrace.WithClientTrace(t.Context(), &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		reused, pageConn = i.Reused, i.Conn.LocalAddr()
	}})
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, waiting.URL, nil)
	r, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	p := b.read(r)
	if !reused || pageConn.String() != streamConn.String() {
		t.Errorf("the page after the stream came on %v (reused %v), want the stream's connection %v", pageConn, reused, streamConn)
	}
	_, form, ok := p.form()
	if !ok || form.Get("SAMLResponse") == "" {
		t.Fatalf("the page after the approval has no Response form:\n%s", p.Body)
	}
	if _, err := e.sp(jira).RetrieveAssertionInfo(form.Get("SAMLResponse")); err != nil {
		t.Fatalf("the Response served on the stream's connection: %v", err)
	}
}

// TestStreamConnectionClosedWhenAsked: a browser that asks for its connection to be closed (Connection: close)
// gets an answer that ends by closing it, as before chunked streams.
func TestStreamConnectionClosedWhenAsked(t *testing.T) {
	t.Parallel()
	_, ph, b, waiting := jiraLogin(t)
	b.c.Transport = &http.Transport{}
	number := waiting.number(t)
	resp, events, _ := streamOn(t, b.c, waiting.URL, true)
	if !resp.Close || len(resp.TransferEncoding) != 0 {
		t.Fatalf("stream answer to Connection: close: Connection close %v, Transfer-Encoding %v; want close, not chunked", resp.Close, resp.TransferEncoding)
	}
	approvedThenEnds(t, ph, number, events)
}

// TestStreamPipelinedBytesNotServed: bytes a client sends on a stream's connection after its request (here a
// second request, sent at once) are not served when the stream ends: the connection is closed, not handed
// back with them or without them, so nothing on it is read as a request of someone else's making.
func TestStreamPipelinedBytesNotServed(t *testing.T) {
	t.Parallel()
	_, ph, b, waiting := jiraLogin(t)
	number := waiting.number(t)
	u, err := url.Parse(waiting.URL)
	if err != nil {
		t.Fatal(err)
	}
	var cookies []string
	for _, c := range b.c.Jar.Cookies(u) {
		cookies = append(cookies, c.Name+"="+c.Value)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	head := "GET " + u.Path + "/events HTTP/1.1\r\nHost: " + u.Host + "\r\nAccept: text/event-stream\r\nCookie: " + strings.Join(cookies, "; ") + "\r\n\r\n"
	second := "GET " + u.Path + " HTTP/1.1\r\nHost: " + u.Host + "\r\nCookie: " + strings.Join(cookies, "; ") + "\r\n\r\n"
	if _, err := io.WriteString(conn, head+second); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !resp.Close {
		t.Fatalf("stream with a request pipelined behind it: %d, Connection close %v; want 200 and close", resp.StatusCode, resp.Close)
	}
	approved := make(chan error, 1)
	go func() {
		time.Sleep(100 * time.Millisecond) // the stream is waiting
		_, err := ph.ApproveByNumber(context.WithoutCancel(t.Context()), number)
		approved <- err
	}()
	rest, err := io.ReadAll(resp.Body) // to the connection's end
	if aerr := <-approved; aerr != nil {
		t.Fatal(aerr)
	}
	if err != nil {
		t.Fatalf("reading the stream to its end: %v", err)
	}
	if !strings.Contains(string(rest), "data: approved") || strings.Contains(string(rest), "HTTP/1.1") {
		t.Fatalf("the stream sent %q; want the approval, then the connection closed with no second answer", rest)
	}
}
