package api

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

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
