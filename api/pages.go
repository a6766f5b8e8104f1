package api

import (
	"bytes"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/winkk/passport/authn"
)

//go:embed templates/*.html
var templateFS embed.FS

var pageTmpl = template.Must(template.ParseFS(templateFS, "templates/*.html"))

// postForm is the HTTP-POST binding form (saml-bindings §3.5.4) that carries a Response to the ACS URL.
type postForm struct {
	ACS          string
	SAMLResponse string
	RelayState   string
	Auto         bool // submitted by script at once (success); error Responses wait for the user's click
}

// pageData is everything the one page template shows.
type pageData struct {
	View             string // identify | waiting | post | paused | error
	Title            string
	Message          string
	AppName          string
	Action           string
	ChangeAction     string // where "Not you? Use another email" posts (waiting, paused)
	Email            string
	FormError        string
	Number           int
	ExpiresUnixMilli int64
	Remaining        string
	State            string // the login state the page shows, for the events script
	Events           string // URL of the server-sent events stream; empty: no live updates
	Refresh          int    // seconds; a <noscript> refresh while waiting
	Post             *postForm
	Link             template.URL // built by the server only: custom schemes (passport://) pass
	LinkText         string
	Frames           []string // front-channel logout requests to load (View "logout")
	Nonce            string
}

func newNonce() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// renderPage writes the page with a strict Content-Security-Policy: scripts and styles only with this
// response's nonce, forms only to ourselves and (for SAML posts) the ACS origin.
func (s *Server) renderPage(c echo.Context, status int, d pageData) error {
	d.Nonce = newNonce()
	formAction := "'self'"
	if d.Post != nil {
		formAction += " " + acsOrigin(d.Post.ACS)
	}
	frameSrc := "'none'"
	if len(d.Frames) > 0 {
		frameSrc = frameOrigins(d.Frames)
	}
	var buf bytes.Buffer
	if err := pageTmpl.ExecuteTemplate(&buf, "page", d); err != nil {
		return fmt.Errorf("api: render page: %w", err)
	}
	h := c.Response().Header()
	h.Set("Content-Security-Policy", fmt.Sprintf("default-src 'none'; script-src 'nonce-%s'; style-src 'nonce-%s'; connect-src 'self'; img-src 'self' data:; frame-src %s; form-action %s; frame-ancestors 'none'; base-uri 'none'", d.Nonce, d.Nonce, frameSrc, formAction))
	h.Set("Cache-Control", "no-store")
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
}

func (s *Server) renderError(c echo.Context, status int, message string) error {
	title, ok := errorTitles[status]
	if !ok {
		title = "Sign-in not possible"
	}
	d := pageData{View: "error", Title: title, Message: message}
	if status >= 500 && c.Request().Method == http.MethodGet && strings.HasPrefix(c.Path(), "/login/") {
		// Most likely the store is briefly out of reach; the login is still there. Try again by itself
		// (the Refresh header works with and without scripts).
		c.Response().Header().Set("Refresh", strconv.Itoa(errorRetrySeconds))
		d.Message += " This page tries again by itself in a few seconds."
	}
	return s.renderPage(c, status, d)
}

// renderPost sends a Response to acs through the browser.
func (s *Server) renderPost(c echo.Context, status int, app authn.App, acs string, resp []byte, relayState, message string) error {
	return s.renderPage(c, status, pageData{
		View:    "error",
		Title:   "Sign-in not completed",
		Message: message,
		AppName: app.Name,
		Post:    &postForm{ACS: acs, SAMLResponse: samlValue(resp), RelayState: relayState},
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
