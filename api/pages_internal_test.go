package api

import (
	"bytes"
	"encoding/base64"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"
	"strconv"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"golang.org/x/net/html"
)

// hostile is text an attacker controls somewhere on a page (an email typed, a RelayState, an app name): it
// must come out as text, never as markup.
const hostile = `<script>alert(1)</script><style>*{}</style><img src=x onerror=alert(1)>"' onfocus="alert(1)"><b style="x">&amp;`

// viewCase is one view to render and what its page must show.
type viewCase struct {
	name string
	v    view
	// shows is text the page's visible text must contain (the hostile string, for the hostile cases).
	shows string
	// testIDs are the data-testid attributes the page must carry.
	testIDs []string
	// formAction and frameSrc are what the CSP must allow besides 'self' ('none' for frames when empty).
	formAction, frameSrc string
	// check looks at the page further.
	check func(t *testing.T, doc *html.Node, body string)
}

func viewCases() []viewCase {
	const acs = "https://auth.atlassian.com/login/callback?connection=saml-1"
	hostileForm := &postForm{ACS: acs, Response: []byte(hostile), RelayState: hostile}
	return []viewCase{
		{name: "identify zero", v: identifyView{}},
		{name: "identify hostile", v: identifyView{AppName: hostile, Action: "javascript:alert(1)", Email: hostile, FormError: hostile, State: hostile, Events: "javascript:alert(1)"},
			shows: hostile,
			check: func(t *testing.T, doc *html.Node, body string) {
				if got := attr(find(doc, byAttr("name", "email")), "value"); got != hostile {
					t.Errorf("the email field holds %q, want the address as typed", got)
				}
				if got := attr(find(doc, byTag("form")), "action"); got != "#ZgotmplZ" {
					t.Errorf("a javascript: form action came out as %q", got)
				}
				sc := find(doc, byTag("script"))
				if attr(sc, "data-state") != hostile || attr(sc, "data-events-url") != "#ZgotmplZ" {
					t.Errorf("the script's data: state %q, events %q", attr(sc, "data-state"), attr(sc, "data-events-url"))
				}
			}},
		{name: "waiting zero", v: waitingView{}, testIDs: []string{"match-number", "login-email"}},
		{name: "waiting hostile", v: waitingView{AppName: hostile, Email: hostile, Number: 42, ExpiresUnixMilli: 1, Remaining: hostile, ChangeAction: "/login/x/change", State: "pending", Events: "/login/x/events", Refresh: 3},
			shows: hostile, testIDs: []string{"match-number", "login-email", "change-email"},
			check: func(t *testing.T, doc *html.Node, body string) {
				if got := text(find(doc, byAttr("data-testid", "match-number"))); got != "42" {
					t.Errorf("match-number %q", got)
				}
				if got := text(find(doc, byAttr("data-testid", "change-email"))); got != "Not "+hostile+"? Use another email" {
					t.Errorf("change-email says %q", got)
				}
				if !strings.Contains(body, `<noscript><meta http-equiv="refresh" content="3"></noscript>`) {
					t.Error("the waiting page has no <noscript> refresh")
				}
				sc := find(doc, byTag("script"))
				if attr(sc, "data-state") != "pending" || attr(sc, "data-events-url") != "/login/x/events" {
					t.Errorf("the script's data: state %q, events %q", attr(sc, "data-state"), attr(sc, "data-events-url"))
				}
			}},
		{name: "post zero", v: postView{}, check: checkAutoSubmit},
		{name: "post base64", v: postView{AppName: "Jira", Form: postForm{ACS: acs, Response: fromBase64("PHNhbWxwOlJlc3BvbnNl+/8="), RelayState: "r"}}, formAction: "https://auth.atlassian.com",
			check: func(t *testing.T, doc *html.Node, body string) {
				checkSAMLFields(t, doc, "PHNhbWxwOlJlc3BvbnNl+/8=", "r")
				if !strings.Contains(body, `value="PHNhbWxwOlJlc3BvbnNl+/8="`) {
					t.Error("the base64 Response is not written as it is")
				}
			}},
		{name: "post hostile", v: postView{AppName: hostile, Form: *hostileForm}, shows: hostile, formAction: "https://auth.atlassian.com",
			check: func(t *testing.T, doc *html.Node, body string) {
				checkAutoSubmit(t, doc, body)
				checkSAMLFields(t, doc, base64.StdEncoding.EncodeToString([]byte(hostile)), hostile)
			}},
		{name: "paused zero", v: pausedView{}, testIDs: []string{"login-paused"}},
		{name: "paused hostile", v: pausedView{AppName: hostile, Message: hostile, Email: hostile, ChangeAction: "/login/x/change", Return: hostileForm},
			shows: hostile, testIDs: []string{"login-paused", "login-email", "change-email"}, formAction: "https://auth.atlassian.com",
			check: func(t *testing.T, doc *html.Node, body string) {
				checkSAMLFields(t, doc, base64.StdEncoding.EncodeToString([]byte(hostile)), hostile)
			}},
		{name: "error zero-ish", v: errorView{Title: "Not found"}, testIDs: []string{"login-error"}},
		{name: "error hostile", v: errorView{Title: hostile, Message: hostile, AppName: hostile, Return: hostileForm},
			shows: hostile, testIDs: []string{"login-error"}, formAction: "https://auth.atlassian.com",
			check: func(t *testing.T, doc *html.Node, body string) {
				checkSAMLFields(t, doc, base64.StdEncoding.EncodeToString([]byte(hostile)), hostile)
				if got := text(find(doc, byTag("title"))); got != hostile+" · Passport" {
					t.Errorf("title %q", got)
				}
			}},
		{name: "info zero-ish", v: infoView{Title: "Enroll your phone"}},
		{name: "info hostile", v: infoView{Title: hostile, Message: hostile, Link: "passport://enroll?server=https%3A%2F%2Fidp&token=t", LinkText: hostile},
			shows: hostile,
			check: func(t *testing.T, doc *html.Node, body string) {
				if got := attr(find(doc, byTag("a")), "href"); got != "passport://enroll?server=https%3A%2F%2Fidp&token=t" {
					t.Errorf("the app's deep link came out as %q", got)
				}
			}},
		{name: "logout zero", v: logoutView{}, testIDs: []string{"logout"}},
		{name: "logout hostile", v: logoutView{AppName: hostile, Frames: []string{"https://a.example/slo?SAMLRequest=" + hostile, "https://b.example:8443/slo"}, Continue: "javascript:alert(1)"},
			shows: hostile, testIDs: []string{"logout"}, frameSrc: "https://a.example https://b.example:8443",
			check: func(t *testing.T, doc *html.Node, body string) {
				if got := attr(find(doc, byAttr("id", "continue")), "href"); got != "#ZgotmplZ" {
					t.Errorf("a javascript: continue link came out as %q", got)
				}
				var frames []string
				walk(doc, func(n *html.Node) {
					if n.Data == "iframe" {
						frames = append(frames, attr(n, "src"))
					}
				})
				if len(frames) != 2 || !strings.HasPrefix(frames[0], "https://a.example/slo?SAMLRequest=") || strings.ContainsAny(frames[0], `<>"' `) {
					t.Errorf("frames %q", frames)
				}
			}},
	}
}

// TestViews renders every view, with its zero value and with hostile strings in every field it shows, and
// checks each page: escaped, no inline script or style, a strict CSP without nonce, and its test IDs.
func TestViews(t *testing.T) {
	t.Parallel()
	cases := viewCases()
	covered := map[string]bool{}
	for _, tc := range cases {
		covered[tc.v.template()] = true
		t.Run(tc.name, func(t *testing.T) {
			rec := renderRecorder(t, http.StatusTeapot, tc.v)
			if rec.Code != http.StatusTeapot {
				t.Errorf("status %d, want the one asked for", rec.Code)
			}
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
				t.Errorf("Content-Type %q", ct)
			}
			if cl := rec.Header().Get("Content-Length"); cl != strconv.Itoa(rec.Body.Len()) {
				t.Errorf("Content-Length %q for a page of %d bytes", cl, rec.Body.Len())
			}
			if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", cc)
			}
			csp := rec.Header().Get("Content-Security-Policy")
			want := "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; form-action 'self'"
			if tc.formAction != "" {
				want += " " + tc.formAction
			}
			frameSrc := tc.frameSrc
			if frameSrc == "" {
				frameSrc = "'none'"
			}
			want += "; frame-src " + frameSrc + "; frame-ancestors 'none'; base-uri 'none'"
			if csp != want {
				t.Errorf("CSP\n got %s\nwant %s", csp, want)
			}
			doc, err := html.Parse(strings.NewReader(rec.Body.String()))
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range strictProblems(doc) {
				t.Error(p)
			}
			for _, n := range []string{"img", "b"} {
				if find(doc, byTag(n)) != nil {
					t.Errorf("a <%s> element came through:\n%s", n, rec.Body)
				}
			}
			if h1 := find(doc, byTag("h1")); h1 == nil || text(h1) == "" {
				t.Error("no heading")
			}
			if brand := text(find(doc, byAttr("class", "brand"))); !strings.HasPrefix(brand, "Passport") {
				t.Errorf("brand %q", brand)
			}
			if tc.shows != "" && !strings.Contains(text(find(doc, byTag("body"))), tc.shows) {
				t.Errorf("the page does not show %q as text:\n%s", tc.shows, rec.Body)
			}
			for _, id := range tc.testIDs {
				if find(doc, byAttr("data-testid", id)) == nil {
					t.Errorf("no data-testid=%q", id)
				}
			}
			// Every script and stylesheet the page links is one of ours, under its hashed name.
			walk(doc, func(n *html.Node) {
				u := ""
				switch {
				case n.Data == "script":
					u = attr(n, "src")
				case n.Data == "link" && attr(n, "rel") == "stylesheet":
					u = attr(n, "href")
				default:
					return
				}
				a, ok := assets[strings.TrimPrefix(u, "/static/")]
				if !strings.HasPrefix(u, "/static/") || !ok || path.Base(u) != a.hashedName {
					t.Errorf("the page links %q, not a static file under its hashed name", u)
				}
			})
			if tc.check != nil {
				tc.check(t, doc, rec.Body.String())
			}
		})
	}
	for name := range viewTemplates {
		if !covered[name] {
			t.Errorf("view %q has no case here", name)
		}
	}
	files, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(path.Base(f), ".html")
		if _, ok := viewTemplates[name]; !ok && name != "layout" && name != "parts" {
			t.Errorf("%s is neither a view nor the layout or its parts", f)
		}
	}
}

func TestRenderUnknownView(t *testing.T) {
	t.Parallel()
	c := echo.New().NewContext(httptest.NewRequest(http.MethodGet, "/", nil), httptest.NewRecorder())
	if err := renderPage(c, http.StatusOK, unknownView{}); err == nil || !strings.Contains(err.Error(), "nowhere") {
		t.Errorf("rendering a view without a template: %v", err)
	}
	if _, err := staticURL("nowhere.js"); err == nil {
		t.Error("a page may link a static file that does not exist")
	}
}

type unknownView struct{}

func (unknownView) template() string { return "nowhere" }
func (unknownView) head() pageHead   { return pageHead{} }

// strictProblems lists what the CSP would block or what could carry script: inline scripts, style elements
// and attributes, event-handler attributes, javascript: URLs.
func strictProblems(doc *html.Node) []string {
	var out []string
	walk(doc, func(n *html.Node) {
		switch n.Data {
		case "script":
			if attr(n, "src") == "" || strings.TrimSpace(text(n)) != "" {
				out = append(out, "an inline <script>")
			}
		case "style":
			out = append(out, "a <style> element")
		}
		for _, a := range n.Attr {
			switch {
			case a.Key == "style":
				out = append(out, "a style attribute on <"+n.Data+">")
			case strings.HasPrefix(a.Key, "on"):
				out = append(out, "an event handler attribute "+a.Key+" on <"+n.Data+">")
			case strings.HasPrefix(strings.ToLower(strings.TrimSpace(a.Val)), "javascript:"):
				out = append(out, "a javascript: URL in "+a.Key+" on <"+n.Data+">")
			}
		}
	})
	return out
}

func checkAutoSubmit(t *testing.T, doc *html.Node, body string) {
	t.Helper()
	form := find(doc, byAttr("id", "saml-form"))
	if form == nil || attr(form, "method") != "post" {
		t.Fatal("no form#saml-form posting")
	}
	sc := find(doc, func(n *html.Node) bool { return n.Data == "script" && attr(n, "data-form") != "" })
	if sc == nil || attr(sc, "data-form") != "saml-form" {
		t.Error("no script is told to submit the form")
	}
	if !strings.Contains(body, "<noscript><button type=\"submit\">Continue to ") {
		t.Error("no button for browsers without scripts")
	}
}

// fromBase64 decodes a base64 literal of a test.
func fromBase64(s string) []byte {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func checkSAMLFields(t *testing.T, doc *html.Node, samlResponse, relayState string) {
	t.Helper()
	if got := attr(find(doc, byAttr("name", "SAMLResponse")), "value"); got != samlResponse {
		t.Errorf("SAMLResponse %q", got)
	}
	if got := attr(find(doc, byAttr("name", "RelayState")), "value"); got != relayState {
		t.Errorf("RelayState %q", got)
	}
}

func renderRecorder(t *testing.T, status int, v view) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	c := echo.New().NewContext(httptest.NewRequest(http.MethodGet, "/", nil), rec)
	if err := renderPage(c, status, v); err != nil {
		t.Fatalf("render %s: %v", v.template(), err)
	}
	return rec
}

func walk(n *html.Node, f func(*html.Node)) {
	if n.Type == html.ElementNode {
		f(n)
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		walk(c, f)
	}
}

func find(n *html.Node, match func(*html.Node) bool) *html.Node {
	if n == nil {
		return nil
	}
	if n.Type == html.ElementNode && match(n) {
		return n
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if f := find(c, match); f != nil {
			return f
		}
	}
	return nil
}

func byTag(tag string) func(*html.Node) bool { return func(n *html.Node) bool { return n.Data == tag } }

func byAttr(key, val string) func(*html.Node) bool {
	return func(n *html.Node) bool { return attr(n, key) == val }
}

func attr(n *html.Node, key string) string {
	if n == nil {
		return ""
	}
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func text(n *html.Node) string {
	if n == nil {
		return ""
	}
	var sb strings.Builder
	var w func(*html.Node)
	w = func(n *html.Node) {
		if n.Type == html.TextNode {
			sb.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			w(c)
		}
	}
	w(n)
	return strings.TrimSpace(sb.String())
}

// BenchmarkRenderPages is what a login's three pages cost to render (the email form, the number, the
// auto-posting Response) as the server renders and sends them; under "written" the page alone as code
// writes it (pagewriter.go), under "template" as html/template executes its template (its escapers called
// through reflection for every action), each into a buffer of its own.
func BenchmarkRenderPages(b *testing.B) {
	e := echo.New()
	for _, tc := range []struct {
		name string
		v    view
	}{
		{"identify", identifyView{AppName: "Jira", Action: "/login/abc", Email: "ada@example.com", State: "identify",
			Events: "/login/abc/events", Page: "/login/abc"}},
		{"waiting", waitingView{AppName: "Jira", Email: "ada@example.com", Number: 42, ChangeAction: "/login/abc/change",
			ExpiresUnixMilli: 1, Remaining: "4:59", State: "pending", Events: "/login/abc/events", Page: "/login/abc",
			Refresh: 3, CodeAction: "/login/abc/code", Self: "/login/abc"}},
		{"post", postView{AppName: "Jira", Form: postForm{ACS: "https://example.atlassian.net/admin/saml/acs/1",
			Response: fromBase64(strings.Repeat("PHNhbWxwOlJlc3BvbnNl", 650)), RelayState: "https://start.atlassian.com"}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c := e.NewContext(httptest.NewRequest(http.MethodGet, "/", nil), httptest.NewRecorder())
				if err := renderPage(c, http.StatusOK, tc.v); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tc.name+"/written", func(b *testing.B) {
			b.ReportAllocs()
			buf := new(bytes.Buffer)
			for b.Loop() {
				buf.Reset()
				writeFastPage(buf, tc.v.head(), tc.v.(fastView))
			}
		})
		b.Run(tc.name+"/template", func(b *testing.B) {
			b.ReportAllocs()
			t, buf := viewTemplates[tc.v.template()], new(bytes.Buffer)
			for b.Loop() {
				buf.Reset()
				if err := t.ExecuteTemplate(buf, "layout", page{Head: tc.v.head(), View: tc.v}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
