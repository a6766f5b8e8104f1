package api_test

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/net/html"

	"github.com/winkk/passport/api/apitest"
	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/saml/samltest/fuzzcorpus"
)

func loginFormSeeds() []fuzzcorpus.Seed {
	seed := func(name, body string) fuzzcorpus.Seed { return fuzzcorpus.Seed{Name: name, Values: []any{body}} }
	return []fuzzcorpus.Seed{
		seed("plain", "email=alice%40example.com"),
		seed("mixed-case", "email=+Alice%40Example.COM+"),
		seed("empty-email", "email="),
		seed("no-email", "name=alice"),
		seed("empty-body", ""),
		seed("two-emails", "email=alice%40example.com&email=mallory%40example.com"),
		seed("invalid-first", "email=not-an-address&email=alice%40example.com"),
		seed("display-name", "email=Alice+%3Calice%40example.com%3E"),
		seed("rtl-override", "email=alice%E2%80%AE%40example.com"),
		seed("invalid-utf8", "email=alice%FF%40example.com"),
		seed("nul", "email=alice%00%40example.com"),
		seed("crlf", "email=alice%40example.com%0D%0ABcc%3A+eve%40example.com"),
		seed("markup", "email=%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E%40example.com"),
		seed("bad-escape", "email=alice%ZZ%40example.com"),
		seed("bad-escape-then-good", "x=%ZZ&email=alice%40example.com"),
		seed("semicolon", "a=1;email=alice%40example.com"),
		seed("raw-at-and-plus", "email=alice+smith@example.com"),
		seed("too-long", "email="+strings.Repeat("a", 250)+"%40example.com"),
		seed("over-body-limit", "email="+strings.Repeat("a", 9000)),
	}
}

// FuzzLoginForm posts what the fuzzer makes, as an application/x-www-form-urlencoded body, to
// POST /login/{txnID} of a real server (apitest, on the test Redis), each time on a fresh login in the
// identify step and from the browser that started it. Whatever the body: no 5xx, and the handler does what
// its email field, as NormalizeEmail judges it, calls for — an address moves the login on, with that
// address normalized, and answers 200 with the login's page as loading it shows it (the number to match); anything else keeps the login where it was and
// answers 400 with the identify form, the address typed given back intact and the error next to it; a body
// over the 8 KB limit is 413.
func FuzzLoginForm(f *testing.F) {
	fuzzcorpus.Use(f, loginFormSeeds())
	// Every input parks a login from the same test client: on a fast machine the fuzzer parks more than the
	// per-network limit of a minute (1,000) within two seconds, and the limit is not what is fuzzed here.
	s := apitest.Start(f, func(c *authn.Config) { c.IdentifyLimit, c.Limits.ParksPerMinute = 1<<40, 1<<40 })
	name, audience, acs := "Fuzz", "https://sp.example.test/saml", "https://sp.example.test/acs"
	app, err := s.Svc.Apps.Create(context.Background(), authn.AppPatch{Name: &name, Audience: &audience, ACSURL: &acs})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body string) {
		id, cookie := startFuzzLogin(t, s, app)
		req := httptest.NewRequest("POST", s.URL+"/login/"+id, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(cookie)
		rec := httptest.NewRecorder()
		s.API.ServeHTTP(rec, req)
		page := rec.Body.String()
		if rec.Code >= 500 || strings.Contains(page, "goroutine ") || strings.Contains(page, "panic") {
			t.Fatalf("POST %q: %d\n%s", body, rec.Code, page)
		}
		if len(body) > 8<<10 {
			if rec.Code != http.StatusRequestEntityTooLarge {
				t.Fatalf("POST of %d bytes: %d, want 413", len(body), rec.Code)
			}
			return
		}
		form, _ := url.ParseQuery(body) // what net/http reads: the pairs it can
		typed := form.Get("email")
		email, invalid := authn.NormalizeEmail(typed)
		l, err := s.Svc.Logins.Get(context.Background(), id, cookie.Value)
		if err != nil {
			t.Fatalf("login after POST %q: %v", body, err)
		}
		if invalid == nil {
			if l.Email != email || l.Current(s.Clock.Now()) == authn.StateIdentify {
				t.Fatalf("POST %q: login holds %q in state %s, want %q past identify", body, l.Email, l.Current(s.Clock.Now()), email)
			}
			get := httptest.NewRequest("GET", s.URL+"/login/"+id, nil)
			get.AddCookie(cookie)
			again := httptest.NewRecorder()
			s.API.ServeHTTP(again, get)
			// The same page: its title, and the number when the login waits (a paused login's page carries an
			// error Response signed anew each time).
			title := func(p string) string {
				_, after, _ := strings.Cut(p, "<title>")
				t, _, _ := strings.Cut(after, "</title>")
				return t
			}
			same := title(page) != "" && title(page) == title(again.Body.String())
			if l.State == authn.StatePending {
				same = same && strings.Contains(page, `data-testid="match-number">`+strconv.Itoa(l.Number)+`<`)
			}
			if rec.Code != http.StatusOK || !same {
				t.Fatalf("POST %q (email %q): %d, want 200 with the page as loading it shows it (%d)\n%s\n---- loaded:\n%s", body, email, rec.Code, again.Code, page, again.Body.String())
			}
			return
		}
		if rec.Code != http.StatusBadRequest {
			t.Fatalf("POST %q (email %q refused: %v): %d, want 400", body, typed, invalid, rec.Code)
		}
		if l.Email != "" || l.Current(s.Clock.Now()) != authn.StateIdentify {
			t.Fatalf("POST %q: a refused email moved the login to %s with %q", body, l.Current(s.Clock.Now()), l.Email)
		}
		input, alert := identifyForm(t, page)
		if !strings.Contains(alert, "email") && !strings.Contains(alert, "address") {
			t.Fatalf("POST %q: the error shown is %q", body, alert)
		}
		if utf8.ValidString(typed) && !strings.ContainsAny(typed, "\x00\r") && input != typed {
			t.Fatalf("POST %q: the form gives back %q, the browser sent %q", body, input, typed)
		}
	})
}

// identifyForm reads the identify page: the value of its email input and the text of its error.
func identifyForm(t *testing.T, page string) (value, alert string) {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	var input, errText *html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "input" && attr(n, "name") == "email" {
			input = n
		}
		if n.Type == html.ElementNode && attr(n, "id") == "formerror" {
			errText = n
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	if input == nil || errText == nil {
		t.Fatalf("no identify form with an error:\n%s", page)
	}
	return attr(input, "value"), text(errText)
}

// startFuzzLogin sends an AuthnRequest by HTTP-Redirect and returns the login it parked and its browser
// cookie.
func startFuzzLogin(t *testing.T, s *apitest.Server, app authn.App) (string, *http.Cookie) {
	t.Helper()
	xml := fmt.Sprintf(`<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_fuzz%s" Version="2.0" IssueInstant="%s" Destination="%s/saml/%s/sso" AssertionConsumerServiceURL="%s"><saml:Issuer>%s</saml:Issuer></samlp:AuthnRequest>`,
		rand.Text(), s.Clock.Now().UTC().Format("2006-01-02T15:04:05Z"), s.URL, app.ID, app.ACSURL, app.Audience)
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, flate.BestSpeed)
	w.Write([]byte(xml))
	w.Close()
	q := url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString(buf.Bytes())}}.Encode()
	rec := httptest.NewRecorder()
	s.API.ServeHTTP(rec, httptest.NewRequest("GET", s.URL+"/saml/"+app.ID+"/sso?"+q, nil))
	loc := rec.Header().Get("Location")
	id, ok := strings.CutPrefix(loc, "/login/")
	if !ok {
		if rest, found := strings.CutPrefix(loc, s.URL+"/login/"); found {
			id, ok = rest, true
		}
	}
	if rec.Code != http.StatusSeeOther || !ok {
		t.Fatalf("SSO: %d to %q\n%s", rec.Code, loc, rec.Body.String())
	}
	for _, c := range rec.Result().Cookies() {
		if c.Name == "passport_login" {
			return id, c
		}
	}
	t.Fatalf("SSO set no login cookie: %v", rec.Result().Cookies())
	return "", nil
}
