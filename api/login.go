package api

import (
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/authn/sso"
)

// recheckEvery is how often a device long-poll looks at the store even without a signal, and how soon a login
// page's event stream reads its login again after a failed read.
const recheckEvery = 5 * time.Second

// loginCookie binds a parked login to the browser that started it; its Path is the login's own URL.
const loginCookie = "passport_login"

// cookieValue is the value of the request's cookie name, "" without one.
func cookieValue(c echo.Context, name string) string {
	ck, err := c.Cookie(name)
	if err != nil {
		return ""
	}
	return ck.Value
}

func loginSecret(c echo.Context) string { return cookieValue(c, loginCookie) }

// handleLoginPage shows the login as it stands; reloading is always safe.
func (s *Server) handleLoginPage(c echo.Context) error {
	pg, err := s.idp.Page(s.ctx(c), c.Param("txnID"), loginSecret(c))
	if err != nil {
		return err
	}
	return s.showLogin(c, http.StatusOK, pg, "")
}

// showLogin renders the login page for pg; formError is a problem with the email (identify) or the code
// (waiting) just typed.
func (s *Server) showLogin(c echo.Context, status int, pg sso.Page, formError string) error {
	now := s.cfg.Clock()
	l, app := pg.Login, pg.App
	var v view
	switch {
	case pg.Answer != nil:
		if pg.SessionCookie != "" {
			s.setSessionCookie(c, pg.SessionCookie, s.svc.Sessions.TTL())
			s.metrics.logins.WithLabelValues("success").Inc()
		}
		v = postView{AppName: app.Name, Form: *formOf(pg.Answer)}
	case pg.State == authn.StatePaused:
		v = pausedView{Message: pg.Message, AppName: app.Name, Email: l.Email, ChangeAction: "/login/" + l.ID + "/change", Return: formOf(pg.ErrorPost)}
	case pg.Message != "": // the login did not succeed
		v = errorView{Title: "Sign-in not completed", Message: pg.Message, AppName: app.Name, Return: formOf(pg.ErrorPost)}
	case pg.State == authn.StateIdentify:
		email := c.FormValue("email")
		if email == "" {
			email = l.Subject.Email // the application said who signs in
		}
		v = identifyView{AppName: app.Name, Action: "/login/" + l.ID, Email: email, FormError: formError,
			State: string(pg.State), Events: "/login/" + l.ID + "/events", Page: "/login/" + l.ID}
	default: // pending
		v = waitingView{AppName: app.Name, Email: l.Email, Number: l.Number,
			ChangeAction:     "/login/" + l.ID + "/change",
			ExpiresUnixMilli: l.ExpiresAt.UnixMilli(),
			Remaining:        formatRemaining(l.ExpiresAt.Sub(now)),
			// Scripts follow the state by events; without scripts the page refreshes itself.
			State: string(pg.State), Events: "/login/" + l.ID + "/events", Page: "/login/" + l.ID, Refresh: 3}
		if s.svc.Logins.OfflineCodes() {
			w := v.(waitingView)
			w.CodeAction, w.CodeError, w.Self = "/login/"+l.ID+"/code", formError, "/login/"+l.ID
			if w.ShowCode = formError != "" || c.QueryParam("use") == "code"; w.ShowCode {
				w.Refresh = 0 // a refresh would lose what is being typed
			}
			v = w
		}
	}
	return renderPage(c, status, v)
}

// formOf is the page form that hands the SP a message (nil when there is none to hand).
func formOf(p *sso.Post) *postForm {
	if p == nil {
		return nil
	}
	return &postForm{ACS: p.ACS, Response: p.Response, RelayState: p.RelayState}
}

// handleLoginSubmit takes the email typed on the identify step and answers with the page as it then stands:
// the number to enter on the phone. Not post/redirect/get: the redirect's second request would read the login
// again for the page this request already has. A resubmitted form (a reload of this answer) is harmless: a
// login past the identify step ignores it and shows itself, and the page's script navigates to the page's own
// URL, never reloads the POST. A malformed address or too many attempts show the form again, saying why.
func (s *Server) handleLoginSubmit(c echo.Context) error {
	id := c.Param("txnID")
	pg, err := s.idp.Identify(s.ctx(c), id, loginSecret(c), c.FormValue("email"), client(c))
	if err != nil {
		return s.loginFormError(c, id, err, authn.ErrInvalid, authn.ErrRateLimited)
	}
	return s.showLogin(c, http.StatusOK, pg, "")
}

// handleLoginCode takes an offline code typed on the waiting page ("Use a code from the app instead"), then
// redirects to the page (post/redirect/get), which hands the Response over. A wrong code, or codes locked for
// now, show the page again with the code form saying why.
func (s *Server) handleLoginCode(c echo.Context) error {
	id := c.Param("txnID")
	if err := s.idp.EnterCode(s.ctx(c), id, loginSecret(c), c.FormValue("code"), client(c)); err != nil {
		return s.loginFormError(c, id, err, authn.ErrCodeInvalid, authn.ErrCodeLocked)
	}
	return c.Redirect(http.StatusSeeOther, "/login/"+id)
}

// loginFormError answers a refused form of login id's page: when err is one of formErrs, the form's own, the
// page is shown again saying why; any other error is returned.
func (s *Server) loginFormError(c echo.Context, id string, err error, formErrs ...error) error {
	for _, fe := range formErrs {
		if !errors.Is(err, fe) {
			continue
		}
		pg, perr := s.idp.Page(s.ctx(c), id, loginSecret(c))
		if perr != nil {
			return perr
		}
		pub, status := classify(err)
		return s.showLogin(c, status, pg, pub.Message)
	}
	return err
}

// handleLoginChange takes the login back to the email step ("Not you?"), then shows it (post/redirect/get).
func (s *Server) handleLoginChange(c echo.Context) error {
	id := c.Param("txnID")
	if err := s.idp.ChangeEmail(s.ctx(c), id, loginSecret(c)); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/login/"+id)
}

// handleLoginEvents streams the login's state as server-sent events: one "state" event at once and one on
// every change, until the login is no longer waiting; "reload" when the server shuts down. A login has at most
// Limits.StreamsPerLogin streams and a client address Limits.StreamsPerClient (past that, 429; the page's
// script then tries again later by itself). Each write has Limits.WriteTimeout: a client that stops reading
// loses its stream.
func (s *Server) handleLoginEvents(c echo.Context) error {
	id := c.Param("txnID")
	if !authn.PlausibleLoginID(id) {
		_, _, err := s.idp.Load(s.ctx(c), id, loginSecret(c)) // refuses it as the page does, without the store
		return err
	}
	caps := []streamCap{
		{kind: "login", key: "login:" + id, max: s.cfg.Limits.StreamsPerLogin,
			refusal: "This sign-in is already followed by several open pages. Close its other tabs; this page checks again by itself."},
		{kind: "client", key: "client:" + clientKey(c), max: s.cfg.Limits.StreamsPerClient,
			refusal: "Too many sign-in pages from your network are waiting at once. This page checks again by itself in a few seconds."},
	}
	release, full := s.streams.acquire(caps...)
	// A bound is full: perhaps of browsers that left (a reloaded tab) and have not been noticed yet.
	if full != nil && full != processCap && s.hub.reap(full.key) > 0 {
		release, full = s.streams.acquire(caps...)
	}
	if full != nil {
		return s.refuseStream(c, full)
	}
	st := &eventStream{id: id, secret: loginSecret(c), keys: []string{caps[0].key, caps[1].key}, release: release}
	// Subscribe first, then read the login once: the read proves the browser and gives the first state, and
	// no change can fall between it and the subscription.
	nctx, cancel := s.storeCtx(s.ctx(c))
	defer cancel()
	var err error
	st.stop, err = s.svc.Logins.Notify(nctx, id, func(msg string) {
		st.news.Store(&msg)
		s.hub.mark(st)
	})
	if err != nil {
		release()
		return err
	}
	l, _, err := s.idp.Load(nctx, id, loginSecret(c))
	if err != nil {
		st.stop()
		release()
		return err
	}
	first := authn.ChangeOf(l).String()
	st.news.CompareAndSwap(nil, &first) // a message that came meanwhile is newer
	return s.hub.serve(c, st)
}

// handleEnrollPage is the https link of an invitation: on the phone it offers the app's deep link
// (passport://enroll?server=...&token=...); on a computer it explains what to do.
func (s *Server) handleEnrollPage(c echo.Context) error {
	token := c.QueryParam("token")
	if _, err := s.svc.Devices.Invitation(s.ctx(c), token); err != nil {
		return authn.ErrInvitation.WithMessage("This invitation is unknown, already used or expired. Ask your administrator for a new one.")
	}
	deep := "passport://enroll?" + url.Values{"server": {s.cfg.BaseURL}, "token": {token}}.Encode()
	return renderPage(c, http.StatusOK, infoView{
		Title: "Enroll your phone",
		Message: "On your phone, with the Passport app installed, tap the button below. On a computer, open this " +
			"invitation on your phone instead: scan the QR code your administrator sent you with the Passport app, " +
			"or open this link on the phone.",
		Link: template.URL(deep), LinkText: "Open in the Passport app",
	})
}
