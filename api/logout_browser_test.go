package api_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// sloServer is an SP's SingleLogoutService on loopback: it records every GET and answers a small page with
// the given id.
type sloServer struct {
	URL  string
	hits chan sloHit
}

type sloHit struct {
	query url.Values
	at    time.Time
}

func newSLOServer(t *testing.T, id string) *sloServer {
	t.Helper()
	s := &sloServer{hits: make(chan sloHit, 4)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/slo" {
			http.NotFound(w, r)
			return
		}
		select {
		case s.hits <- sloHit{query: r.URL.Query(), at: time.Now()}:
		default:
			http.Error(w, "too many requests", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><html lang="en"><head><title>SLO</title><link rel="icon" href="data:,"></head><body><h1 id="%s">Signed out</h1></body></html>`, id)
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL + "/slo"
	return s
}

// wait returns the next request to the SLO endpoint, failing after d.
func (s *sloServer) wait(tb *tab, d time.Duration) sloHit {
	tb.t.Helper()
	select {
	case h := <-s.hits:
		return h
	case <-time.After(d):
		tb.fatalf("no request at %s within %v", s.URL, d)
		return sloHit{}
	}
}

// TestBrowserLogout: single logout by the front channel in a real browser. The logout page loads the other
// application's LogoutRequest in a hidden frame under its CSP, then goes on by itself to the application that
// asked, carrying the LogoutResponse and its RelayState, with no console error or CSP violation.
func TestBrowserLogout(t *testing.T) {
	t.Parallel()
	browser := mustBrowser(t)
	e := newEnv(t)
	shots := screenshotDir(t)
	jira, jiraACS := newBrowserApp(t, e, "logout-jira")
	conf, confACS := newBrowserApp(t, e, "logout-confluence")
	jiraSLO, confSLO := newSLOServer(t, "jira-slo"), newSLOServer(t, "confluence-slo")
	jiraSP, _ := e.signingSP(jira, jiraSLO.URL)
	e.do("PATCH", "/api/v1/admin/apps/"+conf.ID, adminToken, map[string]any{"slo_url": confSLO.URL}, http.StatusOK, nil)
	const email = "logout.ada@example.com"
	ph := e.enroll(email)
	tb := openTab(t, browser, looks[0], shots)

	// Sign in to Jira with the phone, then to Confluence from the IdP session.
	u, err := jiraSP.BuildAuthURL("")
	if err != nil {
		t.Fatal(err)
	}
	tb.do(chromedp.Navigate(u), chromedp.WaitVisible(chromedp.CSS(`input[name="email"]`)))
	number := tb.identify(email)
	if ap := <-approveInBackground(ph, email, number); ap.err != nil {
		t.Fatalf("phone: %v", ap.err)
	}
	info, err := jiraSP.RetrieveAssertionInfo(jiraACS.wait(t, tb, followTimeout).samlResponse)
	if err != nil {
		t.Fatalf("the Jira Response: %v", err)
	}
	cu, err := e.sp(conf).BuildAuthURL("")
	if err != nil {
		t.Fatal(err)
	}
	tb.goTo(cu) // the IdP's answer, from its session, posts itself to Confluence at once
	confACS.wait(t, tb, followTimeout)
	tb.do(chromedp.WaitVisible(chromedp.ID("acs-received")))
	tb.checkConsole("signed in to both")

	// Jira asks to log out.
	doc, err := jiraSP.BuildLogoutRequestDocument(info.NameID, info.SessionIndex)
	if err != nil {
		t.Fatal(err)
	}
	lu, err := jiraSP.BuildLogoutURLRedirect("relay-logout", doc)
	if err != nil {
		t.Fatal(err)
	}
	tb.do(chromedp.Navigate(lu))
	frame := confSLO.wait(tb, stepTimeout)
	if frame.query.Get("SAMLRequest") == "" {
		t.Errorf("the Confluence frame carried no LogoutRequest: %v", frame.query)
	}
	back := jiraSLO.wait(tb, stepTimeout)
	t.Logf("the frame's LogoutRequest → the page went on to Jira %v later", back.at.Sub(frame.at).Round(time.Millisecond))
	if back.query.Get("SAMLResponse") == "" || back.query.Get("RelayState") != "relay-logout" {
		t.Errorf("the page went on to Jira with %v, want a LogoutResponse and RelayState relay-logout", back.query)
	}
	tb.do(chromedp.WaitVisible(chromedp.ID("jira-slo")))
	tb.checkConsole("after the logout")
}
