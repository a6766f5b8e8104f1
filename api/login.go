package api

import (
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/winkk/passport/api/apierr"
	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/saml"
)

// recheckEvery is how often waiting streams and long-polls look at the store even without a signal.
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

// loadLogin returns the login of this page and its application, or the page-level error.
func (s *Server) loadLogin(c echo.Context) (authn.Login, authn.App, error) {
	l, err := s.svc.GetLogin(s.ctx(c), c.Param("txnID"), loginSecret(c))
	if err != nil {
		if errors.Is(err, authn.ErrForbidden) {
			return l, authn.App{}, authn.ErrForbidden.WithMessage("This sign-in was started in another browser. Go back to the application and sign in from this browser.")
		}
		if errors.Is(err, authn.ErrNotFound) {
			return l, authn.App{}, authn.ErrNotFound.WithMessage("This sign-in does not exist or has expired. Go back to the application and sign in again.")
		}
		return l, authn.App{}, err
	}
	app, err := s.svc.GetApp(s.ctx(c), l.AppID)
	if err != nil {
		if errors.Is(err, authn.ErrNotFound) {
			return l, authn.App{}, authn.ErrNotFound.WithMessage("The application of this sign-in no longer exists.")
		}
		return l, authn.App{}, err
	}
	return l, app, nil
}

// handleLoginPage shows the login as it stands; reloading is always safe.
func (s *Server) handleLoginPage(c echo.Context) error {
	l, app, err := s.loadLogin(c)
	if err != nil {
		return err
	}
	return s.showLogin(c, http.StatusOK, l, app, "")
}

func (s *Server) showLogin(c echo.Context, status int, l authn.Login, app authn.App, formError string) error {
	now := s.cfg.Clock()
	state := l.Current(now)
	d := pageData{AppName: app.Name, State: string(state), Email: l.Email}
	switch state {
	case authn.StateIdentify:
		d.View, d.Title, d.Action, d.FormError = "identify", "Sign in", "/login/"+l.ID, formError
		d.Email = c.FormValue("email")
		if d.Email == "" {
			d.Email = l.Subject.Email // the application said who signs in
		}
		d.Events = "/login/" + l.ID + "/events"
	case authn.StatePending:
		d.View, d.Title, d.Number = "waiting", "Approve on your phone", l.Number
		d.ChangeAction = "/login/" + l.ID + "/change"
		d.ExpiresUnixMilli = l.ExpiresAt.UnixMilli()
		d.Remaining = formatRemaining(l.ExpiresAt.Sub(now))
		// Scripts follow the state by events; without scripts the page refreshes itself.
		d.Events, d.Refresh = "/login/"+l.ID+"/events", 3
	case authn.StateApproved, authn.StateAnswered:
		answered, cookie, err := s.svc.Respond(s.ctx(c), l, func(l authn.Login, u authn.User) ([]byte, authn.SessionApp, error) {
			return s.buildResponse(app, l, u)
		})
		if err != nil {
			switch {
			case errors.Is(err, authn.ErrForbidden) && state == authn.StateAnswered:
				// Signed out, suspended or its phone revoked since: the Response it had is not shown again.
				return errSignInEnded
			case errors.Is(err, authn.ErrForbidden):
				return s.showFailure(c, l, app, authn.ReasonSuspended)
			case errors.Is(err, errSubjectMismatch):
				return s.showFailure(c, l, app, authn.ReasonSubjectMismatch)
			}
			return err
		}
		if cookie != "" {
			s.setSessionCookie(c, cookie, s.svc.SessionTTL())
			s.metrics.logins.WithLabelValues("success").Inc()
		}
		return s.renderAnswer(c, app, answered)
	case authn.StatePaused:
		return s.showPaused(c, l, app)
	default:
		return s.showFailure(c, l, app, l.Reason)
	}
	return s.renderPage(c, status, d)
}

var failureMessages = map[string]string{
	authn.ReasonDenied:          "The sign-in was denied on your phone.",
	authn.ReasonReported:        "The sign-in was denied and reported on your phone. Your administrator has been notified.",
	authn.ReasonNumberMismatch:  "The number entered on the phone did not match the one shown here, so the sign-in was denied.",
	authn.ReasonExpired:         "The sign-in request expired before it was approved.",
	authn.ReasonSuspended:       "Sign-in is not allowed for this account. Contact your administrator.",
	authn.ReasonNoDevice:        "We couldn't send a sign-in request to that address. Check the email, or ask your administrator to enroll a phone for it.",
	authn.ReasonSubjectMismatch: "The application asked for a different user to sign in. Go back to the application and sign in as that user, or sign out of it first.",
}

// showFailure ends a login that did not succeed on our error page, which hands the SP a signed error Response
// (never a Success) for SP-initiated logins.
func (s *Server) showFailure(c echo.Context, l authn.Login, app authn.App, reason string) error {
	if l.Current(s.cfg.Clock()) == authn.StateExpired {
		reason = authn.ReasonExpired
	}
	msg, ok := failureMessages[reason]
	if !ok {
		msg = "The sign-in did not succeed."
	}
	d := pageData{View: "error", Title: "Sign-in not completed", Message: msg, AppName: app.Name, State: string(l.Current(s.cfg.Clock()))}
	status, sub := errorStatus(reason)
	post, err := s.errorPost(app, l, status, sub, msg)
	if err != nil {
		return err
	}
	d.Post = post
	return s.renderPage(c, http.StatusOK, d)
}

var pauseMessages = map[string]string{
	authn.PauseReported:   "because a recent sign-in request was reported on your phone as \"this wasn't me\"",
	authn.PauseRefused:    "because several recent sign-in requests were denied or not answered",
	authn.PauseHourly:     "because the hourly limit of sign-in requests was reached",
	authn.PauseTooPending: "because several sign-in requests already wait on your phone: answer or deny them in the Passport app",
}

// showPaused says that no request was sent to the phone, why, and until when.
func (s *Server) showPaused(c echo.Context, l authn.Login, app authn.App) error {
	why, ok := pauseMessages[l.Reason]
	if !ok {
		why = "to protect your account"
	}
	msg := fmt.Sprintf("Sign-in requests to your phone are paused until %s UTC %s. Nothing was sent to your phone. Try again after that time, or ask your administrator for help.",
		l.PausedUntil.UTC().Format("15:04 on Jan 2"), why)
	d := pageData{View: "paused", Title: "Sign-in requests paused", Message: msg, AppName: app.Name, State: string(l.State),
		Email: l.Email, ChangeAction: "/login/" + l.ID + "/change"}
	post, err := s.errorPost(app, l, saml.StatusResponder, saml.StatusRequestDenied, msg)
	if err != nil {
		return err
	}
	d.Post = post
	return s.renderPage(c, http.StatusOK, d)
}

// errorPost is the form that hands the SP a signed error Response for an SP-initiated login (nil for
// IdP-initiated ones: nobody asked).
func (s *Server) errorPost(app authn.App, l authn.Login, status, sub, msg string) (*postForm, error) {
	if l.RequestID == "" || !app.Configured() {
		return nil, nil
	}
	acs := acsFor(app, l)
	resp, err := s.idp().MakeErrorResponse(saml.ErrorParams{InResponseTo: l.RequestID, Destination: acs, StatusCode: status, SubStatusCode: sub, Message: msg})
	if err != nil {
		return nil, err
	}
	return &postForm{ACS: acs, SAMLResponse: samlValue(resp), RelayState: l.RelayState}, nil
}

// handleLoginSubmit takes the email typed on the identify step, then redirects to the page (post/redirect/get).
func (s *Server) handleLoginSubmit(c echo.Context) error {
	l, app, err := s.loadLogin(c)
	if err != nil {
		return err
	}
	_, err = s.svc.Identify(s.ctx(c), l, c.FormValue("email"), clientKey(c))
	if err != nil {
		if de, ok := errors.AsType[*authn.Error](err); ok && (errors.Is(de, authn.ErrInvalid) || errors.Is(de, authn.ErrRateLimited)) {
			return s.showLogin(c, apierr.Status(de.Code), l, app, de.Message)
		}
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/login/"+l.ID)
}

// handleLoginChange takes the login back to the email step ("Not you?"), then shows it (post/redirect/get).
func (s *Server) handleLoginChange(c echo.Context) error {
	l, _, err := s.loadLogin(c)
	if err != nil {
		return err
	}
	if _, err := s.svc.ChangeEmail(s.ctx(c), l); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/login/"+l.ID)
}

// handleLoginEvents streams the login's state as server-sent events: one "state" event at once and one on
// every change, until the login is no longer waiting; "reload" when the server shuts down. A login has at most
// Limits.StreamsPerLogin streams and a client address Limits.StreamsPerClient (past that, 429; the page's
// script then tries again later by itself). Each write has Limits.WriteTimeout: a client that stops reading
// loses its stream.
func (s *Server) handleLoginEvents(c echo.Context) error {
	l, _, err := s.loadLogin(c)
	if err != nil {
		return err
	}
	release, full := s.streams.acquire(
		streamCap{kind: "login", key: "login:" + l.ID, max: s.cfg.Limits.StreamsPerLogin,
			refusal: "This sign-in is already followed by several open pages. Close its other tabs; this page checks again by itself."},
		streamCap{kind: "client", key: "client:" + clientKey(c), max: s.cfg.Limits.StreamsPerClient,
			refusal: "Too many sign-in pages from your network are waiting at once. This page checks again by itself in a few seconds."},
	)
	if full != nil {
		return s.refuseStream(c, full)
	}
	defer release()
	ctx := s.ctx(c)
	msgs, cancel, err := s.svc.Store().Subscribe(ctx, authn.LoginChannel(l.ID))
	if err != nil {
		return err
	}
	defer cancel()
	w := c.Response()
	rc := http.NewResponseController(w)
	w.Header().Set(echo.HeaderContentType, "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// write sends text at once; an error means the client is gone or stopped reading, and the stream ends.
	write := func(text string) error {
		s.extendWriteDeadline(c)
		if _, err := io.WriteString(w, text); err != nil {
			return err
		}
		return rc.Flush()
	}
	send := func(event, data string) error { return write("event: " + event + "\ndata: " + data + "\n\n") }
	heartbeat := time.NewTicker(15 * time.Second)
	defer heartbeat.Stop()
	// A change announced while the store's connection was down would be missed: look again now and then.
	recheck := time.NewTicker(recheckEvery)
	defer recheck.Stop()
	var last string
	for {
		// Re-read after subscribing so a change between the first read and the subscription is not missed.
		fresh, err := s.svc.GetLogin(ctx, l.ID, loginSecret(c))
		switch {
		case errors.Is(err, authn.ErrNotFound) || errors.Is(err, authn.ErrForbidden):
			_ = send("reload", "gone")
			return nil
		case err != nil:
			// The store is out of reach for now: the login is not gone. Keep the page waiting and look again at
			// the next recheck; the phone's answer is shown once the store is back.
			s.log.Warn("login events: store unavailable; retrying", "login", l.ID, "err", err)
		default:
			l = fresh
		}
		now := s.cfg.Clock()
		if st := string(l.Current(now)); st != last {
			if err := send("state", st); err != nil {
				return nil
			}
			last = st
		}
		if !l.Open(now) {
			return nil
		}
		expiry := time.NewTimer(l.ExpiresAt.Sub(now))
	wait:
		for {
			select {
			case _, ok := <-msgs:
				if !ok { // the store is closing: come back later
					_ = send("reload", "shutdown")
					return nil
				}
				break wait
			case <-expiry.C:
				break wait
			case <-recheck.C:
				break wait
			case <-heartbeat.C:
				if err := write(": keep-alive\n\n"); err != nil {
					expiry.Stop()
					return nil
				}
			case <-s.closing:
				expiry.Stop()
				_ = send("reload", "shutdown")
				return nil
			case <-ctx.Done():
				expiry.Stop()
				return nil
			}
		}
		expiry.Stop()
	}
}

// handleEnrollPage is the https link of an invitation: on the phone it offers the app's deep link
// (passport://enroll?server=...&token=...); on a computer it explains what to do.
func (s *Server) handleEnrollPage(c echo.Context) error {
	token := c.QueryParam("token")
	if _, err := s.svc.GetInvitation(s.ctx(c), token); err != nil {
		return authn.ErrInvitation.WithMessage("This invitation is unknown, already used or expired. Ask your administrator for a new one.")
	}
	deep := "passport://enroll?" + url.Values{"server": {s.cfg.BaseURL}, "token": {token}}.Encode()
	return s.renderPage(c, http.StatusOK, pageData{
		View:  "info",
		Title: "Enroll your phone",
		Message: "On your phone, with the Passport app installed, tap the button below. On a computer, open this " +
			"invitation on your phone instead: scan the QR code your administrator sent you with the Passport app, " +
			"or open this link on the phone.",
		Link: template.URL(deep), LinkText: "Open in the Passport app",
	})
}
