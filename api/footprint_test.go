package api_test

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/winkk/passport/api/apitest"
	"github.com/winkk/passport/store"
	"github.com/winkk/passport/store/storetest"
)

// Footprint limits in Redis (MEMORY USAGE: value, key and overhead).
const (
	maxAnsweredLogin = 4096 // an answered login, its signed Response kept for reloads
	maxSession       = 1024 // an IdP session that answered one application
)

// TestLoginFootprint measures, on real Redis, what one whole Atlassian-shaped login leaves behind: the
// answered login (which keeps its signed Response, so a reload shows the same one) and the IdP session it
// opened.
func TestLoginFootprint(t *testing.T) {
	t.Parallel()
	st := storetest.OpenRedis(t)
	e := envOf(t, apitest.StartOn(t, st))
	app := e.newApp("Jira", atlassianAudience, acsURL)
	e.do("PATCH", "/api/v1/admin/apps/"+app.ID, adminToken, map[string]any{"attribute_profile": "atlassian"}, 200, nil)
	ph := e.enroll(employee)
	e.do("PATCH", "/api/v1/admin/users/"+employee, adminToken, map[string]any{"given_name": "Ada", "family_name": "Lovelace", "groups": []string{"jira-software-users", "confluence-users"}}, 200, nil)
	b := newBrowser(t)
	relay := "https://start.atlassian.com/?continue=https%3A%2F%2Fexample.atlassian.net%2Fjira%2Fsoftware%2Fprojects%2FPAS%2Fboards%2F1%3FselectedIssue%3DPAS-1234"
	p := approve(t, b, b.identify(b.startLogin(e.sp(app), relay), employee), ph)
	resp, _ := samlForm(t, p, acsURL)
	e.bothAccept(t, app, resp, employee, []string{b.requestID})
	// A reload shows the very same Response, read back from the store.
	if again, _ := samlForm(t, b.get(p.URL), acsURL); again != resp {
		t.Fatal("a reload showed another Response")
	}

	ctx := context.Background()
	loginID := p.URL[strings.LastIndex(p.URL, "/")+1:]
	login, err := store.NewSpreadTable[json.RawMessage](st, "login").MemoryUsage(ctx, loginID)
	if err != nil {
		t.Fatalf("memory usage of login %s: %v", loginID, err)
	}
	var sessionID string
	for _, c := range b.c.Jar.Cookies(mustURL(t, e.URL+"/saml/")) {
		if c.Name == "passport_session" {
			v, _ := url.QueryUnescape(c.Value)
			sessionID, _, _ = strings.Cut(v, ".")
		}
	}
	if sessionID == "" {
		t.Fatal("the login opened no session")
	}
	sess, err := store.NewSpreadTable[json.RawMessage](st, "session").MemoryUsage(ctx, sessionID)
	if err != nil {
		t.Fatalf("memory usage of session %s: %v", sessionID, err)
	}
	t.Logf("in Redis: an answered login %d bytes (its Response is %d bytes), a session %d bytes", login, len(resp)*3/4, sess)
	if login > maxAnsweredLogin {
		t.Errorf("an answered login takes %d bytes, want at most %d", login, maxAnsweredLogin)
	}
	if sess > maxSession {
		t.Errorf("a session takes %d bytes, want at most %d", sess, maxSession)
	}
}
