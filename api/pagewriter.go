package api

import (
	"bytes"
	"encoding/base64"
	"strconv"
	"strings"
)

// The three pages of every login — the email form, the number to match, the Response handed to the
// application — are written by the code below, not executed from their templates: html/template runs every
// action through its escapers by reflection, which made rendering them some 6% of a login's CPU at
// saturation. Their templates (identify, waiting and post under templates/) stay the reference: the code
// writes byte for byte what html/template makes of them, with the escapers html/template itself chose for
// each action (its escaped parse tree names them: rcdata, attr, html, and url filter + normalizer + attr for
// URL attributes), and TestFastPagesMatchTemplates and FuzzFastPages render both for every field and every
// branch and fail on the first byte that differs. A change to one of those templates fails them until the
// code below changes with it. Every other page is executed from its template.

// fastView is a view whose page is written by code; the template of the same name stays its reference.
type fastView interface {
	view
	// writeContent writes what the view's "content" template makes; writeScripts its "scripts".
	writeContent(b *bytes.Buffer)
	writeScripts(b *bytes.Buffer)
}

// The static files' URLs, as the layout and the views' script tags write them (escaped once: they are
// constant for the life of the process).
var (
	stylesheetAttr   = staticAttr("passport.css")
	loginScriptAttr  = staticAttr("login.js")
	submitScriptAttr = staticAttr("autosubmit.js")
)

func staticAttr(name string) string {
	u, err := staticURL(name)
	if err != nil {
		panic(err) // the file is embedded with the binary; its absence is a build error, caught by every test
	}
	var b bytes.Buffer
	writeURLAttr(&b, u)
	return b.String()
}

// writeFastPage writes the layout (templates/layout.html) around a fastView.
func writeFastPage(b *bytes.Buffer, h pageHead, v fastView) {
	b.WriteString("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n" +
		"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n" +
		"<meta name=\"robots\" content=\"noindex\">\n<title>")
	writeEscaped(b, h.Title)
	b.WriteString(" · Passport</title>\n<link rel=\"icon\" href=\"data:,\">\n<link rel=\"stylesheet\" href=\"")
	b.WriteString(stylesheetAttr)
	b.WriteString(`">`)
	if h.Refresh != 0 {
		b.WriteString("\n<noscript><meta http-equiv=\"refresh\" content=\"")
		b.WriteString(strconv.Itoa(h.Refresh))
		b.WriteString(`"></noscript>`)
	}
	b.WriteString("\n</head>\n<body>\n<main>\n<p class=\"brand\">Passport")
	if h.AppName != "" {
		b.WriteString(" · ")
		writeEscaped(b, h.AppName)
	}
	b.WriteString("</p>\n")
	v.writeContent(b)
	b.WriteString("\n</main>")
	v.writeScripts(b)
	b.WriteString("\n</body>\n</html>\n")
}

// writeFollowScripts writes the "scripts" block of a view that follows its login's state: the "follow" part
// (templates/parts.html) on a line of its own.
func writeFollowScripts(b *bytes.Buffer, state, events, page string) {
	b.WriteString("\n<script src=\"")
	b.WriteString(loginScriptAttr)
	b.WriteString(`" data-state="`)
	writeEscaped(b, state)
	b.WriteString(`" data-events-url="`)
	writeURLAttr(b, events)
	b.WriteString(`" data-page-url="`)
	writeURLAttr(b, page)
	b.WriteString(`"></script>`)
}

func (v identifyView) writeContent(b *bytes.Buffer) {
	b.WriteString("<h1>Sign in to ")
	writeEscaped(b, v.AppName)
	b.WriteString("</h1>\n<p class=\"muted\">Enter your work email. We will send a sign-in request to your phone.</p>\n" +
		"<form method=\"post\" action=\"")
	writeURLAttr(b, v.Action)
	b.WriteString("\">\n<label for=\"email\">Work email</label>\n" +
		`<input id="email" name="email" type="email" autocomplete="username" required autofocus value="`)
	writeEscaped(b, v.Email)
	b.WriteString(`"`)
	if v.FormError != "" {
		b.WriteString(` aria-invalid="true" aria-describedby="formerror"`)
	}
	b.WriteString(">\n")
	if v.FormError != "" {
		b.WriteString(`<p id="formerror" class="formerror" role="alert">`)
		writeEscaped(b, v.FormError)
		b.WriteString("</p>")
	}
	b.WriteString("\n<button type=\"submit\">Continue</button>\n</form>")
}

func (v identifyView) writeScripts(b *bytes.Buffer) { writeFollowScripts(b, v.State, v.Events, v.Page) }

func (v waitingView) writeContent(b *bytes.Buffer) {
	b.WriteString("<h1>Approve on your phone</h1>\n<p class=\"muted\">Signing in as <strong data-testid=\"login-email\">")
	writeEscaped(b, v.Email)
	b.WriteString("</strong>. Open Passport on your phone and enter this number:</p>\n" +
		`<p class="number" data-testid="match-number">`)
	b.WriteString(strconv.Itoa(v.Number))
	b.WriteString("</p>\n" + `<p class="countdown" role="timer" aria-live="off">Expires in <span id="countdown" data-expires="`)
	b.WriteString(strconv.FormatInt(v.ExpiresUnixMilli, 10))
	b.WriteString(`">`)
	writeEscaped(b, v.Remaining)
	b.WriteString("</span></p>\n<p class=\"muted\">Didn't get a notification? Open the Passport app: the request is waiting there.</p>\n")
	switch {
	case v.ShowCode:
		b.WriteString(`<form method="post" action="`)
		writeURLAttr(b, v.CodeAction)
		b.WriteString("\" data-testid=\"code-form\">\n<label for=\"code\">Code shown in the Passport app</label>\n" +
			`<input id="code" class="code" name="code" inputmode="numeric" autocomplete="one-time-code" maxlength="9" required autofocus`)
		if v.CodeError != "" {
			b.WriteString(` aria-invalid="true" aria-describedby="codeerror"`)
		}
		b.WriteString(">\n")
		if v.CodeError != "" {
			b.WriteString(`<p id="codeerror" class="formerror" role="alert" data-testid="code-error">`)
			writeEscaped(b, v.CodeError)
			b.WriteString("</p>")
		}
		b.WriteString("\n<button type=\"submit\">Sign in with the code</button>\n</form>\n")
	case v.CodeAction != "":
		b.WriteString(`<form method="get" action="`)
		writeURLAttr(b, v.Self)
		b.WriteString("\">\n<input type=\"hidden\" name=\"use\" value=\"code\">\n" +
			"<button type=\"submit\" class=\"secondary\" data-testid=\"use-code\">Use a code from the app instead</button>\n</form>")
	}
	b.WriteString("\n")
	if v.ChangeAction != "" { // the "change" part
		b.WriteString(`<form method="post" action="`)
		writeURLAttr(b, v.ChangeAction)
		b.WriteString("\">\n<button type=\"submit\" class=\"secondary\" data-testid=\"change-email\">Not ")
		writeEscaped(b, v.Email)
		b.WriteString("? Use another email</button>\n</form>")
	}
}

func (v waitingView) writeScripts(b *bytes.Buffer) { writeFollowScripts(b, v.State, v.Events, v.Page) }

func (v postView) writeContent(b *bytes.Buffer) {
	b.WriteString("<h1>Signing you in</h1>\n<p class=\"muted\">Taking you to ")
	writeEscaped(b, v.AppName)
	b.WriteString("…</p>\n") // {{with .Form}}: a postForm struct is never empty to the template
	b.WriteString(`<form id="saml-form" method="post" action="`)
	writeURLAttr(b, v.Form.ACS)
	b.WriteString("\">\n")
	// the "saml-fields" part
	writeSAMLResponseField(b, v.Form.Response)
	b.WriteString("\n")
	if v.Form.RelayState != "" {
		b.WriteString(`<input type="hidden" name="RelayState" value="`)
		writeEscaped(b, v.Form.RelayState)
		b.WriteString(`">`)
	}
	b.WriteString("\n<noscript><button type=\"submit\">Continue to ")
	writeEscaped(b, v.AppName)
	b.WriteString("</button></noscript>\n</form>")
}

func (postView) writeScripts(b *bytes.Buffer) {
	b.WriteString("\n<script src=\"")
	b.WriteString(submitScriptAttr)
	b.WriteString(`" data-form="saml-form"></script>`)
}

// writeSAMLResponseField writes the hidden field that carries resp (SAMLResponseField), its base64 encoded
// straight into the page: no string of it is made (some 13 KB a login).
func writeSAMLResponseField(b *bytes.Buffer, resp []byte) {
	b.WriteString(`<input type="hidden" name="SAMLResponse" value="`)
	b.Grow(base64.StdEncoding.EncodedLen(len(resp)))
	b.Write(base64.StdEncoding.AppendEncode(b.AvailableBuffer(), resp))
	b.WriteString(`">`)
}

// htmlEscapes is html/template's table for text, RCDATA and quoted attribute values (its htmlEscaper,
// rcdataEscaper and attrEscaper, given a plain string): every character that could end a value or start
// markup, and NUL, which the HTML parser replaces. All are ASCII, so a byte-wise scan finds exactly the
// runes html/template's finds, whatever UTF-8 (valid or not) surrounds them.
var htmlEscapes = [...]string{
	0:    "\uFFFD",
	'"':  "&#34;",
	'&':  "&amp;",
	'\'': "&#39;",
	'+':  "&#43;",
	'<':  "&lt;",
	'>':  "&gt;",
}

// writeEscaped writes s as html/template writes a plain string in text, RCDATA or a quoted attribute.
func writeEscaped(b *bytes.Buffer, s string) {
	written := 0
	for i := 0; i < len(s); i++ {
		if c := s[i]; int(c) < len(htmlEscapes) && htmlEscapes[c] != "" {
			b.WriteString(s[written:i])
			b.WriteString(htmlEscapes[c])
			written = i + 1
		}
	}
	b.WriteString(s[written:])
}

// writeURLAttr writes s as html/template writes a plain string in a URL attribute (href, src, action and any
// attribute whose name speaks of a URL): its filter first, which lets only http, https and mailto schemes
// (or none) through and puts "#ZgotmplZ" in place of any other, then its normalizer, which percent-encodes
// what a URL may not hold (RFC 3986), then the attribute's escaping.
func writeURLAttr(b *bytes.Buffer, s string) {
	if scheme, _, ok := strings.Cut(s, ":"); ok && !strings.Contains(scheme, "/") &&
		!strings.EqualFold(scheme, "http") && !strings.EqualFold(scheme, "https") && !strings.EqualFold(scheme, "mailto") {
		b.WriteString("#ZgotmplZ")
		return
	}
	const hex = "0123456789abcdef"
	written := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
			continue
		case strings.IndexByte("-._~!#$*,/:;=?@[]", c) >= 0:
			continue
		case c == '&': // kept by the normalizer, escaped for the attribute
			b.WriteString(s[written:i])
			b.WriteString("&amp;")
		case c == '+':
			b.WriteString(s[written:i])
			b.WriteString("&#43;")
		case c == '%' && i+2 < len(s) && isHexDigit(s[i+1]) && isHexDigit(s[i+2]):
			continue // a valid escape is kept as it is
		default:
			b.WriteString(s[written:i])
			b.Write([]byte{'%', hex[c>>4], hex[c&15]})
		}
		written = i + 1
	}
	b.WriteString(s[written:])
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
