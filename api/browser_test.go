package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	cdppage "github.com/chromedp/cdproto/page"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/winkk/passport/api/deviceapi"
)

// The login page in a real browser: headless Chromium driven over the DevTools protocol. These tests check
// what the HTTP-level tests cannot: that the page follows the login by itself under its strict CSP, that the
// HTTP-POST binding form submits itself (scripts on) or offers a button (scripts off), that no page logs a
// console error or a CSP violation, and that each page is readable and usable on a phone and a desktop, in
// light and dark mode.
//
// Set PASSPORT_SCREENSHOTS=DIR to keep the screenshots; otherwise they go to a temporary directory.

const (
	chromiumPath = "/usr/bin/chromium"
	// browserBudget bounds the life of the whole browser: no run of these tests may hang.
	browserBudget = 4 * time.Minute
	// stepTimeout bounds one browser action (a navigation, a wait for an element).
	stepTimeout = 15 * time.Second
	// followTimeout is how long a page may take to follow the phone's answer by itself. The contract says
	// within a second; the test only logs the time it took and allows this much on a slow machine.
	followTimeout = 10 * time.Second
)

// look is a window the pages are checked in.
type look struct {
	name          string
	width, height int64
	mobile        bool   // a phone: touch, mobile viewport rules, taps instead of clicks
	user          string // the local part of the employees' emails
}

var looks = []look{
	{name: "desktop", width: 1280, height: 800, user: "ada"},
	// A long address on the narrowest screen: the waiting page shows it and must still not scroll sideways.
	{name: "mobile", width: 390, height: 844, mobile: true, user: "augusta.ada.byron.king.countess.of.lovelace"},
}

// email is the address of this look's employee for one case.
func (lk look) email(kind string) string {
	return lk.name + "." + lk.user + "." + kind + "@example.com"
}

func TestBrowserLogin(t *testing.T) {
	t.Parallel()
	browser := mustBrowser(t) // first: without Chromium nothing else is started
	e := newEnv(t)
	shots := screenshotDir(t)

	t.Run("the console watcher sees a CSP violation", func(t *testing.T) {
		// A negative control: a page that breaks its own CSP must show up as a problem, or the "no console
		// errors" checks below would prove nothing.
		bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'nonce-abc'")
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, `<!doctype html><html lang="en"><head><title>bad</title></head><body><p id="p">x</p><script>document.title = "ran";</script></body></html>`)
		}))
		defer bad.Close()
		tb := openTab(t, browser, looks[0], shots)
		tb.do(chromedp.Navigate(bad.URL), chromedp.WaitVisible(chromedp.ID("p")))
		problems := tb.takeProblems()
		if len(problems) == 0 {
			t.Fatal("a blocked inline script produced no console error: the watcher is blind")
		}
		if !strings.Contains(strings.Join(problems, "\n"), "Content Security Policy") {
			t.Errorf("the problems do not name the CSP: %q", problems)
		}
		if title := run(tb, chromedp.Title()); title == "ran" {
			t.Error("the inline script without a nonce ran")
		}
	})

	for _, lk := range looks {
		t.Run(lk.name, func(t *testing.T) {
			t.Run("no binding cookie: 403 page", func(t *testing.T) {
				app, _ := newBrowserApp(t, e, lk.name+"-forbidden")
				// Another browser (Go's) starts the login; this one has no cookie for it.
				other := newBrowser(t).startLogin(e.sp(app), "")
				tb := openTab(t, browser, lk, shots)
				tb.expectErrorStatus(other.URL)
				resp := run(tb, chromedp.NavigateResponse(other.URL))
				if resp.Status != http.StatusForbidden {
					t.Errorf("status %d, want 403", resp.Status)
				}
				msg := tb.textOf(`[data-testid="login-error"]`)
				if !strings.Contains(msg, "another browser") {
					t.Errorf("login-error %q does not say the sign-in belongs to another browser", msg)
				}
				if n := run(tb, chromedp.Nodes(chromedp.CSS(`input[name="email"]`), chromedp.AtLeast(0))); len(n) != 0 {
					t.Error("the 403 page offers the identify form")
				}
				tb.snapshot("forbidden")
			})

			t.Run("scripts on, approve: the page posts to the ACS by itself", func(t *testing.T) {
				app, acs := newBrowserApp(t, e, lk.name+"-approve")
				email := lk.email("approve")
				ph := e.enroll(email)
				tb := openTab(t, browser, lk, shots)
				const relay = "https://example.atlassian.net/jira/your-work"

				loginURL := tb.startLogin(e, app, relay)
				if focused := run(tb, chromedp.Poll[string](`document.activeElement && document.activeElement.name`, chromedp.WithPollingTimeout(5*time.Second))); focused != "email" {
					t.Errorf("focus is on %q, want the email field (autofocus)", focused)
				}
				tb.snapshot("identify")
				number := tb.identify(email)

				// The countdown is driven by the page's script: it must tick under the CSP.
				first := tb.textOf(`#countdown`)
				if !countdownFormat(first) {
					t.Errorf("countdown %q is not m:ss", first)
				}
				run(tb, chromedp.Poll[bool](fmt.Sprintf(`document.getElementById("countdown").textContent !== %q`, first), chromedp.WithPollingTimeout(5*time.Second)))
				tb.snapshot("waiting")

				approved := approveInBackground(ph, email, number)
				// From here on the test does not touch the page: it must follow the login by itself.
				ap := <-approved
				if ap.err != nil {
					t.Fatalf("phone: %v", ap.err)
				}
				post := acs.wait(t, tb, followTimeout)
				reload, reloaded := tb.documentRequestAfter(loginURL, ap.answered)
				if reloaded {
					t.Logf("%s: approval → page reload request %v, → POST at the ACS %v (the phone's answer call took %v)",
						lk.name, reload.Sub(ap.answered).Round(time.Millisecond), post.at.Sub(ap.answered).Round(time.Millisecond), ap.answered.Sub(ap.sent).Round(time.Millisecond))
				} else {
					t.Logf("%s: approval → POST at the ACS %v (the phone's answer call took %v)",
						lk.name, post.at.Sub(ap.answered).Round(time.Millisecond), ap.answered.Sub(ap.sent).Round(time.Millisecond))
				}

				// The email's POST answered with the waiting page; the page loaded itself again by its URL and
				// never posted the email again. (Chromium makes a script's reload() of a POST's answer a GET;
				// Firefox asks to post the form again, which is why the script navigates instead.)
				if n := tb.documentPosts(loginURL); n != 1 {
					t.Errorf("the login page was posted %d times, want once (the email)", n)
				}
				if post.relayState != relay {
					t.Errorf("RelayState = %q, want %q", post.relayState, relay)
				}
				info, err := e.sp(app).RetrieveAssertionInfo(post.samlResponse)
				if err != nil {
					t.Fatalf("gosaml2 refused the Response the page posted: %v", err)
				}
				if info.NameID != email {
					t.Errorf("NameID = %q, want %q", info.NameID, email)
				}
				if w := info.WarningInfo; w.InvalidTime || w.NotInAudience || w.OneTimeUse || w.ProxyRestriction != nil {
					t.Errorf("gosaml2 warnings: %+v", w)
				}
				// The browser itself ended on the ACS page.
				tb.do(chromedp.WaitVisible(chromedp.ID("acs-received")))
				tb.checkConsole("approved (auto-submit)")
			})

			t.Run("scripts on, deny: the page shows the error by itself", func(t *testing.T) {
				app, acs := newBrowserApp(t, e, lk.name+"-deny")
				email := lk.email("deny")
				ph := e.enroll(email)
				tb := openTab(t, browser, lk, shots)

				loginURL := tb.startLogin(e, app, "")
				tb.identify(email)
				ch := ph.waitChallenge(t)
				if _, err := ph.AnswerChallenge(context.Background(), ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionDeny}); err != nil {
					t.Fatalf("deny: %v", err)
				}
				msg := tb.textOfWithin(`[data-testid="login-error"]`, followTimeout)
				if !strings.Contains(msg, "denied") {
					t.Errorf("login-error %q does not say the sign-in was denied", msg)
				}
				if loc := run(tb, chromedp.Location()); loc != loginURL {
					t.Errorf("the error shows at %s, want the login page %s", loc, loginURL)
				}
				select {
				case p := <-acs.posts:
					t.Fatalf("the error page posted to the ACS without a click: %+v", p)
				default:
				}
				tb.snapshot("error")

				// The button hands the SP the signed error Response; no SP may take it for a login.
				tb.press(`form[method="post"] button[type="submit"]`)
				post := acs.wait(t, tb, stepTimeout)
				if _, err := e.sp(app).RetrieveAssertionInfo(post.samlResponse); err == nil {
					t.Error("gosaml2 accepted the error Response as a login")
				}
				xml, err := base64.StdEncoding.DecodeString(post.samlResponse)
				if err != nil {
					t.Fatalf("SAMLResponse is not base64: %v", err)
				}
				if bytes.Contains(xml, []byte("status:Success")) || !bytes.Contains(xml, []byte("status:Responder")) {
					t.Errorf("the error Response does not carry a Responder status:\n%s", xml)
				}
				tb.do(chromedp.WaitVisible(chromedp.ID("acs-received")))
				tb.checkConsole("after the error Response")
			})

			t.Run("scripts off, approve: a reload shows the POST form with a button", func(t *testing.T) {
				app, acs := newBrowserApp(t, e, lk.name+"-noscript")
				email := lk.email("noscript")
				ph := e.enroll(email)
				tb := openTab(t, browser, lk, shots)
				tb.scripts(false)
				const relay = "https://example.atlassian.net/wiki"

				loginURL := tb.startLogin(e, app, relay)
				// With scripts off the browser parses <noscript>, so a refresh there is live: on the identify
				// step it would wipe what the person is typing.
				if tb.refreshes() {
					t.Error("the identify step refreshes itself with scripts off: it would wipe the email being typed")
				}
				number := tb.identify(email)
				// The waiting page follows the login by refreshing itself. (No snapshot here: the refresh
				// could replace the page in the middle of it.)
				if !tb.refreshes() {
					t.Error("the waiting page does not refresh itself with scripts off: it would never move on")
				}
				ch := ph.waitChallenge(t)
				if _, err := ph.AnswerChallenge(context.Background(), ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionApprove, Number: number}); err != nil {
					t.Fatalf("approve: %v", err)
				}
				tb.do(chromedp.Navigate(loginURL))
				button := `#saml-form button[type="submit"]`
				tb.do(chromedp.WaitVisible(chromedp.CSS(button)))
				if label := tb.textOf(button); !strings.Contains(label, app.Name) {
					t.Errorf("the button says %q, want it to name the application %q", label, app.Name)
				}
				select {
				case p := <-acs.posts:
					t.Fatalf("the form was submitted with scripts off before any click: %+v", p)
				default:
				}
				if tb.refreshes() {
					t.Error("the approved page refreshes itself")
				}
				tb.snapshot("approved-noscript")

				tb.press(button)
				post := acs.wait(t, tb, stepTimeout)
				// The email's POST answered with the waiting page; the page loaded itself again by its URL and
				// never posted the email again. (Chromium makes a script's reload() of a POST's answer a GET;
				// Firefox asks to post the form again, which is why the script navigates instead.)
				if n := tb.documentPosts(loginURL); n != 1 {
					t.Errorf("the login page was posted %d times, want once (the email)", n)
				}
				if post.relayState != relay {
					t.Errorf("RelayState = %q, want %q", post.relayState, relay)
				}
				info, err := e.sp(app).RetrieveAssertionInfo(post.samlResponse)
				if err != nil {
					t.Fatalf("gosaml2 refused the Response: %v", err)
				}
				if info.NameID != email {
					t.Errorf("NameID = %q, want %q", info.NameID, email)
				}
				tb.do(chromedp.WaitVisible(chromedp.ID("acs-received")))
				tb.checkConsole("after the POST")
			})
		})
	}
}

// mustBrowser starts one headless Chromium for the test and returns its chromedp context. Without Chromium the
// test fails on CI (CI=true) and is skipped elsewhere.
func mustBrowser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("chromium is not installed at %s (apt-get install chromium): %v", chromiumPath, err)
		}
		t.Skipf("chromium is not installed at %s: %v", chromiumPath, err)
	}
	base, cancelBase := context.WithTimeout(context.Background(), browserBudget)
	out := &syncBuffer{}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.CombinedOutput(out),
		// No UserDataDir: chromedp gives each browser a fresh temporary profile and removes it afterwards.
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(base, opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		cancelBase()
		if t.Failed() {
			t.Logf("chromium output:\n%s", out.tail(4000))
		}
	})
	// The first Do starts the browser; its life is bound to ctx (and so to browserBudget).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v\n%s", err, out.tail(4000))
	}
	return ctx
}

func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("PASSPORT_SCREENSHOTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

// acsServer is the SP's AssertionConsumerService on loopback: it records every POSTed form.
type acsServer struct {
	URL   string
	posts chan acsPost
}

type acsPost struct {
	samlResponse, relayState string
	referer                  string
	at                       time.Time
}

// newBrowserApp registers an app whose ACS URL is a fresh loopback ACS server.
func newBrowserApp(t *testing.T, e *env, name string) (appView, *acsServer) {
	t.Helper()
	a := &acsServer{posts: make(chan acsPost, 4)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/acs" {
			http.NotFound(w, r)
			return
		}
		at := time.Now()
		if r.URL.Query().Get("connection") != "saml-test" {
			http.Error(w, "the query of the ACS URL was lost", http.StatusBadRequest)
			return
		}
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		select {
		case a.posts <- acsPost{samlResponse: r.PostForm.Get("SAMLResponse"), relayState: r.PostForm.Get("RelayState"), referer: r.Referer(), at: at}:
		default:
			http.Error(w, "too many posts", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><html lang="en"><head><title>SP</title><link rel="icon" href="data:,"></head><body><h1 id="acs-received">Response received</h1></body></html>`)
	}))
	t.Cleanup(srv.Close)
	a.URL = srv.URL + "/acs?connection=saml-test"
	return e.newApp("Jira", "https://auth.atlassian.com/saml/"+name, a.URL), a
}

// wait returns the next POST to the ACS, failing after d.
func (a *acsServer) wait(t *testing.T, tb *tab, d time.Duration) acsPost {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	select {
	case p := <-a.posts:
		if p.referer != "" {
			t.Errorf("the POST to the ACS carried Referer %q (the login URL must not leak)", p.referer)
		}
		return p
	case <-ctx.Done():
		tb.fatalf("no POST reached the ACS within %v", d)
		return acsPost{}
	}
}

type approval struct {
	sent, answered time.Time
	err            error
}

// approveInBackground is the phone: it waits for the challenge and approves it with number.
func approveInBackground(ph *phone, email string, number int) <-chan approval {
	done := make(chan approval, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), followTimeout)
		defer cancel()
		ch, err := ph.WaitForChallenge(ctx, followTimeout)
		if err != nil {
			done <- approval{err: fmt.Errorf("wait for challenge: %w", err)}
			return
		}
		if ch.Email != email {
			done <- approval{err: fmt.Errorf("challenge for %q, want %q", ch.Email, email)}
			return
		}
		sent := time.Now()
		ans, err := ph.AnswerChallenge(ctx, ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionApprove, Number: number})
		answered := time.Now()
		if err == nil && ans.State != deviceapi.StateApproved {
			err = fmt.Errorf("answer state %q", ans.State)
		}
		done <- approval{sent: sent, answered: answered, err: err}
	}()
	return done
}

// tab is one browser tab in its own browser context (its own cookies), with a watcher that records console
// errors, uncaught exceptions and CSP violations, and the document requests it makes.
type tab struct {
	t     *testing.T
	ctx   context.Context
	look  look
	shots string

	mu       sync.Mutex
	problems []consoleProblem
	docs     []docRequest
	streams  []docRequest // EventSource requests
	// expected holds document URLs whose error status the test asked for: Chromium logs such a load as a
	// network error, which is no fault of the page.
	expected map[string]bool
}

type consoleProblem struct {
	network bool   // a failed load, logged by the browser
	url     string // what failed to load
	text    string
}

type docRequest struct {
	url, method string
	at          time.Time
}

func openTab(t *testing.T, browser context.Context, lk look, shots string) *tab {
	t.Helper()
	tb := &tab{t: t, look: lk, shots: shots}
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext(), chromedp.WithListener(tb.listen))
	t.Cleanup(cancel)
	tb.ctx = ctx
	// The first Do opens the tab and binds it to ctx: no timeout here, or the tab would close with it.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open tab: %v", err)
	}
	opts := []chromedp.EmulateViewportOption{}
	if lk.mobile {
		opts = append(opts, chromedp.EmulateMobile, chromedp.EmulateTouch)
	}
	tb.do(chromedp.EmulateViewport(lk.width, lk.height, opts...))
	return tb
}

// listen runs in the tab's event loop, before the reply of any later command is read: when a command
// returns, every console message sent before it has been recorded.
func (tb *tab) listen(ev any) {
	var problem consoleProblem
	switch ev := ev.(type) {
	case *cdpruntime.EventConsoleAPICalled:
		if ev.Type == "error" || ev.Type == "assert" {
			problem.text = fmt.Sprintf("console.%s: %s", ev.Type, remoteText(ev.Args))
		}
	case *cdpruntime.EventExceptionThrown:
		d := ev.ExceptionDetails
		problem.text = "uncaught exception: " + d.Text
		if d.Exception != nil {
			problem.text += " " + d.Exception.Description
		}
	case *cdplog.EventEntryAdded:
		if en := ev.Entry; en.Level == cdplog.EntryLevelError || en.Source == cdplog.EntrySourceSecurity {
			problem = consoleProblem{
				network: en.Source == cdplog.EntrySourceNetwork,
				url:     en.URL,
				text:    fmt.Sprintf("%s %s: %s (%s)", en.Source, en.Level, en.Text, en.URL),
			}
		}
	case *network.EventRequestWillBeSent:
		switch ev.Type {
		case network.ResourceTypeDocument:
			tb.mu.Lock()
			tb.docs = append(tb.docs, docRequest{url: ev.Request.URL, method: ev.Request.Method, at: time.Now()})
			tb.mu.Unlock()
		case network.ResourceTypeEventSource:
			tb.mu.Lock()
			tb.streams = append(tb.streams, docRequest{url: ev.Request.URL, at: time.Now()})
			tb.mu.Unlock()
		}
	}
	if problem.text != "" {
		tb.mu.Lock()
		tb.problems = append(tb.problems, problem)
		tb.mu.Unlock()
	}
}

func remoteText(args []*cdpruntime.RemoteObject) string {
	var parts []string
	for _, a := range args {
		if a.Description != "" {
			parts = append(parts, a.Description)
		} else {
			parts = append(parts, string(a.Value))
		}
	}
	return strings.Join(parts, " ")
}

// takeProblems returns the console problems since the last call, less the expected document statuses.
func (tb *tab) takeProblems() []string {
	// A command round trip first: every event sent before its reply has passed through listen.
	run(tb, chromedp.Location())
	tb.mu.Lock()
	defer tb.mu.Unlock()
	var out []string
	for _, p := range tb.problems {
		if p.network && tb.expected[p.url] {
			continue
		}
		out = append(out, p.text)
	}
	tb.problems = nil
	return out
}

// expectErrorStatus tells the console watcher that loading u as a document fails on purpose.
func (tb *tab) expectErrorStatus(u string) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if tb.expected == nil {
		tb.expected = map[string]bool{}
	}
	tb.expected[u] = true
}

// checkConsole fails when the tab logged a console error, an exception or a CSP violation since the last check.
func (tb *tab) checkConsole(where string) {
	tb.t.Helper()
	for _, p := range tb.takeProblems() {
		tb.t.Errorf("%s: %s", where, p)
	}
}

// documentPosts counts the tab's POSTs of u as a document.
func (tb *tab) documentPosts(u string) int {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	n := 0
	for _, d := range tb.docs {
		if d.url == u && d.method == http.MethodPost {
			n++
		}
	}
	return n
}

// documentRequestAfter returns when the tab first requested u as a document after since.
func (tb *tab) documentRequestAfter(u string, since time.Time) (time.Time, bool) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, d := range tb.docs {
		if d.url == u && d.at.After(since) {
			return d.at, true
		}
	}
	return time.Time{}, false
}

// run runs one action with the step timeout and fails the test on error.
func run[T any](tb *tab, a chromedp.Action[T]) T {
	tb.t.Helper()
	return runWithin(tb, stepTimeout, a)
}

func runWithin[T any](tb *tab, d time.Duration, a chromedp.Action[T]) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, d)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		tb.fatalf("browser: %v", err)
	}
	return v
}

func (tb *tab) do(steps ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	run(tb, chromedp.Steps(steps...))
}

// goTo starts the tab's navigation to u and returns once the page has committed, without waiting for its load:
// for a page that leaves by itself (an auto-submitting form), whose next navigation can abort its load and
// fail chromedp.Navigate with net::ERR_ABORTED although all went well.
func (tb *tab) goTo(u string) {
	tb.t.Helper()
	if res := call(tb, cdppage.Navigate, cdppage.NavigateParams{URL: u}); res.ErrorText != "" {
		tb.t.Fatalf("navigate to %s: %s", u, res.ErrorText)
	}
}

// call sends one DevTools command to the tab.
func call[P, R any](tb *tab, cmd cdp.Command[P, R], params P) R {
	tb.t.Helper()
	return run(tb, func(ctx context.Context, t *chromedp.Target) (R, error) {
		return cdp.Call(ctx, t, cmd, params)
	})
}

// fatalf fails the test with where the tab is and what it shows.
func (tb *tab) fatalf(format string, args ...any) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	body, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("body"), chromedp.AtLeast(0)))
	tb.t.Fatalf(format+"\nthe tab is at %s:\n%s", append(args, loc, body)...)
}

// scripts switches the page's scripts on or off, as a browser setting does.
func (tb *tab) scripts(on bool) {
	tb.t.Helper()
	call(tb, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: !on})
}

func (tb *tab) textOf(sel string) string {
	tb.t.Helper()
	return tb.textOfWithin(sel, stepTimeout)
}

// textOfWithin waits up to d for sel to be visible and returns its text.
func (tb *tab) textOfWithin(sel string, d time.Duration) string {
	tb.t.Helper()
	runWithin(tb, d, chromedp.WaitVisible(chromedp.CSS(sel)))
	return strings.TrimSpace(run(tb, chromedp.TextContent(chromedp.CSS(sel))))
}

// refreshes reports whether the page has a live <meta http-equiv="refresh">.
func (tb *tab) refreshes() bool {
	tb.t.Helper()
	return run(tb, chromedp.Evaluate[bool](`document.querySelector('meta[http-equiv="refresh" i]') !== null`))
}

// press activates a button the way the look's user does: a tap on a phone, a click on a desktop.
func (tb *tab) press(sel string) {
	tb.t.Helper()
	if tb.look.mobile {
		tb.do(chromedp.Tap(chromedp.CSS(sel)))
		return
	}
	tb.do(chromedp.Click(chromedp.CSS(sel)))
}

// startLogin sends the SP's AuthnRequest (HTTP-Redirect) and returns the login page URL it lands on.
func (tb *tab) startLogin(e *env, app appView, relayState string) string {
	tb.t.Helper()
	u, err := e.sp(app).BuildAuthURL(relayState)
	if err != nil {
		tb.t.Fatalf("build AuthnRequest: %v", err)
	}
	tb.do(chromedp.Navigate(u), chromedp.WaitVisible(chromedp.CSS(`input[name="email"]`)))
	loc := run(tb, chromedp.Location())
	if !strings.HasPrefix(loc, e.URL+"/login/") {
		tb.fatalf("the SSO URL led to %s, not the login page", loc)
	}
	return loc
}

// identify types email on the identify step and submits it (Enter on a desktop, the button on a phone); it
// returns the number the waiting page shows.
func (tb *tab) identify(email string) int {
	tb.t.Helper()
	field := chromedp.CSS(`input[name="email"]`)
	if tb.look.mobile {
		tb.do(chromedp.SendKeys(field, email))
		tb.press(`form button[type="submit"]`)
	} else {
		tb.do(chromedp.SendKeys(field, email+"\n"))
	}
	s := tb.textOf(`[data-testid="match-number"]`)
	n, err := strconv.Atoi(s)
	if err != nil || n < 10 || n > 99 {
		tb.fatalf("match-number %q is not a two-digit number", s)
	}
	return n
}

func countdownFormat(s string) bool {
	m, sec, ok := strings.Cut(s, ":")
	if !ok || len(sec) != 2 {
		return false
	}
	_, err1 := strconv.Atoi(m)
	_, err2 := strconv.Atoi(sec)
	return err1 == nil && err2 == nil
}

// snapshot checks the page as it stands in light and dark mode (contrast, target sizes, focus indicators,
// labels, reflow), saves a screenshot of each, and checks the console.
func (tb *tab) snapshot(name string) {
	tb.t.Helper()
	for _, scheme := range []string{"light", "dark"} {
		call(tb, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}})
		for _, p := range tb.audit() {
			tb.t.Errorf("%s page, %s, %s: %s", name, tb.look.name, scheme, p)
		}
		png := run(tb, chromedp.CaptureScreenshot())
		file := filepath.Join(tb.shots, fmt.Sprintf("%s-%s-%s.png", tb.look.name, name, scheme))
		if err := os.WriteFile(file, png, 0o644); err != nil {
			tb.t.Fatal(err)
		}
	}
	call(tb, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{})
	tb.checkConsole(name + " page")
}

// audit runs auditJS in the page. DevTools evaluation works with the page's scripts off too.
func (tb *tab) audit() []string {
	tb.t.Helper()
	return run(tb, chromedp.Evaluate[[]string](auditJS))
}

// auditJS returns what a person would trip over on the page: WCAG 2.2 text contrast (1.4.3), field and focus
// indicator contrast (1.4.11), target size (2.5.5, 44 CSS px), visible focus (2.4.7), labels (1.3.1, 4.1.2),
// reflow at the viewport width (1.4.10), language (3.1.1), title (2.4.2), names on roles that forbid them.
const auditJS = `(() => {
  const problems = [];
  const rgba = s => {
    const m = /rgba?\(([^)]*)\)/.exec(s || "");
    if (!m) return null;
    const p = m[1].split(/[\s,\/]+/).filter(Boolean).map(parseFloat);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const over = (top, bottom) => [0, 1, 2].map(i => top[i] * top[3] + bottom[i] * (1 - top[3])).concat([1]);
  const background = el => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = rgba(getComputedStyle(e).backgroundColor);
      if (c && c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
    }
    let bg = matchMedia("(prefers-color-scheme: dark)").matches ? [18, 18, 18, 1] : [255, 255, 255, 1];
    for (let i = layers.length - 1; i >= 0; i--) bg = over(layers[i], bg);
    return bg;
  };
  const lum = c => {
    const f = v => (v /= 255) <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
  };
  const ratio = (a, b) => { const x = lum(a), y = lum(b); return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05); };
  const visible = el => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== "hidden";
  const describe = el => "<" + el.tagName.toLowerCase() + (el.className ? " class=" + el.className : "") + "> \"" + (el.textContent || el.value || "").trim().slice(0, 40) + "\"";
  const fields = "input:not([type=hidden]), select, textarea";
  const focused = document.activeElement;

  for (const el of document.body.querySelectorAll("*")) {
    if (!visible(el)) continue;
    const ownText = Array.from(el.childNodes).some(n => n.nodeType === 3 && n.textContent.trim());
    if (!ownText && !el.matches(fields)) continue;
    const cs = getComputedStyle(el);
    const bg = background(el);
    const fg = over(rgba(cs.color), bg);
    const size = parseFloat(cs.fontSize), bold = parseInt(cs.fontWeight, 10) >= 700;
    const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    const r = ratio(fg, bg);
    if (r < need) problems.push("text contrast " + r.toFixed(2) + " < " + need + ": " + describe(el));
    if (size < 14) problems.push("text smaller than 14px (" + size + "px): " + describe(el));
  }
  for (const el of document.querySelectorAll(fields)) {
    if (!visible(el)) continue;
    const bg = background(el.parentElement);
    const r = ratio(over(rgba(getComputedStyle(el).borderTopColor), bg), bg);
    if (r < 3) problems.push("field border contrast " + r.toFixed(2) + " < 3: " + describe(el));
    if ((!el.labels || el.labels.length === 0) && !el.getAttribute("aria-label") && !el.getAttribute("aria-labelledby")) problems.push("field without a label: " + describe(el));
  }
  for (const el of document.querySelectorAll("button, a[href], " + fields)) {
    if (!visible(el)) continue;
    const box = el.getBoundingClientRect();
    if (box.width < 44 || box.height < 44) problems.push("target " + Math.round(box.width) + "x" + Math.round(box.height) + " smaller than 44x44: " + describe(el));
    el.focus();
    const cs = getComputedStyle(el);
    const width = parseFloat(cs.outlineWidth) || 0;
    if (document.activeElement !== el) problems.push("cannot take focus: " + describe(el));
    else if (cs.outlineStyle === "none" || width < 2) problems.push("no visible focus indicator: " + describe(el));
    else {
      const bg = background(el.parentElement);
      const r = ratio(over(rgba(cs.outlineColor), bg), bg);
      if (r < 3) problems.push("focus indicator contrast " + r.toFixed(2) + " < 3: " + describe(el));
    }
    el.blur();
  }
  for (const el of document.querySelectorAll("[aria-label]")) {
    if (!el.getAttribute("role") && /^(P|SPAN|DIV)$/.test(el.tagName)) problems.push("aria-label on an element whose role cannot be named (screen readers ignore it): " + describe(el));
  }
  const viewport = document.documentElement.clientWidth;
  if (document.documentElement.scrollWidth > viewport) problems.push("horizontal scrolling: the page is " + document.documentElement.scrollWidth + "px wide in a " + viewport + "px viewport");
  for (const el of document.body.querySelectorAll("*")) {
    if (!visible(el)) continue;
    const box = el.getBoundingClientRect();
    if (box.right > viewport + 1 || box.left < -1) problems.push("sticks out of the " + viewport + "px viewport (" + Math.round(box.left) + ".." + Math.round(box.right) + "): " + describe(el));
    else if (el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflowX === "visible") problems.push("content wider than its box (" + el.scrollWidth + " > " + el.clientWidth + "): " + describe(el));
  }
  if (!document.documentElement.lang) problems.push("no lang on <html>");
  if (!document.title.trim()) problems.push("no <title>");
  if (!document.querySelector("h1")) problems.push("no <h1>");
  if (focused && focused !== document.body) focused.focus();
  return problems;
})()`

// syncBuffer is a bytes.Buffer safe for the browser's output goroutine and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return s
}
