package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/winkk/passport/authn"
)

// statusOf maps domain error codes to HTTP statuses; anything unlisted is a 400.
var statusOf = map[string]int{
	"invalid_request":       http.StatusBadRequest,
	"not_found":             http.StatusNotFound,
	"conflict":              http.StatusConflict,
	"rate_limited":          http.StatusTooManyRequests,
	"forbidden":             http.StatusForbidden,
	"challenge_closed":      http.StatusConflict,
	"number_mismatch":       http.StatusUnprocessableEntity,
	"no_matching_challenge": http.StatusNotFound,
	"invitation_invalid":    http.StatusGone,
	"invalid_proof":         http.StatusUnauthorized,
	"proof_replayed":        http.StatusUnauthorized,
	"unknown_device":        http.StatusUnauthorized,
	"device_revoked":        http.StatusUnauthorized,
	"app_not_configured":    http.StatusConflict,
	"email_not_allowed":     http.StatusForbidden,
	"code_invalid":          http.StatusBadRequest,
	"code_locked":           http.StatusTooManyRequests,
	"unauthorized":          http.StatusUnauthorized,
	"too_large":             http.StatusRequestEntityTooLarge,
	"internal":              http.StatusInternalServerError,
	"key_unopenable":        http.StatusConflict,
	"no_key_ring":           http.StatusConflict,
	"static_key":            http.StatusConflict,
	"sign_in_ended":         http.StatusForbidden,
	"no_passive":            http.StatusConflict,
	"slo_not_configured":    http.StatusConflict,
}

// apiError is an error with a public code and message; Err carries detail for the log only.
type apiError struct {
	Status  int
	Code    string
	Message string
	Err     error
}

func (e *apiError) Error() string {
	if e.Err != nil {
		return e.Code + ": " + e.Message + ": " + e.Err.Error()
	}
	return e.Code + ": " + e.Message
}

func (e *apiError) Unwrap() error { return e.Err }

func errorf(status int, code, msg string) *apiError {
	return &apiError{Status: status, Code: code, Message: msg}
}

// classify turns any error into a public status, code and message.
func classify(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var de *authn.Error
	if errors.As(err, &de) {
		st, ok := statusOf[de.Code]
		if !ok {
			st = http.StatusBadRequest
		}
		return &apiError{Status: st, Code: de.Code, Message: de.Message, Err: err}
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		switch he.Code {
		case http.StatusNotFound:
			return &apiError{Status: he.Code, Code: "not_found", Message: "There is nothing at this address."}
		case http.StatusMethodNotAllowed:
			return &apiError{Status: he.Code, Code: "method_not_allowed", Message: "This method is not allowed here."}
		case http.StatusRequestEntityTooLarge:
			return &apiError{Status: he.Code, Code: "too_large", Message: "The request body is too large."}
		case http.StatusUnsupportedMediaType:
			return &apiError{Status: he.Code, Code: "unsupported_media_type", Message: "Send JSON (Content-Type: application/json)."}
		}
		if he.Code >= 400 && he.Code < 500 {
			return &apiError{Status: he.Code, Code: "invalid_request", Message: http.StatusText(he.Code), Err: err}
		}
	}
	return &apiError{Status: http.StatusInternalServerError, Code: "internal", Message: "Something went wrong on our side. Please try again.", Err: err}
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
	ae := classify(err)
	attrs := []any{"method", c.Request().Method, "path", c.Request().URL.Path, "status", ae.Status, "code", ae.Code}
	switch {
	case ae.Status >= 500:
		s.log.Error("request failed", append(attrs, "err", err)...)
	case ae.Err != nil:
		s.log.Info("request refused", append(attrs, "detail", ae.Err.Error())...)
	}
	if wantsJSON(c) {
		var b errorBody
		b.Error.Code, b.Error.Message = ae.Code, ae.Message
		_ = c.JSON(ae.Status, b)
		return
	}
	_ = s.renderError(c, ae)
}
