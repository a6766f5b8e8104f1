package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/winkk/passport/api/qrimage/qrtest"
)

// call sends a raw request and returns the status and the decoded error code (when the answer is an error).
func (e *env) call(method, path, token, contentType, body string) (int, string, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var eb struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if resp.StatusCode >= 400 {
		if err := json.Unmarshal(data, &eb); err != nil || eb.Error.Code == "" || eb.Error.Message == "" {
			e.t.Errorf("%s %s: error answer is not {error:{code,message}}: %s", method, path, data)
		}
		if bytes.Contains(data, []byte("goroutine")) || bytes.Contains(data, []byte(".go:")) {
			e.t.Errorf("%s %s: error leaks internals: %s", method, path, data)
		}
	}
	return resp.StatusCode, eb.Error.Code, data
}

func TestAdminApps(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	t.Run("setup guide flow", func(t *testing.T) {
		var a map[string]any
		e.do("POST", "/api/v1/admin/apps", adminToken, map[string]any{"name": "Jira", "url": "https://acme.atlassian.net", "interface": "saml2", "auth_type": "mobile push", "audience": "", "acs_url": ""}, http.StatusCreated, &a)
		id, _ := a["id"].(string)
		for _, k := range []string{"id", "sso_url", "metadata_url", "certificate_url", "entity_id", "name", "url", "interface", "auth_type", "audience", "acs_url", "nameid_format", "attribute_profile", "sp_certificates", "require_signed_requests", "relay_states", "slo_url"} {
			if _, ok := a[k]; !ok {
				t.Errorf("answer lacks %q: %v", k, a)
			}
		}
		if a["sso_url"] != e.URL+"/saml/"+id+"/sso" || a["certificate_url"] != e.URL+"/saml/certificate.pem" || a["entity_id"] != "Winkk Passport IdP" {
			t.Errorf("URLs: %v", a)
		}
		e.do("PATCH", "/api/v1/admin/apps/"+id, adminToken, map[string]any{"audience": atlassianAudience + "/", "acs_url": "https://auth.atlassian.com/login/callback?connection=saml-abc"}, http.StatusOK, &a)
		if a["audience"] != atlassianAudience+"/" || a["name"] != "Jira" {
			t.Errorf("after PATCH: %v", a)
		}
		var list struct{ Apps []map[string]any }
		e.do("GET", "/api/v1/admin/apps", adminToken, nil, http.StatusOK, &list)
		if len(list.Apps) == 0 {
			t.Error("list is empty")
		}
		e.do("GET", "/api/v1/admin/apps/"+id, adminToken, nil, http.StatusOK, &a)
		e.do("DELETE", "/api/v1/admin/apps/"+id, adminToken, nil, http.StatusNoContent, nil)
		if st, code, _ := e.call("GET", "/api/v1/admin/apps/"+id, adminToken, "", ""); st != 404 || code != "not_found" {
			t.Errorf("after delete: %d %s", st, code)
		}
		// The audience is free again once its app is gone.
		e.do("POST", "/api/v1/admin/apps", adminToken, map[string]any{"name": "Jira again", "audience": atlassianAudience + "/"}, http.StatusCreated, nil)
	})

	t.Run("Atlassian preset warns about shapes, never refuses", func(t *testing.T) {
		var a struct{ Warnings []string }
		e.do("POST", "/api/v1/admin/apps", adminToken, map[string]any{"name": "Jira", "attribute_profile": "atlassian",
			"audience": "https://sp.example.test/not-atlassian", "acs_url": "https://sp.example.test/acs"}, http.StatusCreated, &a)
		if len(a.Warnings) != 2 {
			t.Errorf("warnings %q, want one for the audience and one for the ACS URL", a.Warnings)
		}
		var good map[string]any
		e.do("POST", "/api/v1/admin/apps", adminToken, map[string]any{"name": "Jira", "attribute_profile": "atlassian",
			"audience": "https://auth.atlassian.com/saml/5c1a", "acs_url": "https://auth.atlassian.com/login/callback?connection=saml-5c1a"}, http.StatusCreated, &good)
		if w, ok := good["warnings"].([]any); !ok || len(w) != 0 {
			t.Errorf("warnings %#v for Atlassian-shaped values, want []", good["warnings"])
		}
	})

	taken := e.newApp("Confluence", "https://sp.example.test/confluence", "https://sp.example.test/acs")
	cases := []struct {
		name, method, path, token, ctype, body string
		status                                 int
		code                                   string
	}{
		{"no token", "GET", "/api/v1/admin/apps", "", "", "", 401, "unauthorized"},
		{"wrong token", "GET", "/api/v1/admin/apps", "nope", "", "", 401, "unauthorized"},
		{"the token less its last byte", "GET", "/api/v1/admin/apps", adminToken[:len(adminToken)-1], "", "", 401, "unauthorized"},
		{"the token and one byte more", "GET", "/api/v1/admin/apps", adminToken + "x", "", "", 401, "unauthorized"},
		{"missing name", "POST", "/api/v1/admin/apps", adminToken, "application/json", `{"interface":"saml2"}`, 400, "invalid_request"},
		{"unknown interface", "POST", "/api/v1/admin/apps", adminToken, "application/json", `{"name":"x","interface":"oidc"}`, 400, "invalid_request"},
		{"javascript ACS URL", "POST", "/api/v1/admin/apps", adminToken, "application/json", `{"name":"x","acs_url":"javascript:alert(1)"}`, 400, "invalid_request"},
		{"http ACS URL off loopback", "POST", "/api/v1/admin/apps", adminToken, "application/json", `{"name":"x","acs_url":"http://sp.example.com/acs"}`, 400, "invalid_request"},
		{"relative URL", "POST", "/api/v1/admin/apps", adminToken, "application/json", `{"name":"x","url":"/jira"}`, 400, "invalid_request"},
		{"bad SLO URL", "POST", "/api/v1/admin/apps", adminToken, "application/json", `{"name":"x","slo_url":"ftp://sp.example.com/slo"}`, 400, "invalid_request"},
		{"bad certificate", "POST", "/api/v1/admin/apps", adminToken, "application/json", `{"name":"x","sp_certificates":["not a pem"]}`, 400, "invalid_request"},
		{"bad nameid format", "POST", "/api/v1/admin/apps", adminToken, "application/json", `{"name":"x","nameid_format":"x509"}`, 400, "invalid_request"},
		{"duplicate audience", "POST", "/api/v1/admin/apps", adminToken, "application/json", `{"name":"x","audience":"` + taken.Audience + `"}`, 409, "conflict"},
		{"duplicate audience by PATCH", "PATCH", "/api/v1/admin/apps/" + e.newApp("Bitbucket", "https://sp.example.test/bb", "https://sp.example.test/acs").ID, adminToken, "application/json", `{"audience":"` + taken.Audience + `"}`, 409, "conflict"},
		{"unknown field", "POST", "/api/v1/admin/apps", adminToken, "application/json", `{"name":"x","colour":"red"}`, 400, "invalid_request"},
		{"not JSON", "POST", "/api/v1/admin/apps", adminToken, "application/json", `{"name":`, 400, "invalid_request"},
		{"wrong type", "POST", "/api/v1/admin/apps", adminToken, "application/json", `{"name":42}`, 400, "invalid_request"},
		{"not an object", "POST", "/api/v1/admin/apps", adminToken, "application/json", `["Jira"]`, 400, "invalid_request"},
		{"control character in the name", "POST", "/api/v1/admin/apps", adminToken, "application/json", `{"name":"Ji\u0007ra"}`, 400, "invalid_request"},
		{"non-character in an attribute name", "PATCH", "/api/v1/admin/apps/" + taken.ID, adminToken, "application/json", `{"attribute_map":{"email":"mail\uFFFE"}}`, 400, "invalid_request"},
		{"non-character in an invitation email", "POST", "/api/v1/admin/invitations", adminToken, "application/json", `{"email":"a\uFFFEb@example.com"}`, 400, "invalid_request"},
		{"control character in a user's name", "POST", "/api/v1/admin/users", adminToken, "application/json", `{"email":"ctl@example.com","given_name":"A\u0000"}`, 400, "invalid_request"},
		{"non-character in the ACS URL", "POST", "/api/v1/admin/apps", adminToken, "application/json", `{"name":"x","acs_url":"http://127.0.0.1:9/acs\uFFFF"}`, 400, "invalid_request"},
		{"non-character in the ACS URL list", "PATCH", "/api/v1/admin/apps/" + taken.ID, adminToken, "application/json", `{"acs_urls":[{"index":1,"url":"https://sp.example.test/acs\uFFFF"}]}`, 400, "invalid_request"},
		{"non-character in a group", "POST", "/api/v1/admin/users", adminToken, "application/json", `{"email":"grp@example.com","groups":["a\uFFFF"]}`, 400, "invalid_request"},
		{"form body", "POST", "/api/v1/admin/apps", adminToken, "application/x-www-form-urlencoded", `name=x`, 415, "unsupported_media_type"},
		{"too large", "POST", "/api/v1/admin/apps", adminToken, "application/json", `{"name":"` + strings.Repeat("x", 2<<20) + `"}`, 413, "too_large"},
		{"unknown app", "PATCH", "/api/v1/admin/apps/nope", adminToken, "application/json", `{"name":"x"}`, 404, "not_found"},
		{"bad invitation email", "POST", "/api/v1/admin/invitations", adminToken, "application/json", `{"email":"not-an-email"}`, 400, "invalid_request"},
		{"unknown route", "GET", "/api/v1/admin/nothing", adminToken, "", "", 404, "not_found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, code, body := e.call(tc.method, tc.path, tc.token, tc.ctype, tc.body)
			if st != tc.status || code != tc.code {
				t.Errorf("got %d %s, want %d %s: %s", st, code, tc.status, tc.code, body)
			}
			if strings.Contains(string(body), "authn.") || strings.Contains(string(body), "*string") {
				t.Errorf("the message names Go types: %s", body)
			}
		})
	}
	// Nothing already stored was lost by the refused requests.
	var got appView
	e.do("GET", "/api/v1/admin/apps/"+taken.ID, adminToken, nil, http.StatusOK, &got)
	if got.Audience != taken.Audience || got.ACSURL != taken.ACSURL {
		t.Errorf("stored app changed: %+v", got)
	}
}

func TestInvitationQR(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var inv struct {
		Token     string `json:"token"`
		EnrollURL string `json:"enroll_url"`
		QRURL     string `json:"qr_url"`
		ExpiresAt string `json:"expires_at"`
	}
	e.do("POST", "/api/v1/admin/invitations", adminToken, map[string]string{"email": "Ada@Example.com"}, http.StatusCreated, &inv)
	if inv.Token == "" || !strings.HasPrefix(inv.EnrollURL, e.URL+"/enroll?token=") || !strings.HasPrefix(inv.QRURL, e.URL+"/api/v1/admin/") || inv.ExpiresAt == "" {
		t.Fatalf("invitation: %+v", inv)
	}
	path := strings.TrimPrefix(inv.QRURL, e.URL)
	if st, _, _ := e.call("GET", path, "", "", ""); st != http.StatusUnauthorized {
		t.Errorf("QR without admin token: %d, want 401", st)
	}
	st, _, body := e.call("GET", path, adminToken, "", "")
	if st != http.StatusOK {
		t.Fatalf("QR: %d", st)
	}
	if read, err := qrtest.Read(body); err != nil || read != inv.EnrollURL {
		t.Errorf("the QR code reads %q (%v), want the enroll_url %q", read, err, inv.EnrollURL)
	}
}

// TestEnrollPage: an invitation's https link offers the app's deep link, and says so when it is no longer valid.
func TestEnrollPage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	token := e.invite("ada@example.com")
	p := newBrowser(t).get(e.URL + "/enroll?token=" + token)
	link := p.find(func(n *htmlNode) bool {
		return n.Data == "a" && strings.HasPrefix(attr(n, "href"), "passport://enroll?")
	})
	if p.Status != http.StatusOK || link == nil {
		t.Fatalf("no deep link on the page (%d):\n%s", p.Status, p.Body)
	}
	u, err := url.Parse(attr(link, "href"))
	if err != nil || u.Query().Get("server") != e.URL || u.Query().Get("token") != token {
		t.Errorf("deep link %q", attr(link, "href"))
	}
	if p := newBrowser(t).get(e.URL + "/enroll?token=nope"); p.Status != http.StatusGone {
		t.Errorf("unknown invitation: %d", p.Status)
	}
}
