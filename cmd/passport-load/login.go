package main

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/winkk/passport/api/deviceapi"
)

// The steps of a login, as errors name them. The timed ones are in steps.
const (
	stepSSO      = "sso"      // the AuthnRequest sent, the 303 followed, the email form shown
	stepEmail    = "email"    // the email posted, the page showing the number
	stepEvents   = "events"   // the page's event stream opened and saying "pending"
	stepApprove  = "approve"  // the phone's approval, until the browser's stream says "approved"
	stepArrived  = "arrived"  // the approval's request sent, until the kernel received the bytes that say it (Linux)
	stepResponse = "response" // the page loaded again, carrying the signed Response
	stepVerify   = "verify"   // the Response checked as the SP checks it
	stepLogin    = "login"    // the whole login, for its latency and its timeout
)

// step is one timed part of a login, as the report shows it; an optional one is left out where it is not known.
type step struct {
	Key, Label string
	Optional   bool
}

var steps = []step{
	{stepSSO, "SSO → page", false},
	{stepEmail, "email → number", false},
	{stepApprove, "approve → browser told", false},
	{stepArrived, "approve sent → told arrived", true},
	{stepResponse, "told → Response", false},
	{stepLogin, "whole login", false},
}

// timings are the latencies of one login, by step key.
type timings map[string]time.Duration

// failure is why a login did not succeed: the step and a kind the report counts by (an HTTP status, a timeout, a
// failed check), with one example's detail.
type failure struct {
	Step, Kind, Detail string
}

func (f *failure) Error() string { return f.Step + ": " + f.Kind + ": " + f.Detail }

// kindInterrupted marks logins cut short by Ctrl-C: not counted as errors.
const kindInterrupted = "interrupted"

// failed classifies err, met at step.
func failed(step string, err error) *failure {
	var ae *deviceapi.APIError
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return &failure{step, kindInterrupted, err.Error()}
	case errors.Is(err, context.DeadlineExceeded):
		return &failure{step, "timeout", err.Error()}
	case errors.Is(err, errNoChallenge):
		return &failure{step, "no challenge on the phone", err.Error()}
	case errors.As(err, &ae):
		kind := fmt.Sprintf("HTTP %d", ae.Status)
		if ae.Code != "" {
			kind += " " + ae.Code
		}
		return &failure{step, kind, ae.Message}
	case errors.As(err, &ne) && ne.Timeout():
		return &failure{step, "timeout", err.Error()}
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return &failure{step, "connection closed", err.Error()}
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return &failure{step, "connection " + oe.Op, err.Error()}
	}
	return &failure{step, "error", err.Error()}
}

// unexpected is a page that is not the one the step leads to.
func unexpected(step string, p *page, want string) *failure {
	switch {
	case p.Status != http.StatusOK:
		return &failure{step, fmt.Sprintf("HTTP %d", p.Status), p.says()}
	case p.Error != "":
		return &failure{step, "login-error page", p.Error}
	case p.Paused != "":
		return &failure{step, "login-paused page", p.Paused}
	}
	return &failure{step, "no " + want, p.says()}
}

// runner does logins for the run's application.
type runner struct {
	fx      *fixture
	sources *sources
	timeout time.Duration
	// conns counts the connections the browsers of connLogins successful logins opened.
	conns, connLogins atomic.Int64
}

// connsPerLogin is the connections a successful login's browser opened, on average since the last call (nil:
// no login).
func (r *runner) connsPerLogin() *float64 {
	n, l := r.conns.Swap(0), r.connLogins.Swap(0)
	if l == 0 {
		return nil
	}
	v := float64(n) / float64(l)
	return &v
}

// parked is a login waiting for the phone: the browser on its page, the page's event stream open and saying
// "pending", the number shown.
type parked struct {
	b      *browser
	page   *url.URL
	number int
	events *eventStream
	reqID  string
	relay  string
	t      timings
	start  time.Time
}

// close ends the stream and drops the browser's connections.
func (p *parked) close() {
	if p.events != nil {
		p.events.close()
	}
	p.b.close()
}

// park starts a login for email as a browser at src does, up to the number on the page and the page's event
// stream saying "pending".
func (r *runner) park(ctx context.Context, email string, src netip.Addr) (*parked, *failure) {
	b := newBrowser(src)
	p := &parked{b: b, reqID: "_" + randomHex(16), relay: randomHex(24), t: timings{}, start: time.Now()}
	ok := false
	defer func() {
		if !ok {
			p.close()
		}
	}()

	// SSO → page: the SP's AuthnRequest by HTTP-Redirect; the IdP answers 303 to the login page, setting the
	// cookie that binds the login to this browser.
	sso, err := r.redirectURL(p.reqID, p.relay)
	if err != nil {
		return nil, &failure{stepSSO, "error", err.Error()}
	}
	pg, err := b.get(ctx, sso)
	if err != nil {
		return nil, failed(stepSSO, err)
	}
	if pg.Status != http.StatusOK || !pg.HasEmail || !strings.HasPrefix(pg.URL.Path, "/login/") {
		return nil, unexpected(stepSSO, pg, "email form")
	}
	p.page = pg.URL
	p.t[stepSSO] = time.Since(p.start)

	// email → number: the form posts back to the page, which answers with itself showing the number.
	t := time.Now()
	action, err := pg.resolve(pg.EmailAction)
	if err != nil {
		return nil, &failure{stepEmail, "bad form", err.Error()}
	}
	pg, err = b.postForm(ctx, action, url.Values{"email": {email}})
	if err != nil {
		return nil, failed(stepEmail, err)
	}
	if p.number = pg.number(); pg.Status != http.StatusOK || p.number == 0 {
		return nil, unexpected(stepEmail, pg, "match-number")
	}
	p.t[stepEmail] = time.Since(t)

	// The page opens its event stream and waits; the stream first says where the login stands.
	events, resp, err := b.openEvents(ctx, p.page.String()+"/events")
	if err != nil {
		return nil, failed(stepEvents, err)
	}
	if events == nil {
		return nil, &failure{stepEvents, fmt.Sprintf("HTTP %d", resp.StatusCode), "the event stream was refused (" + resp.Header.Get("Content-Type") + ")"}
	}
	p.events = events
	ev, err := events.next(ctx)
	if err != nil {
		return nil, failed(stepEvents, err)
	}
	if ev.Name != "state" || ev.Data != "pending" {
		return nil, &failure{stepEvents, "event " + ev.Name + " " + ev.Data, "the stream's first event was not state pending"}
	}
	ok = true
	return p, nil
}

// streamEndWait bounds the wait for an event stream's end after the event the browser waited for.
const streamEndWait = time.Second

// login does one whole login for u from src and returns its timings and the Response the browser was handed,
// for the caller to check (runner.verify) at once or after the logins (--check-after).
func (r *runner) login(ctx context.Context, u *user, src netip.Addr) (timings, response, *failure) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	p, f := r.park(ctx, u.email, src)
	if f != nil {
		return nil, response{}, f
	}
	defer p.close()

	// approve → browser told: the person types the number on the phone; the page hears of it on its stream.
	t := time.Now()
	// sent is when the approval's request leaves: its headers are written, and the write follows at once, in
	// the transport's own goroutine (Unix nanoseconds, the kernel's clock for arrivals; the first attempt's).
	var sent atomic.Int64
	trace := &httptrace.ClientTrace{WroteHeaders: func() { sent.CompareAndSwap(0, time.Now().UnixNano()) }}
	if err := u.phone.approve(httptrace.WithClientTrace(ctx, trace), p.number); err != nil {
		return nil, response{}, failed(stepApprove, err)
	}
	for {
		ev, err := p.events.next(ctx)
		if errors.Is(err, io.EOF) {
			return nil, response{}, &failure{stepApprove, "stream ended", "the event stream ended before it said approved"}
		}
		if err != nil {
			return nil, response{}, failed(stepApprove, err)
		}
		if ev.Name == "state" && ev.Data == "approved" {
			// Neither end waits for this generator's goroutines to run. Kernel time is the wall clock: a clock
			// stepped back in between is left out, not counted as zero.
			if s := sent.Load(); !ev.Arrived.IsZero() && s != 0 && ev.Arrived.UnixNano() > s {
				p.t[stepArrived] = time.Duration(ev.Arrived.UnixNano() - s)
			}
			break
		}
		if ev.Name != "state" || ev.Data != "pending" {
			return nil, response{}, &failure{stepApprove, "event " + ev.Name + " " + ev.Data, "the stream did not say approved"}
		}
	}
	p.t[stepApprove] = time.Since(t)
	p.events.finish(streamEndWait)
	p.events = nil

	// told → Response: the page reloads and carries the signed Response in its auto-posting form.
	t = time.Now()
	pg, err := p.b.get(ctx, p.page.String())
	if err != nil {
		return nil, response{}, failed(stepResponse, err)
	}
	if pg.Status != http.StatusOK || !pg.HasPost || pg.SAMLResponse == "" {
		return nil, response{}, unexpected(stepResponse, pg, "SAMLResponse form")
	}
	now := time.Now()
	p.t[stepResponse] = now.Sub(t)
	p.t[stepLogin] = now.Sub(p.start)
	r.conns.Add(p.b.dials.Load())
	r.connLogins.Add(1)
	return p.t, response{PostAction: pg.PostAction, RelayState: pg.RelayState, SAMLResponse: pg.SAMLResponse,
		ReqID: p.reqID, Relay: p.relay, Email: u.email, At: now}, nil
}

// redirectURL is the SSO URL carrying an Atlassian-shaped AuthnRequest by the HTTP-Redirect binding
// (saml-bindings §3.4.4.1: raw DEFLATE, then base64, then URL-encoding).
func (r *runner) redirectURL(id, relay string) (string, error) {
	var buf bytes.Buffer
	zw := deflaters.Get().(*flate.Writer)
	defer deflaters.Put(zw)
	zw.Reset(&buf)
	if _, err := io.WriteString(zw, authnRequest(id, r.fx.App.SSOURL, r.fx.App.ACSURL, r.fx.App.Audience, time.Now())); err != nil {
		return "", err
	}
	if err := zw.Close(); err != nil {
		return "", err
	}
	q := url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString(buf.Bytes())}, "RelayState": {relay}}
	return r.fx.App.SSOURL + "?" + q.Encode(), nil
}

// deflaters keeps DEFLATE writers for reuse: making one allocates most of a megabyte, which cost the generator
// more than anything but checking the Response.
var deflaters = sync.Pool{New: func() any {
	zw, _ := flate.NewWriter(nil, flate.DefaultCompression) // fails only for a bad level
	return zw
}}

// authnRequest is the AuthnRequest Atlassian's SP sends: Issuer its entity ID, the ACS URL named, an emailAddress
// NameID asked for, a Response by HTTP-POST.
func authnRequest(id, destination, acs, issuer string, now time.Time) string {
	return `<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"` +
		` AssertionConsumerServiceURL="` + xmlEscape(acs) + `" Destination="` + xmlEscape(destination) + `"` +
		` ID="` + xmlEscape(id) + `" IssueInstant="` + now.UTC().Format("2006-01-02T15:04:05.000Z") + `"` +
		` ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Version="2.0">` +
		`<saml:Issuer xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">` + xmlEscape(issuer) + `</saml:Issuer>` +
		`<samlp:NameIDPolicy AllowCreate="true" Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"/>` +
		`</samlp:AuthnRequest>`
}

func xmlEscape(s string) string {
	var sb strings.Builder
	_ = xml.EscapeText(&sb, []byte(s))
	return sb.String()
}
