package api_test

import (
	"context"
	"testing"
	"time"

	"github.com/winkk/passport/api"
	"github.com/winkk/passport/api/apitest"
	"github.com/winkk/passport/api/deviceapi"
)

// streamRequestsAfter returns when the tab opened the event stream u since since.
func (tb *tab) streamRequestsAfter(u string, since time.Time) []time.Time {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	var out []time.Time
	for _, s := range tb.streams {
		if s.url == u && s.at.After(since) {
			out = append(out, s.at)
		}
	}
	return out
}

// TestBrowserRefusedStream: a login page whose event stream is refused (429: its network already holds as
// many as it may) does not reload itself in a loop: it opens the stream again later, and once a place is free
// it follows the login to the ACS by itself.
func TestBrowserRefusedStream(t *testing.T) {
	t.Parallel()
	browser := mustBrowser(t)
	e := envOf(t, apitest.StartAPI(t, func(c *api.Config) { c.Limits.StreamsPerClient = 2 }))
	shots := screenshotDir(t)
	app, acs := newBrowserApp(t, e, "refused-stream")
	const email = "refused.stream@example.com"
	ph := e.enroll(email)

	// Two other people of the same network (this loopback address) wait on their pages.
	var held []func()
	for range 2 {
		b := newBrowser(t)
		_, _, stop := openStream(t, b.c, b.startLogin(e.sp(app), "").URL)
		held = append(held, stop)
	}

	tb := openTab(t, browser, looks[0], shots)
	loginURL := tb.startLogin(e, app, "")
	events := loginURL + "/events"
	tb.expectErrorStatus(events) // the 429 is logged by the browser as a failed load: no fault of the page
	number := tb.identify(email)
	shown := time.Now()

	// The refused page opens its stream again by itself (after about 5 s), without reloading.
	deadline := time.Now().Add(20 * time.Second)
	var retries []time.Time
	for len(retries) == 0 {
		if time.Now().After(deadline) {
			tb.fatalf("the page did not open its refused event stream again within 20 s")
		}
		time.Sleep(100 * time.Millisecond)
		retries = tb.streamRequestsAfter(events, shown)
	}
	if at, reloaded := tb.documentRequestAfter(loginURL, shown); reloaded {
		t.Errorf("the page reloaded itself %v after its stream was refused: a refused stream must not start a reload loop", at.Sub(shown).Round(time.Millisecond))
	}
	if got := tb.textOf(`[data-testid="match-number"]`); got != itoa(number) {
		t.Errorf("the page shows %q, want the number %d", got, number)
	}

	// A place frees up; the phone approves; the page's next attempt follows the login to the ACS.
	for _, stop := range held {
		stop()
	}
	waitStreams(t, e.srv, 0)
	ch := ph.waitChallenge(t)
	if _, err := ph.AnswerChallenge(context.Background(), ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionApprove, Number: number}); err != nil {
		t.Fatalf("approve: %v", err)
	}
	approved := time.Now()
	post := acs.wait(t, tb, 45*time.Second)
	t.Logf("page shown → its stream opened again %v later; approved %v after the page was shown → POST at the ACS %v later",
		retries[0].Sub(shown).Round(time.Millisecond), approved.Sub(shown).Round(time.Millisecond), post.at.Sub(approved).Round(time.Millisecond))
	if info, err := e.sp(app).RetrieveAssertionInfo(post.samlResponse); err != nil || info.NameID != email {
		t.Errorf("the Response the page posted: %v %+v", err, info)
	}
	tb.checkConsole("after a refused stream")
}
