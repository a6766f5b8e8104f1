// Package console is the admin console: the setup guide's screens (Overview, Applications, Users, Activity,
// Keys) served as HTML pages under /admin. It is one more face on the same services as the JSON admin API:
// handlers parse a form, call one authn or authn/sso method, and render (Post/Redirect/Get, with a flash
// message). Administrators sign in with their phone, by the same login state machine as everyone
// (authn.Console); every change is a form POST carrying the session's CSRF token, and the most dangerous ones
// ask for a fresh phone approval. Pages carry no inline script or style: the Content-Security-Policy is strict.
package console

import (
	"bytes"
	"context"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/authn/audit"
	"github.com/winkk/passport/authn/sso"
)

// Config is what the console needs besides the services.
type Config struct {
	BaseURL string // public URL: cookies are Secure when it is https
	Clock   func() time.Time
	Logger  *slog.Logger
	// Audit is the audit log the Activity tab reads; nil: the tab says there is none.
	Audit *audit.Log
	// Client says who a request comes from (address, user agent, network), as the login pages see it.
	Client func(echo.Context) sso.Client
}

// Console serves the admin console.
type Console struct {
	cfg    Config
	svc    *authn.Service
	idp    *sso.IdP
	log    *slog.Logger
	secure bool
	origin string // scheme://host[:port] of BaseURL
}

// New returns the console over svc and idp.
func New(cfg Config, svc *authn.Service, idp *sso.IdP) *Console {
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Client == nil {
		cfg.Client = func(c echo.Context) sso.Client {
			return sso.Client{IP: c.RealIP(), UserAgent: c.Request().UserAgent(), Network: c.RealIP()}
		}
	}
	k := &Console{cfg: cfg, svc: svc, idp: idp, log: cfg.Logger, secure: strings.HasPrefix(cfg.BaseURL, "https://")}
	if u, err := url.Parse(cfg.BaseURL); err == nil {
		k.origin = u.Scheme + "://" + u.Host
	}
	return k
}

// Cookies: the console session (Path /admin), the binding of a console sign-in to its browser (Path
// /admin/signin), and a flash message for the page after a change.
const (
	sessionCookie = "passport_admin"
	loginCookie   = "passport_admin_login"
	flashCookie   = "passport_admin_flash"
)

// Register adds the console's routes to g, the group mounted at /admin. No group middleware: each route says
// what it needs (a session; a session and the CSRF token).
func (k *Console) Register(g *echo.Group) {
	limit := middleware.BodyLimit("2M") // an SP's metadata, uploaded by a signed-in administrator
	g.GET("/static/:name", k.handleStatic)
	g.GET("/signin", k.handleSignInPage)
	// Anyone may post the sign-in form: an email address, bounded like the login page's.
	g.POST("/signin", k.handleSignInSubmit, middleware.BodyLimit("8K"))
	g.GET("/signin/:id", k.handleSignInWait)
	g.POST("/signout", k.handleSignOut, limit, k.session, k.csrf)

	get := func(p string, h echo.HandlerFunc) { g.GET(p, h, k.session) }
	post := func(p string, h echo.HandlerFunc) { g.POST(p, h, limit, k.session, k.csrf) }

	get("", k.handleOverview)
	get("/", k.handleOverview)
	get("/confirm", k.handleConfirm)

	get("/apps", k.handleApps)
	get("/apps/new", k.handleNewApp)
	post("/apps", k.handleCreateApp)
	get("/apps/:id", k.handleApp)
	post("/apps/:id", k.handleUpdateApp)
	post("/apps/:id/metadata", k.handleImportMetadata)
	post("/apps/:id/delete", k.handleDeleteApp)

	get("/users", k.handleUsers)
	post("/users", k.handleCreateUser)
	get("/users/:email", k.handleUser)
	post("/users/:email", k.handleUpdateUser)
	post("/users/:email/invite", k.handleInvite)
	post("/users/:email/status", k.handleUserStatus)
	post("/users/:email/sessions/end", k.handleEndSessions)
	post("/users/:email/devices/revoke", k.handleRevokeAllDevices)
	post("/users/:email/devices/:deviceID/revoke", k.handleRevokeDevice)

	get("/activity", k.handleActivity)

	get("/keys", k.handleKeys)
	post("/keys/stage", k.handleStageKey)
	post("/keys/activate", k.handleActivateKey)
}

// ctxKey names what the session middleware leaves in the echo context.
const ctxSession = "console.session"

func sessionOf(c echo.Context) authn.ConsoleSession {
	s, _ := c.Get(ctxSession).(authn.ConsoleSession)
	return s
}

// session lets a request through with a live console session, saying in the request's context that the
// administrator acts (the audit log's actor admin:<email>). Without one, a page is redirected to the sign-in,
// which comes back to it afterwards.
func (k *Console) session(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		sess, err := k.svc.Console.Session(k.ctx(c), cookieValue(c, sessionCookie))
		if errors.Is(err, authn.ErrNotFound) {
			back := "/admin"
			if c.Request().Method == http.MethodGet {
				back = c.Request().URL.RequestURI()
			}
			k.clearCookie(c, sessionCookie, "/admin")
			return c.Redirect(http.StatusSeeOther, "/admin/signin?next="+url.QueryEscape(safeNext(back)))
		}
		if err != nil {
			return err
		}
		c.Set(ctxSession, sess)
		r := c.Request()
		c.SetRequest(r.WithContext(audit.WithActor(r.Context(), "admin:"+sess.Email)))
		return next(c)
	}
}

// errCSRF refuses a form posted without the session's token (another site's form, or a stale page).
var errCSRF = &authn.Error{Code: authn.ErrForbidden.Code, Message: "This form could not be accepted: it did not carry this session's security token. Reload the page and try again."}

// csrf refuses a POST whose form does not carry the session's CSRF token, with a 403 page.
func (k *Console) csrf(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !sessionOf(c).CheckCSRF(c.FormValue("csrf")) {
			k.log.Warn("console form refused: CSRF token missing or wrong", "path", c.Request().URL.Path)
			return k.render(c, http.StatusForbidden, "message", "", messageView{Title: "Form refused", Message: errCSRF.Message})
		}
		return next(c)
	}
}

func (k *Console) ctx(c echo.Context) context.Context { return c.Request().Context() }

func (k *Console) now() time.Time { return k.cfg.Clock() }

// safeNext is where to go after signing in: a path of the console, never another site (no open redirect).
func safeNext(next string) string {
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || strings.HasPrefix(next, "//") ||
		strings.ContainsAny(next, "\\\r\n\t") || strings.HasPrefix(u.Path, "/admin/signin") {
		return "/admin"
	}
	clean := path.Clean(u.Path)
	if clean != u.Path || (clean != "/admin" && !strings.HasPrefix(clean, "/admin/")) {
		return "/admin"
	}
	return u.RequestURI()
}

func cookieValue(c echo.Context, name string) string {
	ck, err := c.Cookie(name)
	if err != nil {
		return ""
	}
	return ck.Value
}

func (k *Console) setCookie(c echo.Context, name, value, path string, maxAge time.Duration) {
	c.SetCookie(&http.Cookie{Name: name, Value: value, Path: path, MaxAge: int(maxAge.Seconds()), HttpOnly: true,
		Secure: k.secure, SameSite: http.SameSiteStrictMode})
}

func (k *Console) clearCookie(c echo.Context, name, path string) {
	c.SetCookie(&http.Cookie{Name: name, Value: "", Path: path, MaxAge: -1, HttpOnly: true, Secure: k.secure, SameSite: http.SameSiteStrictMode})
}

// redirect ends a change: a flash message for the next page, then Post/Redirect/Get.
func (k *Console) redirect(c echo.Context, to, flash string) error {
	if flash != "" {
		k.setCookie(c, flashCookie, base64.RawURLEncoding.EncodeToString([]byte(flash)), "/admin", time.Minute)
	}
	return c.Redirect(http.StatusSeeOther, to)
}

// takeFlash reads (and clears) the flash message the last change left.
func (k *Console) takeFlash(c echo.Context) string {
	v := cookieValue(c, flashCookie)
	if v == "" {
		return ""
	}
	k.clearCookie(c, flashCookie, "/admin")
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || len(b) > 500 {
		return ""
	}
	return string(b)
}

// Pages.

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

var funcs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"whenp": func(t *time.Time) string {
		if t == nil || t.IsZero() {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"join":  strings.Join,
	"lines": func(ss []string) string { return strings.Join(ss, "\n") },
	"pathq": url.PathEscape,
	"query": url.QueryEscape,
	"fieldErr": func(fields []authn.FieldError, name string) string {
		var out []string
		for _, f := range fields {
			if f.Field == name || strings.HasPrefix(f.Field, name+"[") {
				out = append(out, f.Message)
			}
		}
		return strings.Join(out, "; ")
	},
}

var pages = parsePages()

func parsePages() map[string]*template.Template {
	entries, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		panic(err)
	}
	base := template.Must(template.New("").Funcs(funcs).ParseFS(templateFS, "templates/layout.html"))
	out := map[string]*template.Template{}
	for _, e := range entries {
		name := strings.TrimSuffix(path.Base(e), ".html")
		if name == "layout" {
			continue
		}
		out[name] = template.Must(template.Must(base.Clone()).ParseFS(templateFS, e))
	}
	return out
}

// page is what the layout is executed with.
type page struct {
	Title    string
	Tab      string // the tab highlighted: overview, apps, users, activity, keys; "" on sign-in pages
	Admin    string // the signed-in administrator; "" on sign-in pages
	CSRF     string
	Flash    string
	Refresh  int // seconds; a page following a sign-in reloads itself
	View     any
	BasePath string
}

// messageView is a page of text: a refusal, a result.
type messageView struct {
	Title, Message string
	Link, LinkText string
}

// policy is every console page's Content-Security-Policy: nothing but ourselves, no inline code, never framed.
const policy = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// render writes template name in the layout, with status, under the strict policy, never cached.
func (k *Console) render(c echo.Context, status int, name, tab string, v any) error {
	t, ok := pages[name]
	if !ok {
		return fmt.Errorf("console: no template %q", name)
	}
	p := page{Tab: tab, View: v, Flash: k.takeFlash(c)}
	if sess, ok := c.Get(ctxSession).(authn.ConsoleSession); ok {
		p.Admin, p.CSRF = sess.Email, sess.CSRF
	}
	if t, ok := v.(interface{ title() string }); ok {
		p.Title = t.title()
	}
	if r, ok := v.(interface{ refresh() int }); ok {
		p.Refresh = r.refresh()
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		return fmt.Errorf("console: render %s: %w", name, err)
	}
	h := c.Response().Header()
	h.Set("Content-Security-Policy", policy)
	h.Set("Cache-Control", "no-store")
	return c.HTMLBlob(status, buf.Bytes())
}

func (v messageView) title() string { return v.Title }

// handleStatic serves the console's stylesheet and script.
func (k *Console) handleStatic(c echo.Context) error {
	name := c.Param("name")
	types := map[string]string{".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
	ct, ok := types[path.Ext(name)]
	if !ok || strings.ContainsAny(name, "/\\") {
		return authn.ErrNotFound.WithMessage("Not found.")
	}
	b, err := staticFS.ReadFile("static/" + name)
	if err != nil {
		return authn.ErrNotFound.WithMessage("Not found.")
	}
	c.Response().Header().Set("Cache-Control", "no-cache")
	return c.Blob(http.StatusOK, ct, b)
}
