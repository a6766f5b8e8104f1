package api_test

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// checkStrictPage fails t when a page the server sent carries an inline script, a style element or attribute,
// or an event-handler attribute, or a Content-Security-Policy that would allow them (unsafe-*, nonces). Every
// HTML page the tests' browser reads passes here.
func checkStrictPage(t *testing.T, p *page) {
	t.Helper()
	csp := p.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self';", "style-src 'self';", "frame-ancestors 'none'", "base-uri 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("%s (%d): the CSP %q lacks %q", p.URL, p.Status, csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-") || strings.Contains(csp, "nonce-") {
		t.Errorf("%s (%d): the CSP %q allows inline code", p.URL, p.Status, csp)
	}
	if cc := p.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("%s (%d): Cache-Control %q, want no-store", p.URL, p.Status, cc)
	}
	p.find(func(n *html.Node) bool {
		if n.Data == "script" && (attr(n, "src") == "" || n.FirstChild != nil) {
			t.Errorf("%s (%d): an inline <script>", p.URL, p.Status)
		}
		if n.Data == "style" {
			t.Errorf("%s (%d): a <style> element", p.URL, p.Status)
		}
		for _, a := range n.Attr {
			if a.Key == "style" || strings.HasPrefix(a.Key, "on") {
				t.Errorf("%s (%d): attribute %s on <%s>", p.URL, p.Status, a.Key, n.Data)
			}
		}
		return false
	})
}

// staticLinks returns the URLs of the scripts and stylesheets p links.
func staticLinks(p *page) []string {
	var out []string
	p.find(func(n *html.Node) bool {
		switch {
		case n.Data == "script":
			out = append(out, attr(n, "src"))
		case n.Data == "link" && attr(n, "rel") == "stylesheet":
			out = append(out, attr(n, "href"))
		}
		return false
	})
	return out
}

// TestStaticFiles: the pages' scripts and stylesheet are served without any cookie, with their content type,
// cached for a year under the hashed names the pages link, revalidated by ETag under their plain names.
func TestStaticFiles(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	jira := e.newApp("Jira", atlassianAudience, acsURL)
	ph := e.enroll(employee)
	b := newBrowser(t)
	identify := b.startLogin(e.sp(jira), "")
	waiting := b.identify(identify, employee)
	post := approve(t, b, waiting, ph)

	linked := map[string]bool{}
	for _, tc := range []struct {
		name string
		p    *page
		want []string // the files linked, by plain name
	}{
		{"identify", identify, []string{"passport.css", "login.js"}},
		{"waiting", waiting, []string{"passport.css", "login.js"}},
		{"post", post, []string{"passport.css", "autosubmit.js"}},
	} {
		var got []string
		for _, u := range staticLinks(tc.p) {
			linked[u] = true
			got = append(got, plainName(t, u))
		}
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("the %s page links %q, want %q", tc.name, got, tc.want)
		}
	}

	// A client with no cookie at all, as a cache or a browser's preload would be.
	c := &http.Client{}
	get := func(u string, header ...string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, e.URL+u, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(body)
	}
	types := map[string]string{".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
	plain := map[string]string{} // plain name → hashed URL
	for u := range linked {
		plain[plainName(t, u)] = u
	}
	for _, name := range []string{"passport.css", "login.js", "autosubmit.js", "logout.js"} {
		t.Run(name, func(t *testing.T) {
			ext := name[strings.LastIndex(name, "."):]
			resp, body := get("/static/" + name)
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != types[ext] || len(body) < 100 {
				t.Fatalf("/static/%s: %d %q, %d bytes", name, resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
				t.Errorf("the plain name is cached: Cache-Control %q", cc)
			}
			if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Error("no X-Content-Type-Options: nosniff")
			}
			etag := resp.Header.Get("ETag")
			if !regexp.MustCompile(`^"[0-9a-f]{32}"$`).MatchString(etag) {
				t.Errorf("ETag %q", etag)
			}
			if r, b := get("/static/"+name, "If-None-Match", etag); r.StatusCode != http.StatusNotModified || b != "" {
				t.Errorf("If-None-Match with its ETag: %d, %d bytes", r.StatusCode, len(b))
			}
			if r, _ := get("/static/"+name, "If-None-Match", `"0123"`); r.StatusCode != http.StatusOK {
				t.Errorf("If-None-Match with another ETag: %d", r.StatusCode)
			}

			hashed, ok := plain[name]
			if !ok {
				if name != "logout.js" { // only the logout page links it
					t.Fatalf("no page links %s", name)
				}
				return
			}
			if !regexp.MustCompile(`^/static/[a-z]+\.[0-9a-f]{12}\` + ext + `$`).MatchString(hashed) {
				t.Errorf("the pages link %q, not a name with the content's hash", hashed)
			}
			r, hb := get(hashed)
			if r.StatusCode != http.StatusOK || hb != body || r.Header.Get("Content-Type") != types[ext] || r.Header.Get("ETag") != etag {
				t.Errorf("%s: %d %q, ETag %q, same body %v", hashed, r.StatusCode, r.Header.Get("Content-Type"), r.Header.Get("ETag"), hb == body)
			}
			if cc := r.Header.Get("Cache-Control"); cc != "public, max-age=31536000, immutable" {
				t.Errorf("%s: Cache-Control %q", hashed, cc)
			}
			if len(r.Cookies()) != 0 {
				t.Errorf("%s sets cookies", hashed)
			}
			head, err := c.Head(e.URL + hashed)
			if err != nil {
				t.Fatal(err)
			}
			head.Body.Close()
			if head.StatusCode != http.StatusOK || head.Header.Get("Content-Type") != types[ext] || head.Header.Get("ETag") != etag {
				t.Errorf("HEAD %s: %d %q, ETag %q", hashed, head.StatusCode, head.Header.Get("Content-Type"), head.Header.Get("ETag"))
			}
		})
	}

	for _, u := range []string{"/static/nothing.js", "/static/login.000000000000.js", "/static/", "/static/..%2fpages.go", "/static/static.go"} {
		resp, body := get(u)
		if resp.StatusCode != http.StatusNotFound || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(body, "nothing at this address") {
			t.Errorf("%s: %d %q\n%s", u, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}
}

// plainName is the file name a hashed static URL stands for: /static/login.0123456789ab.js → login.js.
func plainName(t *testing.T, u string) string {
	t.Helper()
	m := regexp.MustCompile(`^/static/([a-z]+)\.[0-9a-f]+(\.[a-z]+)$`).FindStringSubmatch(u)
	if m == nil {
		t.Fatalf("%q is not a hashed static URL", u)
	}
	return m[1] + m[2]
}
