package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptrace"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/net/html"
)

// userAgent is what the virtual browsers say they are: the IdP shows it on the phone.
const userAgent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"

// maxPage bounds how much of a page the browser reads.
const maxPage = 1 << 20

// browser is one employee's browser for one login: its own cookie jar and its own connections, from one source
// address. It follows redirects as a browser does.
type browser struct {
	http  *http.Client
	tr    *http.Transport
	dials atomic.Int64 // connections it opened
}

func newBrowser(src netip.Addr) *browser {
	jar, _ := cookiejar.New(nil) // never fails without options
	d := dialer(src)
	b := &browser{}
	b.tr = &http.Transport{
		// Every connection keeps its bytes' arrival times, for the event stream's: see openEvents.
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			b.dials.Add(1)
			return stamped(c), nil
		},
		ForceAttemptHTTP2: true,
		// One request at a time, as the login's pages come one after another: the page after the event stream
		// waits for the stream's connection, which the transport puts back in its pool on its own goroutine once
		// it read the answer's end, instead of racing it with a new connection.
		MaxConnsPerHost:     1,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     30 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
	}
	b.http = &http.Client{Transport: b.tr, Jar: jar}
	return b
}

// close drops the browser's connections.
func (b *browser) close() { b.tr.CloseIdleConnections() }

// page is an HTML page the browser loaded, with what the run looks for on it.
type page struct {
	Status int
	URL    *url.URL
	Body   []byte

	EmailAction string // the action of the form with an input name="email"; "" without one
	HasEmail    bool
	Number      string // the text of data-testid="match-number"
	Error       string // the text of data-testid="login-error"
	Paused      string // the text of data-testid="login-paused"
	Alert       string // the text of the first role="alert" element (a form's error)
	// The auto-posting form that carries the Response (id="saml-form").
	PostAction, SAMLResponse, RelayState string
	HasPost                              bool
}

func (b *browser) get(ctx context.Context, u string) (*page, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	return b.load(req)
}

func (b *browser) postForm(ctx context.Context, u string, form url.Values) (*page, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.load(req)
}

func (b *browser) load(req *http.Request) (*page, error) {
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	resp, err := b.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPage))
	if err != nil {
		return nil, err
	}
	p := &page{Status: resp.StatusCode, URL: resp.Request.URL, Body: body}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		p.parse()
	}
	return p, nil
}

// parse finds the elements the run looks for.
func (p *page) parse() {
	doc, err := html.Parse(bytes.NewReader(p.Body))
	if err != nil {
		return
	}
	var form *html.Node // the form being walked
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			switch {
			case n.Data == "form":
				form = n
				defer func() { form = nil }()
				if attr(n, "id") == "saml-form" {
					p.HasPost, p.PostAction = true, attr(n, "action")
				}
			case n.Data == "input" && form != nil:
				switch name := attr(n, "name"); {
				case name == "email":
					p.HasEmail, p.EmailAction = true, attr(form, "action")
				case name == "SAMLResponse" && attr(form, "id") == "saml-form":
					p.SAMLResponse = attr(n, "value")
				case name == "RelayState" && attr(form, "id") == "saml-form":
					p.RelayState = attr(n, "value")
				}
			}
			if attr(n, "role") == "alert" && p.Alert == "" {
				p.Alert = text(n)
			}
			switch attr(n, "data-testid") {
			case "match-number":
				p.Number = text(n)
			case "login-error":
				p.Error = text(n)
			case "login-paused":
				p.Paused = text(n)
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func text(n *html.Node) string {
	var sb strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			sb.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.Join(strings.Fields(sb.String()), " ")
}

// number is the two-digit number the page shows, or 0.
func (p *page) number() int {
	n, err := strconv.Atoi(p.Number)
	if err != nil || n < 10 || n > 99 {
		return 0
	}
	return n
}

// says is what the page tells the person when it is not the page the run expected, for an error's detail.
func (p *page) says() string {
	switch {
	case p.Error != "":
		return "login-error: " + p.Error
	case p.Paused != "":
		return "login-paused: " + p.Paused
	case p.Alert != "":
		return p.Alert
	}
	s := strings.Join(strings.Fields(string(p.Body)), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// sseEvent is one server-sent event.
type sseEvent struct {
	Name, Data string
	// Arrived is when the event's last bytes reached this machine, as its kernel stamped them (see stamped); zero
	// where that is not known. Unlike the time this generator reads the event, it does not wait for the
	// generator's own goroutines to be scheduled, which at saturation is most of what the generator measures.
	Arrived time.Time
}

// arrivals is a connection that knows when the bytes of its last read reached this machine (see stamped).
type arrivals interface{ arrived() (time.Time, bool) }

// eventStream is the login page's event stream (/login/{txn}/events), as the page's EventSource opens it.
type eventStream struct {
	body   io.Closer
	conn   arrivals // the connection the stream came on, when its arrivals are known; else nil
	events chan sseEvent
	stop   chan struct{}
}

func (b *browser) openEvents(ctx context.Context, u string) (*eventStream, *http.Response, error) {
	var conn arrivals
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		c := info.Conn
		if tc, ok := c.(*tls.Conn); ok {
			c = tc.NetConn()
		}
		conn, _ = c.(arrivals)
	}}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	resp, err := b.http.Do(req)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxPage))
		resp.Body.Close()
		return nil, resp, nil
	}
	s := &eventStream{body: resp.Body, conn: conn, events: make(chan sseEvent, 4), stop: make(chan struct{})}
	go s.read(resp.Body)
	return s, resp, nil
}

// read parses the stream (the WHATWG server-sent events format) until it ends or is closed.
func (s *eventStream) read(r io.Reader) {
	defer close(s.events)
	sc := bufio.NewScanner(r)
	var ev sseEvent
	var hasData bool
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if hasData {
				if ev.Name == "" {
					ev.Name = "message"
				}
				if s.conn != nil {
					// The stream is quiet until the IdP writes an event, so the last read brought its end.
					if at, ok := s.conn.arrived(); ok {
						ev.Arrived = at
					}
				}
				select {
				case s.events <- ev:
				case <-s.stop:
					return
				}
			}
			ev, hasData = sseEvent{}, false
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue // a comment: the server's keep-alive
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			ev.Name = value
		case "data":
			if hasData {
				ev.Data += "\n"
			}
			ev.Data, hasData = ev.Data+value, true
		}
	}
}

// next waits for the next event; io.EOF when the stream has ended.
func (s *eventStream) next(ctx context.Context) (sseEvent, error) {
	select {
	case ev, ok := <-s.events:
		if !ok {
			return sseEvent{}, io.EOF
		}
		return ev, nil
	case <-ctx.Done():
		return sseEvent{}, ctx.Err()
	}
}

// finish waits, at most wait, for the stream to end after its last event, as the IdP ends it (the page's
// EventSource has what it needs), then closes it: a stream read to its end leaves its connection to the
// transport for the page's next request, where one closed early would close it.
func (s *eventStream) finish(wait time.Duration) {
	t := time.NewTimer(wait)
	defer t.Stop()
	for ended := false; !ended; {
		select {
		case _, ok := <-s.events:
			ended = !ok
		case <-t.C:
			ended = true
		}
	}
	s.close()
}

// close ends the stream.
func (s *eventStream) close() {
	close(s.stop)
	s.body.Close()
}

// resolve is ref relative to the page.
func (p *page) resolve(ref string) (string, error) {
	r, err := url.Parse(ref)
	if err != nil {
		return "", fmt.Errorf("bad link %q: %w", ref, err)
	}
	return p.URL.ResolveReference(r).String(), nil
}
