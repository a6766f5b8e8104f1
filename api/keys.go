package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/saml"
)

// keyState is the key ring in use and the IdentityProvider that signs with its current key.
type keyState struct {
	ring *authn.KeyRing
	idp  *saml.IdentityProvider
}

func (s *Server) newKeyState(ring *authn.KeyRing) *keyState {
	return &keyState{ring: ring, idp: &saml.IdentityProvider{
		EntityID:          s.cfg.EntityID,
		Key:               ring.Current.Key,
		Certificate:       ring.Current.Certificate,
		ExtraCertificates: ring.Published(s.cfg.Clock()),
		Clock:             s.cfg.Clock,
		AssertionLifetime: s.cfg.AssertionLifetime,
		ClockSkew:         s.cfg.ClockSkew,
	}}
}

// idp is the IdentityProvider signing now.
func (s *Server) idp() *saml.IdentityProvider { return s.keys.Load().idp }

// ring is the key ring in use.
func (s *Server) ring() *authn.KeyRing { return s.keys.Load().ring }

// reloadKeys reads the key ring from the store (after a rollover by any replica). It never creates keys: a
// ring gone from the store (a Redis restarted without persistence, evicted or failed over empty) leaves the
// server signing with the keys it holds, loudly, rather than with new ones no SP trusts.
func (s *Server) reloadKeys(ctx context.Context) error {
	ring, err := s.svc.LoadKeyRing(ctx)
	if errors.Is(err, authn.ErrNoKeyRing) {
		s.log.Error("the signing keys are gone from the store; still signing with the keys loaded before. Restore the store's data: a server started on it now would create new keys that no SP trusts")
		return nil
	}
	if err != nil {
		return err
	}
	s.keys.Store(s.newKeyState(ring))
	return nil
}

// noteStaticKey tells the store, now and every minute until the server closes, that this server signs with a
// key from files, so that the keys command refuses to roll over keys nobody uses.
func (s *Server) noteStaticKey() {
	note := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.svc.NoteStaticKey(ctx); err != nil {
			s.log.Warn("note the static signing key in the store", "err", err)
		}
	}
	note()
	go func() {
		tick := time.NewTicker(time.Minute)
		defer tick.Stop()
		for {
			select {
			case <-s.closing:
				return
			case <-tick.C:
				note()
			}
		}
	}()
}

// keysResubscribeEvery is how soon a server whose subscription to key changes failed tries again.
const keysResubscribeEvery = 5 * time.Second

// watchKeys reloads the key ring when any replica announces a change, and every minute in case an
// announcement was missed, until the server closes. A subscription that fails (the store briefly out of
// reach) is tried again; the minute reload runs regardless.
func (s *Server) watchKeys() {
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-s.closing; cancel() }()
	var msgs <-chan string
	var stop func()
	subscribe := func() bool {
		m, st, err := s.svc.Store().Subscribe(ctx, authn.KeysChannel)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("watch key changes; trying again", "err", err)
			}
			return false
		}
		msgs, stop = m, st
		return true
	}
	subscribe()
	go func() {
		defer func() {
			if stop != nil {
				stop()
			}
		}()
		tick := time.NewTicker(time.Minute)
		defer tick.Stop()
		retry := time.NewTicker(keysResubscribeEvery)
		defer retry.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-msgs:
				if !ok { // the store closed: nothing more to follow
					return
				}
			case <-tick.C:
			case <-retry.C:
				if msgs != nil || !subscribe() {
					continue
				}
				// Subscribed at last: catch up with what was announced meanwhile.
			}
			if err := s.reloadKeys(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("reload signing keys", "err", err)
			}
		}
	}()
}

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
	return map[string]any{"current": viewCert(r.Current), "next": viewCert(r.Next), "previous": prev, "static": s.cfg.StaticKey}
}

func (s *Server) handleGetKeys(c echo.Context) error {
	return c.JSON(http.StatusOK, s.viewRing(s.ring()))
}

func (s *Server) staticKeyError() error {
	return errStaticKey
}

func (s *Server) handleStageKey(c echo.Context) error {
	if s.cfg.StaticKey {
		return s.staticKeyError()
	}
	r, err := s.svc.StageNextKey(s.ctx(c), s.cfg.EntityID)
	if err != nil {
		return err
	}
	s.keys.Store(s.newKeyState(r))
	return c.JSON(http.StatusOK, s.viewRing(r))
}

func (s *Server) handleActivateKey(c echo.Context) error {
	if s.cfg.StaticKey {
		return s.staticKeyError()
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
	r, err := s.svc.ActivateNextKey(s.ctx(c), grace)
	if err != nil {
		return err
	}
	s.keys.Store(s.newKeyState(r))
	return c.JSON(http.StatusOK, s.viewRing(r))
}
