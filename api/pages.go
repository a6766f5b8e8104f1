package api

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/winkk/passport/authn/sso"
)

// The pages people see are views: each one a Go type holding only what it shows, and a template of the same
// name under templates/ that fills the one layout (templates/layout.html) with the content block, and with
// the scripts it needs, which are static files (see static.go): no page carries an inline script or style.
// The three pages of every login are written by code that matches their templates byte for byte
// (pagewriter.go); the templates stay their reference.

// view is one page: the template that shows it and what the layout around it needs.
type view interface {
	// template is the name of the view's file under templates/, without ".html".
	template() string
	// head is what the layout shows and the Content-Security-Policy allows around this view.
	head() pageHead
}

// pageHead is what the layout needs from a view besides its content.
type pageHead struct {
	Title   string // the page's <title>, before " · Passport"
	AppName string // named in the brand line; empty for pages of no application
	Refresh int    // seconds; a <noscript> refresh, for a page that follows a login without scripts
	// formAction is the origin, besides our own, that the page's forms post to (an ACS); frameSrc the
	// origins, space-separated, of the frames it loads (front-channel logout). Empty: none.
	formAction, frameSrc string
}

// policy is the page's Content-Security-Policy: scripts, styles and connections only to ourselves, forms only to
// ourselves and the ACS of a SAML post, frames only those of a front-channel logout, never framed itself.
func (h pageHead) policy() string {
	formAction := "'self'"
	if h.formAction != "" {
		formAction += " " + h.formAction
	}
	frameSrc := "'none'"
	if h.frameSrc != "" {
		frameSrc = h.frameSrc
	}
	return "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
		"form-action " + formAction + "; frame-src " + frameSrc + "; frame-ancestors 'none'; base-uri 'none'"
}

// postForm is the HTTP-POST binding form (saml-bindings §3.5.4) that carries a Response to the ACS URL.
type postForm struct {
	ACS        string
	Response   []byte // the message as made; the form carries its base64
	RelayState string
}

// SAMLResponseField is the hidden field that carries the Response, base64-encoded. It is written here, not by
// html/template's escaper, which would rewrite every '+' of the base64 (some 13 KB for an Atlassian Response)
// as "&#43;" at a tenth of a page's rendering cost; base64 holds no character that could leave a
// double-quoted attribute.
func (f postForm) SAMLResponseField() template.HTML {
	var b bytes.Buffer
	writeSAMLResponseField(&b, f.Response)
	return template.HTML(b.String())
}

// identifyView asks for the work email: the first step of a login.
type identifyView struct {
	AppName   string
	Action    string // where the email is posted: the login's own URL
	Email     string // filled in: what was typed, or the user the application asked for
	FormError string // why the email typed was not taken; empty when it was not refused
	State     string // the login state shown, for the events script
	Events    string // URL of the login's event stream
	Page      string // the login page's own URL, which the script loads when the state changes
}

func (identifyView) template() string { return "identify" }
func (v identifyView) head() pageHead { return pageHead{Title: "Sign in", AppName: v.AppName} }

// waitingView shows the number to enter on the phone while the login waits for its approval.
type waitingView struct {
	AppName          string
	Email            string // the address typed, shown so that a typo is caught
	Number           int
	ExpiresUnixMilli int64  // for the countdown script
	Remaining        string // m:ss, as the page is sent
	ChangeAction     string // where "Not you? Use another email" posts
	State            string // the login state shown, for the events script
	Events           string // URL of the login's event stream
	Page             string // the login page's own URL, which the script loads when the state changes
	Refresh          int    // seconds; the page refreshes itself when scripts are off
	// CodeAction is where "Use a code from the app instead" posts its code; empty when offline codes are off.
	CodeAction string
	CodeError  string // why the code just typed was refused
	// ShowCode shows the code form (asked for with ?use=code, or after a refused code); otherwise the page
	// offers a button that asks for it.
	ShowCode bool
	Self     string // the page's own URL, where the button asks for the code form
}

func (waitingView) template() string { return "waiting" }
func (v waitingView) head() pageHead {
	return pageHead{Title: "Approve on your phone", AppName: v.AppName, Refresh: v.Refresh}
}

// postView hands the application its Response: the form submits itself, or shows a button without scripts.
type postView struct {
	AppName string
	Form    postForm
}

func (postView) template() string { return "post" }
func (v postView) head() pageHead {
	return pageHead{Title: "Signing you in", AppName: v.AppName, formAction: acsOrigin(v.Form.ACS)}
}

// pausedView says that no request was sent to the phone, why, and until when.
type pausedView struct {
	AppName      string
	Message      string
	Email        string    // the address typed; empty when unknown
	ChangeAction string    // where "Not you? Use another email" posts
	Return       *postForm // the SP's error Response; nil for IdP-initiated logins
}

func (pausedView) template() string { return "paused" }
func (v pausedView) head() pageHead {
	return pageHead{Title: "Sign-in requests paused", AppName: v.AppName, formAction: returnOrigin(v.Return)}
}

// errorView says why the request cannot go on, with a button handing the SP its error Response when there is one.
type errorView struct {
	Title   string
	Message string
	AppName string    // empty when the error concerns no application
	Return  *postForm // nil: nothing to hand back
}

func (errorView) template() string { return "error" }
func (v errorView) head() pageHead {
	return pageHead{Title: v.Title, AppName: v.AppName, formAction: returnOrigin(v.Return)}
}

// infoView is a page of text with one link (the enroll page).
type infoView struct {
	Title    string
	Message  string
	Link     template.URL // built by the server only: custom schemes (passport://) pass
	LinkText string
}

func (infoView) template() string { return "info" }
func (v infoView) head() pageHead { return pageHead{Title: v.Title} }

// logoutView loads the front-channel LogoutRequests to the session's other applications in frames, then
// continues to the application that asked.
type logoutView struct {
	AppName  string   // the application that asked
	Frames   []string // LogoutRequest URLs (HTTP-Redirect binding) for the other applications
	Continue string   // the LogoutResponse URL back to the application that asked
}

func (logoutView) template() string { return "logout" }
func (v logoutView) head() pageHead {
	return pageHead{Title: "Signing you out", AppName: v.AppName, frameSrc: frameOrigins(v.Frames)}
}

func returnOrigin(p *postForm) string {
	if p == nil {
		return ""
	}
	return acsOrigin(p.ACS)
}

//go:embed templates/*.html
var templateFS embed.FS

// viewTemplates holds each view's template, parsed with the layout and the shared parts.
var viewTemplates = parseViews("identify", "waiting", "post", "paused", "error", "info", "logout")

func parseViews(names ...string) map[string]*template.Template {
	base := template.Must(template.New("").Funcs(template.FuncMap{"static": staticURL}).
		ParseFS(templateFS, "templates/layout.html", "templates/parts.html"))
	out := make(map[string]*template.Template, len(names))
	for _, name := range names {
		out[name] = template.Must(template.Must(base.Clone()).ParseFS(templateFS, "templates/"+name+".html"))
	}
	return out
}

// page is what the layout is executed with.
type page struct {
	Head pageHead
	View view
}

// pageBuffers holds the buffers pages are rendered into, each used again once its page is written. A page
// is 3 to 16 KB (the Response's); a new buffer grown to that size for every page made a login allocate some
// 35 KB more, which the garbage collector then had to follow.
var pageBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledPage is the largest buffer kept for another page: one grown larger (a page with a very long
// RelayState) is left to the collector rather than held.
const maxPooledPage = 64 << 10

// renderPage writes the view in the layout with status, under the view's Content-Security-Policy and never
// cached (pages show one login's state).
func renderPage(c echo.Context, status int, v view) error {
	t, ok := viewTemplates[v.template()]
	if !ok {
		return fmt.Errorf("api: render page: no template %q", v.template())
	}
	p := page{Head: v.head(), View: v}
	buf := pageBuffers.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= maxPooledPage {
			pageBuffers.Put(buf)
		}
	}()
	if f, ok := v.(fastView); ok {
		writeFastPage(buf, p.Head, f)
	} else if err := t.ExecuteTemplate(buf, "layout", p); err != nil {
		return fmt.Errorf("api: render page %s: %w", v.template(), err)
	}
	h := c.Response().Header()
	h.Set("Content-Security-Policy", p.Head.policy())
	h.Set("Cache-Control", "no-store")
	// With its length known, a page larger than net/http's 2 KiB buffer goes out in one or two writes, not
	// chunked in 4 KiB writes and a last chunk.
	h.Set(echo.HeaderContentLength, strconv.Itoa(buf.Len()))
	return c.HTMLBlob(status, buf.Bytes())
}

// errorRetrySeconds is how soon a login page that failed on the server's side loads itself again.
const errorRetrySeconds = 5

// titles for error pages by status.
var errorTitles = map[int]string{
	http.StatusBadRequest:            "This sign-in request can't be used",
	http.StatusForbidden:             "Sign-in not allowed here",
	http.StatusNotFound:              "Not found",
	http.StatusConflict:              "Sign-in not possible",
	http.StatusTooManyRequests:       "Too many attempts",
	http.StatusRequestEntityTooLarge: "Request too large",
	http.StatusInternalServerError:   "Something went wrong",
	http.StatusServiceUnavailable:    "Try again in a moment",
}

func (s *Server) renderError(c echo.Context, status int, message string) error {
	title, ok := errorTitles[status]
	if !ok {
		title = "Sign-in not possible"
	}
	v := errorView{Title: title, Message: message}
	if status >= 500 && c.Request().Method == http.MethodGet && strings.HasPrefix(c.Path(), "/login/") {
		// Most likely the store is briefly out of reach; the login is still there. Try again by itself
		// (the Refresh header works with and without scripts).
		retry := errorRetrySeconds
		if status == http.StatusServiceUnavailable {
			retry = unavailableRetrySeconds
		}
		c.Response().Header().Set("Refresh", strconv.Itoa(retry))
		v.Message += " This page tries again by itself in a few seconds."
	}
	return renderPage(c, status, v)
}

// renderPost hands an SP a message (an error Response) through the browser, saying why on the page.
func (s *Server) renderPost(c echo.Context, status int, appName string, p *sso.Post, message string) error {
	return renderPage(c, status, errorView{
		Title:   "Sign-in not completed",
		Message: message,
		AppName: appName,
		Return:  formOf(p),
	})
}

func formatRemaining(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	secs := int(d.Round(time.Second).Seconds())
	return fmt.Sprintf("%d:%02d", secs/60, secs%60)
}

// securityHeaders sets headers every answer carries. Login URLs hold a transaction ID: no Referer leaks it.
func (s *Server) securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		if s.secure() {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		return next(c)
	}
}
