package api

import (
	"bytes"
	"testing"

	"github.com/winkk/passport/saml/samltest/fuzzcorpus"
)

// executeTemplate is what html/template makes of the view's template: the reference the code writing the
// fast pages must match.
func executeTemplate(tb testing.TB, v view) string {
	tb.Helper()
	var b bytes.Buffer
	if err := viewTemplates[v.template()].ExecuteTemplate(&b, "layout", page{Head: v.head(), View: v}); err != nil {
		tb.Fatal(err)
	}
	return b.String()
}

func writeFast(v fastView) string {
	var b bytes.Buffer
	writeFastPage(&b, v.head(), v)
	return b.String()
}

// sameAsTemplate fails tb where the written page first differs from the template's.
func sameAsTemplate(tb testing.TB, v fastView) {
	tb.Helper()
	want, got := executeTemplate(tb, v), writeFast(v)
	if got == want {
		return
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	from := max(0, i-60)
	tb.Fatalf("%T %+v: the written page differs from its template at byte %d:\nwritten:  %q\ntemplate: %q",
		v, v, i, got[from:min(len(got), i+60)], want[from:min(len(want), i+60)])
}

// pageValues are values that each escaper treats differently: markup, quotes, entities, '+' (which the
// escapers rewrite), NUL, invalid UTF-8, the noncharacters html/template's unquoted-attribute escaper
// rewrites (not in use here: all our attributes are quoted), schemes a URL attribute must refuse and the
// forms of them it must let through, and percent escapes valid, truncated and not hex.
var pageValues = []string{
	"", "Jira", "ada@example.com", `"><script>alert(1)</script>`, "a'b\"c<d>e&f+g", "&amp; &#43; &lt;",
	"x\x00y", "\xff\xfe invalid", "é ü 日本 🙂", "\ufdd0\ufffe\uffff", "line\nbreak\ttab\r",
	"javascript:alert(1)", "JavaScript:alert(1)", " javascript:alert(1)", "data:text/html,<b>", "vbscript:x",
	"https://acme.atlassian.net/admin/saml/acs/1?a=1&b=2+3#frag", "HTTP://EXAMPLE.COM", "mailto:a@b",
	"/login/abc/events", "//evil.example/x", "./rel:ative", "/path:with/colon", "a/b:c", "?q=1:2",
	"%41%zz%4", "%", "%%41", "100%", "sp ace", "{}|\\^`", "[::1]:8080", "~user/!$*,;=@",
	hostile,
}

func TestFastPagesMatchTemplates(t *testing.T) {
	for _, s := range pageValues {
		for _, other := range []string{"", "x"} {
			for _, flag := range []bool{false, true} {
				sameAsTemplate(t, identifyView{AppName: s, Action: s, Email: s, FormError: other + s, State: s, Events: s, Page: s})
				sameAsTemplate(t, identifyView{AppName: other, Action: "/login/a", Email: other, FormError: other, State: "identify",
					Events: s, Page: s})
				sameAsTemplate(t, waitingView{AppName: s, Email: s, Number: len(s), ExpiresUnixMilli: -int64(len(s)), Remaining: s,
					ChangeAction: other + s, State: s, Events: s, Page: s, Refresh: len(other), CodeAction: other + s,
					CodeError: other + s, ShowCode: flag, Self: s})
				sameAsTemplate(t, waitingView{AppName: other, Email: other, Number: 7, Remaining: "4:59", ChangeAction: s,
					CodeAction: s, CodeError: s, ShowCode: flag, Self: s, Refresh: -3})
				sameAsTemplate(t, postView{AppName: s, Form: postForm{ACS: s, Response: []byte(s + other), RelayState: other + s}})
				if flag {
					sameAsTemplate(t, postView{Form: postForm{}})
				}
			}
		}
	}
}

// The pages render fields of their views that came from outside: an application's name and ACS URL (an
// administrator's, or an SP metadata file's), the email typed, the RelayState an SP sent. Whatever they
// hold, the written page is the template's, byte for byte.
func pageSeeds() []fuzzcorpus.Seed {
	seed := func(name, a, b, c string, n int, flag bool) fuzzcorpus.Seed {
		return fuzzcorpus.Seed{Name: name, Values: []any{a, b, c, n, flag}}
	}
	return []fuzzcorpus.Seed{
		seed("plain", "Jira", "ada@example.com", "https://acme.atlassian.net/admin/saml/acs/1", 42, false),
		seed("markup", `"><script>alert(1)</script>`, "a'b\"c<d>e&f+g", "javascript:alert(1)", 0, true),
		seed("bytes", "x\x00y\xff", "\ufdd0 é 🙂", "%41%zz%4 sp ace", -1, true),
		seed("schemes", "mailto:a@b", "//evil.example/x", "HTTPS://A/B?c=d&e=f+g#h", 1<<30, false),
	}
}

func FuzzFastPages(f *testing.F) {
	fuzzcorpus.Use(f, pageSeeds())
	f.Fuzz(func(t *testing.T, a, b, c string, n int, flag bool) {
		sameAsTemplate(t, identifyView{AppName: a, Action: c, Email: b, FormError: a, State: b, Events: c, Page: b})
		sameAsTemplate(t, waitingView{AppName: a, Email: b, Number: n, ExpiresUnixMilli: int64(n) << 10, Remaining: a,
			ChangeAction: c, State: a, Events: b, Page: c, Refresh: n, CodeAction: b, CodeError: a, ShowCode: flag, Self: c})
		sameAsTemplate(t, postView{AppName: a, Form: postForm{ACS: c, Response: []byte(b), RelayState: a}})
	})
}

// Every view whose page is written by code is one of the three compared above: a view made a fastView
// without a comparison here would be written unchecked.
func TestFastViewsAreCompared(t *testing.T) {
	compared := map[string]bool{"identify": true, "waiting": true, "post": true}
	for _, v := range []view{identifyView{}, waitingView{}, postView{}, pausedView{}, errorView{}, infoView{}, logoutView{}} {
		if _, fast := v.(fastView); fast != compared[v.template()] {
			t.Errorf("view %q: written by code %v, compared with its template here %v", v.template(), fast, compared[v.template()])
		}
	}
	if len(viewTemplates) != 7 {
		t.Errorf("%d views, want the 7 above", len(viewTemplates))
	}
}
