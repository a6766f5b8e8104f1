package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/winkk/passport/api"
	"github.com/winkk/passport/api/apitest"
	"github.com/winkk/passport/api/deviceapi"
	"github.com/winkk/passport/store/storetest/redisproc"
)

// unavailableText is what a page says when the store is out of reach (html/template escapes the apostrophe).
const unavailableText = "reach its store right now; try again in a moment"

// startOnOwnRedis runs a server on a redis-server of the test's own, with requests bounded by requestTimeout.
func startOnOwnRedis(t *testing.T, srv *redisproc.Server, requestTimeout time.Duration) *env {
	t.Helper()
	return envOf(t, apitest.StartWith(t, redisproc.Open(t, srv.URL()), apitest.Options{
		API: func(c *api.Config) { c.Limits.RequestTimeout = requestTimeout },
	}))
}

// wantUnavailablePage fails t unless p is the "try again in a moment" page: 503, Retry-After, HTML.
func wantUnavailablePage(t *testing.T, what string, p *page) {
	t.Helper()
	if p.Status != http.StatusServiceUnavailable || p.Header.Get("Retry-After") == "" ||
		!strings.HasPrefix(p.Header.Get("Content-Type"), "text/html") || !strings.Contains(p.Body, unavailableText) {
		t.Errorf("%s: %d, Retry-After %q, %s; want the 503 page:\n%s", what, p.Status, p.Header.Get("Retry-After"),
			p.Header.Get("Content-Type"), p.Body)
	}
}

// wantUnavailableJSON sends req and fails t unless the answer is 503 temporarily_unavailable, JSON, with
// Retry-After.
func wantUnavailableJSON(t *testing.T, what string, c *http.Client, req *http.Request) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var body struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	_ = json.Unmarshal(data, &body)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
		body.Error.Code != "temporarily_unavailable" {
		t.Errorf("%s: %d, Retry-After %q: %s; want 503 temporarily_unavailable (JSON) with Retry-After", what,
			resp.StatusCode, resp.Header.Get("Retry-After"), data)
	}
}

func adminRequest(t *testing.T, e *env, method, path, body string) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

// TestStoreDownAnswers503: with the store stopped, every face says "try again in a moment" — the browser a
// page (the SSO endpoint, the login page, the email step, "Not you?"), the page's event stream, the phone and
// the admin API JSON — each a 503 temporarily_unavailable with Retry-After, never a 500; /readyz says 503.
func TestStoreDownAnswers503(t *testing.T) {
	t.Parallel()
	srv := redisproc.Start(t)
	e := startOnOwnRedis(t, srv, time.Second)
	app := e.newApp("Jira", atlassianAudience, acsURL)
	ph := e.enroll(employee)
	atEmail := newBrowser(t)
	identify := atEmail.startLogin(e.sp(app), "")
	waitingBrowser := newBrowser(t)
	waiting := waitingBrowser.identify(waitingBrowser.startLogin(e.sp(app), ""), employee)
	number := waiting.number(t)
	ch := ph.waitChallenge(t)
	doc, err := e.sp(app).BuildAuthRequestDocument()
	if err != nil {
		t.Fatal(err)
	}
	ssoURL, err := e.sp(app).BuildAuthURLFromDocument("", doc)
	if err != nil {
		t.Fatal(err)
	}

	srv.Kill()

	wantUnavailablePage(t, "SSO endpoint", newBrowser(t).get(ssoURL))
	wantUnavailablePage(t, "login page at the email step", atEmail.get(identify.URL))
	wantUnavailablePage(t, "email step", atEmail.postForm(identify.URL, url.Values{"email": {employee}}))
	p := waitingBrowser.get(waiting.URL)
	wantUnavailablePage(t, "waiting login page", p)
	if p.Header.Get("Refresh") == "" || !strings.Contains(p.Body, "tries again by itself") {
		t.Errorf("the waiting page does not try again by itself: Refresh %q", p.Header.Get("Refresh"))
	}
	wantUnavailablePage(t, "Not you?", waitingBrowser.postForm(waiting.URL+"/change", nil))

	events, _ := http.NewRequest("GET", waiting.URL+"/events", nil)
	wantUnavailableJSON(t, "event stream", waitingBrowser.c, events)
	readyz, _ := http.NewRequest("GET", e.URL+"/readyz", nil)
	if resp, err := http.DefaultClient.Do(readyz); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz: %v %v, want 503", resp, err)
	} else {
		resp.Body.Close()
	}

	for _, r := range []struct{ method, path, body string }{
		{"GET", "/api/v1/admin/apps", ""},
		{"GET", "/api/v1/admin/apps/" + app.ID, ""},
		{"PATCH", "/api/v1/admin/apps/" + app.ID, `{"name":"Jira 2"}`},
		{"GET", "/api/v1/admin/users", ""},
		{"POST", "/api/v1/admin/invitations", `{"email":"bob@example.com"}`},
		{"GET", "/api/v1/admin/events", ""},
		{"GET", "/api/v1/admin/events/export", ""},
		{"GET", "/api/v1/admin/users/" + employee + "/devices", ""},
	} {
		wantUnavailableJSON(t, r.method+" "+r.path, http.DefaultClient, adminRequest(t, e, r.method, r.path, r.body))
	}

	ctx := context.Background()
	for _, c := range []struct {
		name string
		call func() error
	}{
		{"listDevices", func() error { _, err := ph.ListDevices(ctx); return err }},
		{"listChallenges", func() error { _, err := ph.ListChallenges(ctx); return err }},
		{"getChallenge", func() error { _, err := ph.GetChallenge(ctx, ch.ID); return err }},
		{"waitForChallenge", func() error { _, err := ph.WaitForChallenge(ctx, time.Second); return err }},
		{"answerChallenge", func() error {
			_, err := ph.AnswerChallenge(ctx, ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionApprove, Number: number})
			return err
		}},
		{"approveByNumber", func() error { _, err := ph.ApproveByNumber(ctx, number); return err }},
		{"updatePushToken", func() error {
			_, err := ph.UpdatePushToken(ctx, deviceapi.UpdatePushTokenRequest{FCMToken: "fcm-new"})
			return err
		}},
		{"enrollByInvitation", func() error {
			_, err := ph.EnrollByInvitation(ctx, deviceapi.EnrollByInvitationRequest{Token: "inv_x", Name: "x", Platform: "android"})
			return err
		}},
	} {
		if got := apiCode(c.call()); got != "503 temporarily_unavailable" {
			t.Errorf("device API %s with the store down: %s, want 503 temporarily_unavailable", c.name, got)
		}
	}
	if strings.Contains(e.logs.String(), `"status":500`) {
		t.Errorf("a request was answered 500 while the store was down:\n%s", e.logs.String())
	}
}

// TestStoreStallAnsweredInTime: while the store stalls (CLIENT PAUSE on the server), requests are answered
// within their own deadline, not when the stall ends: /readyz 503 within its 2s, the login page a 503 page and
// a phone's call a JSON 503 within the request deadline. (Before the store's clients honoured deadlines,
// /readyz answered 200 after the whole pause, and a 25s stall became a 500 after about 20s.)
func TestStoreStallAnsweredInTime(t *testing.T) {
	t.Parallel()
	srv := redisproc.Start(t)
	e := startOnOwnRedis(t, srv, time.Second)
	app := e.newApp("Jira", atlassianAudience, acsURL)
	ph := e.enroll(employee)
	b := newBrowser(t)
	waiting := b.identify(b.startLogin(e.sp(app), ""), employee)
	waiting.number(t)

	const pause = 25 * time.Second // the server is killed at cleanup; the test never waits it out
	srv.Pause(t, pause)
	// The three requests go at once, so the test lasts about the longest deadline (2s), not their sum.
	var wg sync.WaitGroup
	var readyStatus int
	var readyTook, pageTook, phoneTook time.Duration
	var pg *page
	var phoneErr error
	wg.Go(func() {
		start := time.Now()
		resp, err := http.Get(e.URL + "/readyz")
		readyTook = time.Since(start)
		if err == nil {
			readyStatus = resp.StatusCode
			resp.Body.Close()
		}
	})
	wg.Go(func() {
		start := time.Now()
		pg = b.get(waiting.URL)
		pageTook = time.Since(start)
	})
	wg.Go(func() {
		start := time.Now()
		_, phoneErr = ph.ListChallenges(context.Background())
		phoneTook = time.Since(start)
	})
	wg.Wait()
	if readyStatus != http.StatusServiceUnavailable {
		t.Errorf("/readyz during the stall: %d, want 503", readyStatus)
	}
	wantUnavailablePage(t, "login page during the stall", pg)
	if got := apiCode(phoneErr); got != "503 temporarily_unavailable" {
		t.Errorf("listChallenges during the stall: %s, want 503 temporarily_unavailable", got)
	}
	// Bounds, not timings: each answer must come long before the 25s stall ends.
	for what, took := range map[string]time.Duration{"/readyz": readyTook, "login page": pageTook, "listChallenges": phoneTook} {
		if took > pause/3 {
			t.Errorf("%s took %v during a %v stall: its deadline was not honoured", what, took, pause)
		}
	}
	t.Logf("answered during a %v stall: /readyz in %v, login page in %v, listChallenges in %v", pause,
		readyTook.Round(time.Millisecond), pageTook.Round(time.Millisecond), phoneTook.Round(time.Millisecond))
}
