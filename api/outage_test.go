package api_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/winkk/passport/api/apitest"
	"github.com/winkk/passport/api/deviceapi"
	"github.com/winkk/passport/store/storetest"
)

// cutProxy is a TCP proxy to a Redis server that can be cut (every connection closed, new ones closed at
// once) and restored, as a store outage looks to the server. It can also cut just the connection that sends
// the next script (EVAL, EVALSHA), which is how every compare-and-swap write of the store travels: the reads
// before such a write succeed, the write fails, and what follows it finds the store working again.
type cutProxy struct {
	addr          string
	url           string // the Redis URL through the proxy
	mu            sync.Mutex
	cut           bool
	open          []net.Conn
	cutNextScript atomic.Bool
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
			go func() { p.forward(u, c); u.Close(); c.Close() }()
			go func() { io.Copy(c, u); c.Close() }()
		}
	}()
	return p
}

// forward copies the client's commands to the server, and closes the connection instead when it sends a
// script while cutNextScript is set. Commands are RESP arrays of bulk strings: a script command's name is a
// whole bulk string of its own.
func (p *cutProxy) forward(server, client net.Conn) {
	buf := make([]byte, 64<<10)
	var tail []byte // the end of the previous read, in case a command name spans two reads
	for {
		n, err := client.Read(buf)
		if n > 0 {
			seen := bytes.ToLower(append(tail, buf[:n]...))
			if (bytes.Contains(seen, []byte("\r\nevalsha\r\n")) || bytes.Contains(seen, []byte("\r\neval\r\n"))) && p.cutNextScript.CompareAndSwap(true, false) {
				return
			}
			tail = append(tail[:0], seen[max(0, len(seen)-16):]...)
			if _, err := server.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// mustProxiedRedis puts a cutProxy in front of the tests' Redis; its url is the Redis URL through it.
// Without Redis the test is skipped (failed when CI=true).
func mustProxiedRedis(t *testing.T) *cutProxy {
	t.Helper()
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
	p := newCutProxy(t, u.Host)
	proxied := *u
	proxied.Host = p.addr
	p.url = proxied.String()
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
	t.Parallel()
	proxy := mustProxiedRedis(t)
	e := envOf(t, apitest.StartOn(t, storetest.OpenURL(t, proxy.url)))
	app := e.newApp("Jira", atlassianAudience, acsURL)
	ph := e.enroll(employee)
	b := newBrowser(t)
	waiting := b.identify(b.startLogin(e.sp(app), ""), employee)
	number := waiting.number(t)
	ch := ph.waitChallenge(t)

	// The page's event stream.
	first, events, _ := openStream(t, b.c, waiting.URL) // closed when the test ends
	if first != "state pending" {
		t.Fatalf("first event %q", first)
	}

	proxy.setCut(true)
	if p := b.get(waiting.URL); p.Status < 500 || p.Header.Get("Refresh") == "" || !strings.Contains(p.Body, "tries again by itself") {
		t.Errorf("the login page during the outage: %d, Refresh %q:\n%s", p.Status, p.Header.Get("Refresh"), p.Body)
	}
	select { // the stream retries a failed read every 5 s: it must not declare the login gone
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
	wantEvent(t, events, "state approved", "the approval after the store came back")
	samlForm(t, b.get(waiting.URL), acsURL)
}

// TestDeviceRequestWhenLastSeenFails: a device request whose last-seen write fails (its connection to the store
// breaks) is answered as the store being out of reach (503 temporarily_unavailable, JSON), not served as if it
// came from no device at all; the next request of the same phone is served.
func TestDeviceRequestWhenLastSeenFails(t *testing.T) {
	t.Parallel()
	proxy := mustProxiedRedis(t)
	e := envOf(t, apitest.StartOn(t, storetest.OpenURL(t, proxy.url)))
	ph := e.enroll(employee)
	// The last-seen time is written at most once a minute.
	e.clock.Advance(2 * time.Minute)
	ctx := context.Background()

	proxy.cutNextScript.Store(true)
	list, err := ph.ListDevices(ctx)
	if proxy.cutNextScript.Load() {
		t.Fatal("the request wrote nothing: the test cut nothing")
	}
	if got := apiCode(err); got != "503 temporarily_unavailable" {
		t.Fatalf("listing devices while the last-seen write fails: %s %+v, want 503 temporarily_unavailable", got, list)
	}
	list, err = ph.ListDevices(ctx)
	if err != nil {
		t.Fatalf("listing devices once the store takes writes: %v", err)
	}
	if len(list.Devices) != 1 || !list.Devices[0].Current || list.Devices[0].LastSeenAt == nil || list.Devices[0].LastSeenAt.Before(e.clock.Now().Add(-time.Minute)) {
		t.Errorf("devices %+v: want this phone, seen now", list.Devices)
	}
}
