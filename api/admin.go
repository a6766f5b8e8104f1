package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/winkk/passport/api/qrimage"
	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/authn/audit"
)

// requireAdmin checks the admin bearer token in constant time.
func (s *Server) requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	want := sha256.Sum256([]byte("Bearer " + s.cfg.AdminToken))
	return func(c echo.Context) error {
		got := c.Request().Header.Get(echo.HeaderAuthorization)
		if !authorizationMatches(got, want) {
			reason := "invalid_token"
			if got == "" {
				reason = "no_token"
			}
			s.record(c, audit.Event{Type: audit.AdminDenied, Actor: audit.ActorSystem, Outcome: audit.OutcomeFailure, Reason: reason,
				Details: map[string]any{"method": c.Request().Method, "path": c.Request().URL.Path}})
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="passport-admin"`)
			return errUnauthorized
		}
		s.act(c, "admin:token")
		return next(c)
	}
}

// authorizationMatches reports whether the Authorization header got is the one whose SHA-256 digest is want.
// It compares digests, not the header itself: subtle.ConstantTimeCompare answers at once when the lengths
// differ, so comparing the raw values would let a client timing its refusals learn the token's length.
// Digests always have the same length, and hashing got costs a time that depends only on got, which the
// client knows already.
func authorizationMatches(got string, want [sha256.Size]byte) bool {
	g := sha256.Sum256([]byte(got))
	return subtle.ConstantTimeCompare(g[:], want[:]) == 1
}

// appView is an application as the admin API shows it.
type appView struct {
	authn.App
	SSOURL         string   `json:"sso_url"`
	MetadataURL    string   `json:"metadata_url"`
	CertificateURL string   `json:"certificate_url"`
	EntityID       string   `json:"entity_id"`
	Configured     bool     `json:"configured"`
	Warnings       []string `json:"warnings"` // [] when nothing looks wrong
}

func (s *Server) viewApp(a authn.App) appView {
	return appView{
		App:            a,
		SSOURL:         s.idp.SSOURL(a.ID),
		MetadataURL:    s.idp.MetadataURL(a.ID),
		CertificateURL: s.idp.CertificateURL(),
		EntityID:       s.idp.EntityID(),
		Configured:     a.Configured(),
		Warnings:       append([]string{}, authn.AppWarnings(a)...),
	}
}

func (s *Server) handleCreateApp(c echo.Context) error {
	var p authn.AppPatch
	if err := bindJSON(c, &p); err != nil {
		return err
	}
	a, err := s.svc.Apps.Create(s.ctx(c), p)
	if err != nil {
		return err
	}
	s.log.Info("application created", "app", a.ID, "name", a.Name)
	return c.JSON(http.StatusCreated, s.viewApp(a))
}

func (s *Server) handleListApps(c echo.Context) error {
	apps, err := s.svc.Apps.List(s.ctx(c))
	if err != nil {
		return err
	}
	out := make([]appView, 0, len(apps))
	for _, a := range apps {
		out = append(out, s.viewApp(a))
	}
	return c.JSON(http.StatusOK, map[string]any{"apps": out})
}

func (s *Server) handleGetApp(c echo.Context) error {
	a, err := s.svc.Apps.Get(s.ctx(c), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.viewApp(a))
}

func (s *Server) handleUpdateApp(c echo.Context) error {
	var p authn.AppPatch
	if err := bindJSON(c, &p); err != nil {
		return err
	}
	a, err := s.svc.Apps.Update(s.ctx(c), c.Param("id"), p)
	if err != nil {
		return err
	}
	s.log.Info("application updated", "app", a.ID)
	return c.JSON(http.StatusOK, s.viewApp(a))
}

func (s *Server) handleDeleteApp(c echo.Context) error {
	if err := s.svc.Apps.Delete(s.ctx(c), c.Param("id")); err != nil {
		return err
	}
	s.log.Info("application deleted", "app", c.Param("id"))
	return c.NoContent(http.StatusNoContent)
}

type invitationView struct {
	Token     string    `json:"token"`
	Email     string    `json:"email"`
	EnrollURL string    `json:"enroll_url"`
	QRURL     string    `json:"qr_url"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (s *Server) handleCreateInvitation(c echo.Context) error {
	var body struct {
		Email string `json:"email"`
	}
	if err := bindJSON(c, &body); err != nil {
		return err
	}
	inv, token, err := s.svc.Devices.Invite(s.ctx(c), body.Email)
	if err != nil {
		return err
	}
	s.log.Info("invitation created", "email", inv.Email, "expires_at", inv.ExpiresAt)
	return c.JSON(http.StatusCreated, invitationView{
		Token:     token,
		Email:     inv.Email,
		EnrollURL: s.svc.Devices.EnrollURL(token),
		QRURL:     s.url("/api/v1/admin/invitations/qr?token=" + url.QueryEscape(token)),
		ExpiresAt: inv.ExpiresAt,
	})
}

func (s *Server) handleInvitationQR(c echo.Context) error {
	token := c.QueryParam("token")
	if _, err := s.svc.Devices.Invitation(s.ctx(c), token); err != nil {
		return err
	}
	png, _, err := qrimage.PNG(s.svc.Devices.EnrollURL(token), 320)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.Blob(http.StatusOK, "image/png", png)
}

// bindJSON decodes a JSON body strictly: unknown fields and trailing data are refused with a clear message.
func bindJSON(c echo.Context, v any) error {
	ct := c.Request().Header.Get(echo.HeaderContentType)
	if ct != "" && !strings.HasPrefix(ct, echo.MIMEApplicationJSON) {
		return errUnsupportedMediaType
	}
	return decodeJSON(c.Request().Body, v)
}
