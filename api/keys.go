package api

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/authn/sso"
)

type certView struct {
	NotBefore   time.Time  `json:"not_before"`
	NotAfter    time.Time  `json:"not_after"`
	SHA256      string     `json:"sha256"`
	PublishedTo *time.Time `json:"published_until,omitempty"`
	PEM         string     `json:"pem"`
}

func viewCert(k *authn.SigningKey) *certView {
	if k == nil {
		return nil
	}
	sum := sha256.Sum256(k.Certificate.Raw)
	return &certView{NotBefore: k.Certificate.NotBefore, NotAfter: k.Certificate.NotAfter, SHA256: hex.EncodeToString(sum[:]), PEM: string(k.CertificatePEM)}
}

func (s *Server) viewRing(r *authn.KeyRing) map[string]any {
	var prev []certView
	for _, p := range r.Previous {
		sum := sha256.Sum256(p.Certificate.Raw)
		until := p.Until
		prev = append(prev, certView{NotBefore: p.Certificate.NotBefore, NotAfter: p.Certificate.NotAfter, SHA256: hex.EncodeToString(sum[:]), PublishedTo: &until,
			PEM: string(authn.CertificatePEM(p.Certificate))})
	}
	return map[string]any{"current": viewCert(r.Current), "next": viewCert(r.Next), "previous": prev, "static": s.idp.StaticKey()}
}

func (s *Server) handleGetKeys(c echo.Context) error {
	return c.JSON(http.StatusOK, s.viewRing(s.idp.Ring()))
}

func (s *Server) handleStageKey(c echo.Context) error {
	r, err := s.idp.StageKey(s.ctx(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.viewRing(r))
}

func (s *Server) handleActivateKey(c echo.Context) error {
	if s.idp.StaticKey() {
		return sso.ErrStaticKey
	}
	var body struct {
		Grace string `json:"grace"`
	}
	if c.Request().ContentLength != 0 {
		if err := bindJSON(c, &body); err != nil {
			return err
		}
	}
	grace := authn.DefaultRolloverGrace
	if body.Grace != "" {
		d, err := time.ParseDuration(body.Grace)
		if err != nil || d < 0 {
			return authn.ErrInvalid.WithMessage("grace must be a duration such as 720h.")
		}
		grace = d
	}
	r, err := s.idp.ActivateKey(s.ctx(c), grace)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.viewRing(r))
}
