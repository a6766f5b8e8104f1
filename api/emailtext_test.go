package api_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestEmailsAreTakenAsSent: an email that is not valid text is refused with a clear 400 wherever JSON carries
// one (the admin users and invitations APIs, and the unauthenticated email-code request), never stored with
// U+FFFD in place of what was sent; and an address holding invisible text-direction characters, which would
// show as another address, is refused too.
func TestEmailsAreTakenAsSent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	endpoints := []struct{ name, path, token string }{
		{"admin users", "/api/v1/admin/users", adminToken},
		{"admin invitations", "/api/v1/admin/invitations", adminToken},
		{"email codes", "/api/v1/device/email-codes", ""},
	}
	for _, tc := range []struct {
		name, body, says string
	}{
		{"a byte that is not UTF-8", "{\"email\":\"a\xffb@example.com\"}", "UTF-8"},
		{"a cut multi-byte character", "{\"email\":\"ab\xc3@example.com\"}", "UTF-8"},
		{"an encoded surrogate half", "{\"email\":\"a\xed\xa0\x80b@example.com\"}", "UTF-8"},
		{"an escaped high surrogate alone", `{"email":"a\ud800b@example.com"}`, "surrogate"},
		{"an escaped low surrogate alone", `{"email":"a\udc00b@example.com"}`, "surrogate"},
		{"a right-to-left override, escaped", `{"email":"ad\u202emin@example.com"}`, "text-direction"},
		{"a left-to-right isolate, raw", "{\"email\":\"a\u2066b\u2069@example.com\"}", "text-direction"},
		{"a right-to-left mark", "{\"email\":\"ab@exa\u200fmple.com\"}", "text-direction"},
		{"an Arabic letter mark", "{\"email\":\"a\u061cb@example.com\"}", "text-direction"},
	} {
		for _, ep := range endpoints {
			t.Run(ep.name+"/"+tc.name, func(t *testing.T) {
				st, code, body := e.call("POST", ep.path, ep.token, "application/json", tc.body)
				if st != http.StatusBadRequest || code != "invalid_request" || !strings.Contains(string(body), tc.says) {
					t.Errorf("got %d %s, want 400 invalid_request saying %q: %s", st, code, tc.says, body)
				}
			})
		}
	}
	// Nothing was stored under the replaced text.
	for _, email := range []string{"a\uFFFDb@example.com", "ab\uFFFD@example.com", "a\uFFFD\uFFFD\uFFFDb@example.com"} {
		if st, _, body := e.call("GET", "/api/v1/admin/users/"+url.PathEscape(email), adminToken, "", ""); st != http.StatusNotFound {
			t.Errorf("user %q: %d %s", email, st, body)
		}
	}
	// A well-formed pair of escapes is a character like any other, and a plain address still works.
	if st, _, body := e.call("POST", "/api/v1/admin/users", adminToken, "application/json", `{"email":"plain@example.com","given_name":"Ada \ud83d\ude00"}`); st != http.StatusCreated {
		t.Errorf("a user with an escaped surrogate pair in the name: %d %s", st, body)
	}
}
