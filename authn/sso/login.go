package sso

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/saml"
)

// Page is a login as its browser should see it now: the state, and what goes with it.
type Page struct {
	Login authn.Login
	State authn.LoginState // as of now: a login still waiting past its expiry is expired
	App   authn.App
	// Answer is an approved login's Response, to post to the application (StateApproved, StateAnswered).
	// SessionCookie, when set, is the IdP session the approval opened, for the browser to keep.
	Answer        *Post
	SessionCookie string
	// Message says, in words, why a login did not succeed (StateDenied, StateExpired, StateFailed) or why
	// nothing was sent to the phone (StatePaused); ErrorPost hands the SP its signed error Response (none for
	// an IdP-initiated login: nobody asked).
	Message   string
	ErrorPost *Post
}

// ErrSignInEnded: an answered login whose session has ended (signed out, suspended, phone revoked) does not
// show its Response again.
var ErrSignInEnded = &authn.Error{Code: "sign_in_ended", Message: "This sign-in has ended. Go back to the application and sign in again."}

// errForeignBrowser and errGone are the page-level refusals of a login URL.
var (
	errForeignBrowser = &authn.Error{Code: authn.ErrForbidden.Code, Message: "This sign-in was started in another browser. Go back to the application and sign in from this browser."}
	errGone           = &authn.Error{Code: authn.ErrNotFound.Code, Message: "This sign-in does not exist or has expired. Go back to the application and sign in again."}
	errAppGone        = &authn.Error{Code: authn.ErrNotFound.Code, Message: "The application of this sign-in no longer exists."}
)

// Load returns login id and its application, if secret is the one its browser holds.
func (p *IdP) Load(ctx context.Context, id, secret string) (authn.Login, authn.App, error) {
	return p.load(ctx, id, secret, nil)
}

// load is Load with, when pre is set, the email step's reads in the same round trip (authn.Logins.GetWith).
func (p *IdP) load(ctx context.Context, id, secret string, pre *authn.IdentifyPrefetch) (authn.Login, authn.App, error) {
	l, err := p.svc.Logins.GetWith(ctx, id, secret, pre)
	switch {
	case errors.Is(err, authn.ErrForbidden):
		return l, authn.App{}, errForeignBrowser
	case errors.Is(err, authn.ErrNotFound):
		return l, authn.App{}, errGone
	case err != nil:
		return l, authn.App{}, err
	}
	app, err := p.svc.Apps.Get(ctx, l.AppID)
	if errors.Is(err, authn.ErrNotFound) {
		return l, authn.App{}, errAppGone
	}
	return l, app, err
}

// Page shows login id (bound to the browser by secret) as it stands; showing it again is always safe. An
// approved login gets its Response, made exactly once however often the page is shown.
func (p *IdP) Page(ctx context.Context, id, secret string) (Page, error) {
	l, app, err := p.Load(ctx, id, secret)
	if err != nil {
		return Page{}, err
	}
	return p.page(ctx, l, app)
}

// page shows login l of app, as read or as just written, the way Page does.
func (p *IdP) page(ctx context.Context, l authn.Login, app authn.App) (Page, error) {
	pg := Page{Login: l, State: l.Current(p.cfg.Clock()), App: app}
	switch pg.State {
	case authn.StateIdentify, authn.StatePending:
		return pg, nil
	case authn.StateApproved, authn.StateAnswered:
		answered, cookie, err := p.respond(ctx, app, l)
		switch {
		case errors.Is(err, authn.ErrForbidden) && pg.State == authn.StateAnswered:
			// Signed out, suspended or its phone revoked since: the Response it had is not shown again.
			return Page{}, ErrSignInEnded
		case errors.Is(err, authn.ErrForbidden):
			return p.failure(pg, authn.ReasonSuspended)
		case errors.Is(err, errSubjectMismatch):
			return p.failure(pg, authn.ReasonSubjectMismatch)
		case errors.Is(err, errNotAllowed):
			return p.failure(pg, authn.ReasonNotAllowed)
		case err != nil:
			return Page{}, err
		}
		pg.Login, pg.Answer, pg.SessionCookie = answered, answerPost(app, answered), cookie
		return pg, nil
	case authn.StatePaused:
		return p.paused(pg)
	default:
		p.svc.Logins.Expire(ctx, l) // a challenge that expired while nobody looked is recorded as such now
		return p.failure(pg, l.Reason)
	}
}

// Identify takes the email typed in the browser of login id (see authn.Logins.Identify) and returns the login's
// page as it stands after the step, as Page would show it, without reading the login again. The login is read
// in the round trip that counts the attempt and reads what the step decides on (authn.IdentifyPrefetch). A
// malformed address or too many attempts are errors for the form (authn.ErrInvalid, authn.ErrRateLimited).
func (p *IdP) Identify(ctx context.Context, id, secret, email string, c Client) (Page, error) {
	pre := p.svc.Logins.PrefetchIdentify(email, c.Network)
	l, app, err := p.load(ctx, id, secret, pre)
	if err != nil {
		return Page{}, err
	}
	next, err := p.svc.Logins.IdentifyPrefetched(ctx, l, pre)
	if err != nil {
		return Page{}, err
	}
	return p.page(ctx, next, app)
}

// EnterCode takes an offline code typed in the browser of login id (see authn.Logins.ApproveByCode); a code
// completes only that login. Refusals are errors for the form (authn.ErrCodeInvalid, authn.ErrCodeLocked).
func (p *IdP) EnterCode(ctx context.Context, id, secret, code string, c Client) error {
	l, _, err := p.Load(ctx, id, secret)
	if err != nil {
		return err
	}
	_, err = p.svc.Logins.ApproveByCode(ctx, l, code, c.Network)
	return err
}

// ChangeEmail takes login id back to the email step ("Not you?"; see authn.Logins.ChangeEmail).
func (p *IdP) ChangeEmail(ctx context.Context, id, secret string) error {
	l, _, err := p.Load(ctx, id, secret)
	if err != nil {
		return err
	}
	_, err = p.svc.Logins.ChangeEmail(ctx, l)
	return err
}

// failureMessages say why a login did not succeed; the SP's error Response carries the same words.
var failureMessages = map[string]string{
	authn.ReasonDenied:          "The sign-in was denied on your phone.",
	authn.ReasonReported:        "The sign-in was denied and reported on your phone. It has been recorded for your administrator.",
	authn.ReasonNumberMismatch:  "The number entered on the phone did not match the one shown here, so the sign-in was denied.",
	authn.ReasonExpired:         "The sign-in request expired before it was approved.",
	authn.ReasonSuspended:       "Sign-in is not allowed for this account. Contact your administrator.",
	authn.ReasonNoDevice:        "We couldn't send a sign-in request to that address. Check the email, or ask your administrator to enroll a phone for it.",
	authn.ReasonSubjectMismatch: "The application asked for a different user to sign in. Go back to the application and sign in as that user, or sign out of it first.",
	authn.ReasonNotAllowed:      "Your account is not allowed to use this application. Ask your administrator for access.",
}

// failure ends a login that did not succeed: the words to show and, for an SP-initiated login, a signed error
// Response (never a Success).
func (p *IdP) failure(pg Page, reason string) (Page, error) {
	if pg.Login.Current(p.cfg.Clock()) == authn.StateExpired {
		reason = authn.ReasonExpired
	}
	msg, ok := failureMessages[reason]
	if !ok {
		msg = "The sign-in did not succeed."
	}
	status, sub := errorStatus(reason)
	post, err := p.errorPost(pg.App, pg.Login, status, sub, msg)
	if err != nil {
		return Page{}, err
	}
	pg.Message, pg.ErrorPost = msg, post
	return pg, nil
}

var pauseMessages = map[string]string{
	authn.PauseReported:   "because a recent sign-in request was reported on your phone as \"this wasn't me\"",
	authn.PauseRefused:    "because several recent sign-in requests were denied or not answered",
	authn.PauseHourly:     "because the hourly limit of sign-in requests was reached",
	authn.PauseTooPending: "because several sign-in requests already wait on your phone: answer or deny them in the Passport app",
}

// paused says that no request was sent to the phone, why, and until when; the SP gets RequestDenied.
func (p *IdP) paused(pg Page) (Page, error) {
	why, ok := pauseMessages[pg.Login.Reason]
	if !ok {
		why = "to protect your account"
	}
	msg := fmt.Sprintf("Sign-in requests to your phone are paused until %s UTC %s. Nothing was sent to your phone. Try again after that time, or ask your administrator for help.",
		pg.Login.PausedUntil.UTC().Format("15:04 on Jan 2"), why)
	post, err := p.errorPost(pg.App, pg.Login, saml.StatusResponder, saml.StatusRequestDenied, msg)
	if err != nil {
		return Page{}, err
	}
	pg.Message, pg.ErrorPost = msg, post
	return pg, nil
}

// errorPost is the signed error Response for an SP-initiated login (nil for IdP-initiated ones: nobody asked).
func (p *IdP) errorPost(app authn.App, l authn.Login, status, sub, msg string) (*Post, error) {
	if l.RequestID == "" || !app.Configured() {
		return nil, nil
	}
	acs := acsFor(app, l)
	resp, err := p.saml().MakeErrorResponse(saml.ErrorParams{InResponseTo: l.RequestID, Destination: acs, StatusCode: status, SubStatusCode: sub, Message: msg})
	if err != nil {
		return nil, err
	}
	return &Post{ACS: acs, Response: resp, RelayState: l.RelayState}, nil
}

// errorStatus maps why a login did not succeed to the SAML status the SP receives.
func errorStatus(reason string) (string, string) {
	switch reason {
	case authn.ReasonSuspended, authn.ReasonReported, authn.ReasonNotAllowed:
		return saml.StatusRequester, saml.StatusRequestDenied
	case authn.ReasonSubjectMismatch:
		return saml.StatusRequester, saml.StatusUnknownPrincipal
	default:
		return saml.StatusResponder, saml.StatusAuthnFailed
	}
}

// LoginCookieTTL is how long the browser keeps a login's binding cookie: the login's life and the time a
// finished login stays readable.
func (p *IdP) LoginCookieTTL() time.Duration { return p.svc.Logins.TTL() + 15*time.Minute }
