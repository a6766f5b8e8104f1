package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/winkk/passport/api/apierr"
	"github.com/winkk/passport/authn"
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
	errNoRoute              = authn.ErrNotFound.WithMessage("There is nothing at this address.")
	errInternal             = authn.ErrInternal.WithMessage("Something went wrong on our side. Please try again.")
	errUnavailable          = authn.ErrUnavailable.WithMessage(authn.ErrUnavailable.Message)
)

// unavailableRetrySeconds is the Retry-After of a 503 temporarily_unavailable (the store out of reach or
// failing over; a Sentinel failover takes a few seconds), and how soon a login page showing it reloads.
const unavailableRetrySeconds = 2

// classify turns any error into what the client is told: an *authn.Error whose code has a status in apierr's
// table and whose message is safe to show, and that status. An *authn.Error is itself (the flows in authn/sso
// turn the protocol layer's refusals into one). echo's own refusals (no route, wrong method, body too large, not JSON) get their codes.
// A store that cannot serve the request for now (out of reach, past the request's deadline, failing over) is
// temporarily_unavailable (503), whether the error is a bare store error or an internal one caused by it.
// Anything else, and a code the table lacks, is internal: a 500 that says nothing of the cause.
func classify(err error) (*authn.Error, int) {
	pub := errInternal
	de, isDomain := errors.AsType[*authn.Error](err)
	if (!isDomain || de.Code == authn.ErrInternal.Code) && authn.Unavailable(err) {
		pub = errUnavailable
	} else if isDomain {
		pub = de
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
		// Fields, on invalid_request, names each field's problem.
		Fields []authn.FieldError `json:"fields,omitempty"`
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
	if status == http.StatusServiceUnavailable {
		c.Response().Header().Set("Retry-After", strconv.Itoa(unavailableRetrySeconds))
	}
	if wantsJSON(c) {
		var b errorBody
		b.Error.Code, b.Error.Message, b.Error.Fields = pub.Code, pub.Message, pub.Fields
		_ = c.JSON(status, b)
		return
	}
	_ = s.renderError(c, status, pub.Message)
}
