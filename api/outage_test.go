package api_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/winkk/passport/api/apitest"
	"github.com/winkk/passport/api/deviceapi"
	"github.com/winkk/passport/store/storetest"
)

// cutProxy is a TCP proxy to a Redis server that can be cut (every connection closed, new ones closed at
// once) and restored, as a store outage looks to the server.
type cutProxy struct {
	addr string
	mu   sync.Mutex
	cut  bool
	open []net.Conn
}

func newCutProxy(t *testing.T, upstream string) *cutProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{addr: l.Addr().String()}
	t.Cleanup(func() { l.Close(); p.setCut(true) })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.cut {
				p.mu.Unlock()
				c.Close()
				continue
			}
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				p.mu.Unlock()
				c.Close()
				continue
			}
			p.open = append(p.open, c, u)
			p.mu.Unlock()
			go func() { io.Copy(u, c); u.Close() }()
			go func() { io.Copy(c, u); c.Close() }()
		}
	}()
	return p
}

func (p *cutProxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for _, c := range p.open {
			c.Close()
		}
		p.open = nil
	}
}

// TestStoreOutageDuringLogin: while the store is out of reach, a waiting login page is not told its login is
// gone, and the page it reloads to retries by itself; once the store is back, the phone's approval reaches
// the browser.
func TestStoreOutageDuringLogin(t *testing.T) {
	redisURL, ok := storetest.RedisURL()
	if !ok {
		if os.Getenv("CI") == "true" {
			t.Fatal("no Redis to put behind a proxy (required when CI=true)")
		}
		t.Skip("no Redis server to put behind a proxy")
	}
	u, err := url.Parse(redisURL)
	if err != nil || u.Scheme != "redis" {
		t.Skipf("cannot proxy %s", redisURL)
	}
	proxy := newCutProxy(t, u.Host)
	proxied := *u
	proxied.Host = proxy.addr
	e := envOf(t, apitest.StartOn(t, storetest.OpenURL(t, proxied.String())))
	app := e.newApp("Jira", atlassianAudience, acsURL)
	ph := e.enroll(employee)
	b := newBrowser(t)
	waiting := b.identify(b.startLogin(e.sp(app), ""), employee)
	number := waiting.number(t)
	ch := ph.waitChallenge(t)

	// The page's event stream.
	req, _ := http.NewRequest("GET", waiting.URL+"/events", nil)
	resp, err := b.c.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("event stream: %v %v", resp, err)
	}
	defer resp.Body.Close()
	events := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		event := ""
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "event: "); ok {
				event = v
			} else if v, ok := strings.CutPrefix(line, "data: "); ok {
				events <- event + " " + v
			}
		}
		close(events)
	}()
	if ev := <-events; ev != "state pending" {
		t.Fatalf("first event %q", ev)
	}

	proxy.setCut(true)
	if p := b.get(waiting.URL); p.Status < 500 || p.Header.Get("Refresh") == "" || !strings.Contains(p.Body, "tries again by itself") {
		t.Errorf("the login page during the outage: %d, Refresh %q:\n%s", p.Status, p.Header.Get("Refresh"), p.Body)
	}
	select { // the stream rechecks every 5 s: it must not declare the login gone
	case ev := <-events:
		t.Fatalf("during the outage the stream sent %q", ev)
	case <-time.After(6 * time.Second):
	}

	proxy.setCut(false)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		_, err := ph.AnswerChallenge(ctx, ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionApprove, Number: number})
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("approving after the outage: %v", err)
		}
		time.Sleep(100 * time.Millisecond) // the server's connections come back
	}
	select {
	case ev := <-events:
		if ev != "state approved" {
			t.Fatalf("after the outage the stream sent %q", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the approval did not reach the waiting page after the store came back")
	}
	samlForm(t, b.get(waiting.URL), acsURL)
}
