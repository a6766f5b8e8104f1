package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/winkk/passport/api/apierr"
	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/saml"
)

// Refusals package api makes itself, beyond authn's sentinels: of the request's credential, method and body,
// and of SAML and login-page states. They are *authn.Error like every other error a client is told about, and
// apierr's table gives each code its status. Answer them as they are or with WithMessage.
var (
	errUnauthorized         = &authn.Error{Code: "unauthorized", Message: "A valid admin bearer token is required (Authorization: Bearer <PASSPORT_ADMIN_TOKEN>)."}
	errMethodNotAllowed     = &authn.Error{Code: "method_not_allowed", Message: "This method is not allowed here."}
	errTooLarge             = &authn.Error{Code: "too_large", Message: "The request body is too large."}
	errUnsupportedMediaType = &authn.Error{Code: "unsupported_media_type", Message: "Send JSON (Content-Type: application/json)."}
	errChallengeNotFound    = &authn.Error{Code: "challenge_not_found", Message: "There is no such sign-in request for this account."}
	errMalformedRequest     = &authn.Error{Code: "malformed_request", Message: "The sign-in request could not be read."}
	errACSMismatch          = &authn.Error{Code: "acs_mismatch", Message: "The request asks for a response at an address that is not registered for this application."}
	errRelayStateNotAllowed = &authn.Error{Code: "relay_state_not_allowed", Message: "This RelayState is not allowed for this application. Ask its administrator to add it to the application's allowed RelayStates."}
	errNoPassive            = &authn.Error{Code: "no_passive", Message: "Signing in needs your approval on your phone."}
	errSignInEnded          = &authn.Error{Code: "sign_in_ended", Message: "This sign-in has ended. Go back to the application and sign in again."}
	errSLONotConfigured     = &authn.Error{Code: "slo_not_configured", Message: "Single logout is not set up for this application: it needs the SP's signing certificate and SLO URL in Passport."}
	errStaticKey            = &authn.Error{Code: "static_key", Message: "The signing key is loaded from files (PASSPORT_SIGNING_KEY_FILE): replace the files to roll it over."}
	errNoACS                = &authn.Error{Code: "no_acs", Message: "The metadata has no HTTP-POST AssertionConsumerService: Passport answers by HTTP-POST only."}
	errNotConfigured        = authn.ErrNotConfigured.WithMessage("This application is not configured yet: its administrator must set the audience and ACS URL in Passport.")
	errNoRoute              = authn.ErrNotFound.WithMessage("There is nothing at this address.")
	errInternal             = authn.ErrInternal.WithMessage("Something went wrong on our side. Please try again.")
)

// classify turns any error into what the client is told: an *authn.Error whose code has a status in apierr's
// table and whose message is safe to show, and that status. An *authn.Error is itself. A SAML refusal becomes
// one here, its code and message kept: package saml imports nothing of ours, so its errors join the one model
// at this boundary. echo's own refusals (no route, wrong method, body too large, not JSON) get their codes.
// Anything else, and a code the table lacks, is internal: a 500 that says nothing of the cause.
func classify(err error) (*authn.Error, int) {
	pub := errInternal
	if de, ok := errors.AsType[*authn.Error](err); ok {
		pub = de
	} else if se, ok := errors.AsType[*saml.Error](err); ok {
		pub = &authn.Error{Code: se.Code, Message: se.Message, Err: err}
	} else if he, ok := errors.AsType[*echo.HTTPError](err); ok {
		switch he.Code {
		case http.StatusNotFound:
			pub = errNoRoute
		case http.StatusMethodNotAllowed:
			pub = errMethodNotAllowed
		case http.StatusRequestEntityTooLarge:
			pub = errTooLarge
		case http.StatusUnsupportedMediaType:
			pub = errUnsupportedMediaType
		default:
			if he.Code >= 400 && he.Code < 500 {
				pub = &authn.Error{Code: authn.ErrInvalid.Code, Message: http.StatusText(he.Code), Err: err}
			}
		}
	}
	if !apierr.Known(pub.Code) {
		pub = errInternal
	}
	return pub, apierr.Status(pub.Code)
}

// wantsJSON reports whether the request is from a program (API paths, a page's event stream) rather than a
// browser showing the answer.
func wantsJSON(c echo.Context) bool {
	p := c.Request().URL.Path
	return strings.HasPrefix(p, "/api/") || p == "/healthz" || p == "/readyz" || c.Path() == "/login/:txnID/events"
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// recoverPanics turns a panic in a handler into a 500 like any other internal error, and logs it with the
// panicking goroutine's stack (echo's own logger is discarded).
func (s *Server) recoverPanics() echo.MiddlewareFunc {
	return middleware.RecoverWithConfig(middleware.RecoverConfig{
		DisableStackAll: true,
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			s.log.Error("panic", "method", c.Request().Method, "path", c.Request().URL.Path, "err", err, "stack", string(stack))
			return fmt.Errorf("api: panic: %w", err)
		},
	})
}

func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		s.log.Warn("error after response started", "path", c.Request().URL.Path, "err", err)
		return
	}
	pub, status := classify(err)
	attrs := []any{"method", c.Request().Method, "path", c.Request().URL.Path, "status", status, "code", pub.Code}
	switch {
	case status >= 500:
		s.log.Error("request failed", append(attrs, "err", err)...)
	case pub.Err != nil:
		// The refusal has a cause the client is not told (a proof that does not verify, a SAML message's
		// flaw): the log keeps it.
		s.log.Info("request refused", append(attrs, "detail", err.Error())...)
	default:
		s.log.Debug("request refused", append(attrs, "err", err)...)
	}
	if wantsJSON(c) {
		var b errorBody
		b.Error.Code, b.Error.Message = pub.Code, pub.Message
		_ = c.JSON(status, b)
		return
	}
	_ = s.renderError(c, status, pub.Message)
}
