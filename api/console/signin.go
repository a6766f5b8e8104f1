package console

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"

	"github.com/winkk/passport/authn"
)

// Signing in to the console is a login like any other (email → the number → approval on the phone), parked
// for the console (authn.Console.Park) instead of an application. Whether the account is an administrator is
// told only after its phone approved: before that, every address sees the same pages.

type signInView struct {
	Next, Email, Error string
}

func (signInView) title() string { return "Sign in to the admin console" }

type waitView struct {
	Email   string
	Number  int
	Confirm bool // a confirmation of an action (step-up), not a sign-in
	Next    string
}

func (v waitView) title() string {
	if v.Confirm {
		return "Confirm on your phone"
	}
	return "Approve on your phone"
}
func (waitView) refresh() int { return 2 }

type signInErrorView struct {
	Title, Message, Next string
}

func (v signInErrorView) title() string { return v.Title }

// handleSignInPage asks for the administrator's email; with a live session it goes straight on.
func (k *Console) handleSignInPage(c echo.Context) error {
	next := safeNext(c.QueryParam("next"))
	if _, err := k.svc.Console.Session(k.ctx(c), cookieValue(c, sessionCookie)); err == nil {
		return c.Redirect(http.StatusSeeOther, next)
	}
	return k.render(c, http.StatusOK, "signin", "", signInView{Next: next})
}

// handleSignInSubmit parks a console login for this browser and takes the email typed, then shows the number.
// A form posted from another site (as its Sec-Fetch-Site or Origin says) is refused: nobody signs a browser in
// to the console without having typed the address on our page. (Our pages send no Referer, so a browser's
// Origin may be "null": Sec-Fetch-Site tells then.)
func (k *Console) handleSignInSubmit(c echo.Context) error {
	h := c.Request().Header
	site, o := h.Get("Sec-Fetch-Site"), h.Get("Origin")
	if (site != "" && site != "same-origin" && site != "none") || (o != "" && o != "null" && o != k.origin) {
		return k.render(c, http.StatusForbidden, "message", "", messageView{Title: "Form refused", Message: "This sign-in form was sent from another site."})
	}
	next := safeNext(c.FormValue("next"))
	email := c.FormValue("email")
	id, err := k.startLogin(c, email)
	if errors.Is(err, authn.ErrInvalid) || errors.Is(err, authn.ErrRateLimited) {
		status := http.StatusUnprocessableEntity
		if errors.Is(err, authn.ErrRateLimited) {
			status = http.StatusTooManyRequests
		}
		return k.render(c, status, "signin", "", signInView{Next: next, Email: email, Error: publicMessage(err)})
	}
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/admin/signin/"+id+"?next="+url.QueryEscape(next))
}

// startLogin parks a console login bound to this browser (the cookie) and identifies email on it.
func (k *Console) startLogin(c echo.Context, email string) (string, error) {
	if _, err := authn.NormalizeEmail(email); err != nil {
		return "", err // a typo costs no parked login
	}
	cl := k.cfg.Client(c)
	l, secret, err := k.svc.Console.Park(k.ctx(c), authn.StartLogin{ClientIP: cl.IP, UserAgent: cl.UserAgent, Network: cl.Network})
	if err != nil {
		return "", err
	}
	k.setCookie(c, loginCookie, secret, "/admin/signin", k.svc.Logins.TTL()+15*60e9)
	if _, err := k.svc.Logins.Identify(k.ctx(c), l, email, cl.Network); err != nil {
		return "", err
	}
	return l.ID, nil
}

// handleConfirm asks the signed-in administrator's phone for a fresh approval (step-up), then returns to next,
// where the action that asked for it can be done again.
func (k *Console) handleConfirm(c echo.Context) error {
	sess := sessionOf(c)
	next := safeNext(c.QueryParam("next"))
	id, err := k.startLogin(c, sess.Email)
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/admin/signin/"+id+"?next="+url.QueryEscape(next))
}

// handleSignInWait shows a console login as it stands: the number while it waits; once approved, the session
// (or the confirmation) and on to the page the administrator was on.
func (k *Console) handleSignInWait(c echo.Context) error {
	ctx := k.ctx(c)
	next := safeNext(c.QueryParam("next"))
	l, err := k.svc.Logins.Get(ctx, c.Param("id"), cookieValue(c, loginCookie))
	if errors.Is(err, authn.ErrNotFound) || errors.Is(err, authn.ErrForbidden) || (err == nil && l.AppID != authn.ConsoleApp) {
		return k.render(c, http.StatusNotFound, "signin-error", "", signInErrorView{Title: "Sign-in not found",
			Message: "This sign-in does not exist, has expired or was started in another browser.", Next: next})
	}
	if err != nil {
		return err
	}
	cur, serr := k.svc.Console.Session(ctx, cookieValue(c, sessionCookie))
	var confirming *authn.ConsoleSession
	if serr == nil && cur.Email == l.Email {
		confirming = &cur
	}
	switch st := l.Current(k.now()); st {
	case authn.StateIdentify:
		return c.Redirect(http.StatusSeeOther, "/admin/signin?next="+url.QueryEscape(next))
	case authn.StatePending:
		return k.render(c, http.StatusOK, "wait", "", waitView{Email: l.Email, Number: l.Number, Confirm: confirming != nil, Next: next})
	case authn.StateApproved:
		_, cookie, err := k.svc.Console.SignIn(ctx, l, confirming)
		if errors.Is(err, authn.ErrNotAdmin) {
			k.clearCookie(c, loginCookie, "/admin/signin")
			return k.notAdmin(c, next)
		}
		if err != nil {
			return err
		}
		k.clearCookie(c, loginCookie, "/admin/signin")
		if confirming != nil {
			return k.redirect(c, next, "Approved on your phone. For the next few minutes you can do the action that asked for it.")
		}
		if serr == nil { // another administrator's session in this browser: it ends here
			k.svc.Console.End(ctx, cur.ID)
		}
		k.setCookie(c, sessionCookie, cookie, "/admin", authn.ConsoleLifetime)
		return k.redirect(c, next, "Signed in as "+l.Email+".")
	case authn.StateAnswered:
		return c.Redirect(http.StatusSeeOther, next)
	case authn.StateFailed:
		if l.Reason == authn.ReasonNotAdmin {
			return k.notAdmin(c, next)
		}
		return k.render(c, http.StatusForbidden, "signin-error", "", signInErrorView{Title: "Sign-in not completed", Message: "Sign-in is not possible for this account.", Next: next})
	case authn.StatePaused:
		return k.render(c, http.StatusTooManyRequests, "signin-error", "", signInErrorView{Title: "Sign-in requests paused",
			Message: "Sign-in requests to this phone are paused until " + l.PausedUntil.UTC().Format("15:04 on Jan 2") + " UTC. Nothing was sent to the phone.", Next: next})
	default: // denied, expired
		if st == authn.StateExpired {
			k.svc.Logins.Expire(ctx, l)
		}
		msg := "The sign-in was denied on the phone."
		switch {
		case st == authn.StateExpired:
			msg = "The sign-in request expired before it was approved."
		case l.Reason == authn.ReasonNumberMismatch:
			msg = "The number entered on the phone did not match the one shown here, so the sign-in was denied."
		case l.Reason == authn.ReasonReported:
			msg = "The sign-in was denied and reported on the phone."
		}
		return k.render(c, http.StatusForbidden, "signin-error", "", signInErrorView{Title: "Sign-in not completed", Message: msg, Next: next})
	}
}

func (k *Console) notAdmin(c echo.Context, next string) error {
	return k.render(c, http.StatusForbidden, "signin-error", "", signInErrorView{Title: "Not an administrator",
		Message: authn.ErrNotAdmin.Message, Next: next})
}

// handleSignOut ends the console session.
func (k *Console) handleSignOut(c echo.Context) error {
	k.svc.Console.End(k.ctx(c), sessionOf(c).ID)
	k.clearCookie(c, sessionCookie, "/admin")
	return c.Redirect(http.StatusSeeOther, "/admin/signin")
}

// publicMessage is what a person may be told of err.
func publicMessage(err error) string {
	var ae *authn.Error
	if errors.As(err, &ae) {
		return ae.Message
	}
	return "Something went wrong. Try again."
}
