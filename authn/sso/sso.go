// Package sso owns Passport's SAML identity-provider flows over authn: a login begun from an SP's request or
// an IdP-initiated link, the login page's states, the Response once the phone has approved, single logout and
// which sessions a LogoutRequest may end, the NameID and attribute policy of each application, the metadata
// and certificates it publishes, and following key rollovers made by any replica.
//
// It is the one package that joins authn (the login state machine and its records) and saml (the protocol):
// the HTTP faces in package api parse a request, call one method here, and render or encode what it returns.
// Another protocol (OIDC) would be a sibling package over the same authn services.
package sso

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/saml"
)

// Config is what the flows need to know of the deployment.
type Config struct {
	BaseURL  string // public URL; every absolute URL the IdP issues or checks derives from it
	EntityID string // the IdP's SAML entity ID
	// Clock is the time source of SAML messages; nil means time.Now.
	Clock func() time.Time
	// AssertionLifetime and ClockSkew shape every assertion's validity window (saml defaults when zero).
	AssertionLifetime, ClockSkew time.Duration
	// StaticKey says the signing key came from files: no rollover through the store.
	StaticKey bool
	Logger    *slog.Logger
}

// IdP is Passport's SAML identity provider: the flows above, for every application. Safe for concurrent
// use; Close stops its background work.
type IdP struct {
	cfg  Config
	svc  *authn.Service
	log  *slog.Logger
	keys atomic.Pointer[keyState]
	// persistentSecret keys persistent NameIDs (an HMAC of app and email).
	persistentSecret []byte

	closing   chan struct{}
	closeOnce sync.Once
	bg        sync.WaitGroup
}

// New returns the identity provider over svc, signing with the current key of ring. Unless the key is static,
// it follows the key rollovers any replica makes (until Close).
func New(ctx context.Context, cfg Config, svc *authn.Service, ring *authn.KeyRing) (*IdP, error) {
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if u, err := url.Parse(cfg.BaseURL); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("sso: base URL %q is not an absolute http(s) URL", cfg.BaseURL)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := &IdP{cfg: cfg, svc: svc, log: cfg.Logger, closing: make(chan struct{})}
	p.keys.Store(p.newKeyState(ring))
	var err error
	if p.persistentSecret, err = svc.Keys.Secret(ctx, "persistent-nameid"); err != nil {
		return nil, fmt.Errorf("sso: %w", err)
	}
	// Background work starts last, once nothing can fail: a New that returns an error leaves nothing running.
	if cfg.StaticKey {
		p.noteStaticKey()
	} else {
		p.followKeys()
	}
	return p, nil
}

// Close stops following key changes and waits for that to end.
func (p *IdP) Close() {
	p.closeOnce.Do(func() { close(p.closing) })
	p.bg.Wait()
}

// EntityID is the IdP's SAML entity ID.
func (p *IdP) EntityID() string { return p.cfg.EntityID }

// URLs of the IdP's endpoints for an application (what an SP is given).

// SSOURL is app's SingleSignOnService URL.
func (p *IdP) SSOURL(appID string) string { return p.url("/saml/" + url.PathEscape(appID) + "/sso") }

// SLOURL is app's SingleLogoutService URL.
func (p *IdP) SLOURL(appID string) string { return p.url("/saml/" + url.PathEscape(appID) + "/slo") }

// MetadataURL is where app's IdP metadata is published.
func (p *IdP) MetadataURL(appID string) string {
	return p.url("/saml/" + url.PathEscape(appID) + "/metadata")
}

// CertificateURL is where the current signing certificate is published (PEM).
func (p *IdP) CertificateURL() string { return p.url("/saml/certificate.pem") }

// IdPInitiatedURL is app's IdP-initiated login URL.
func (p *IdP) IdPInitiatedURL(appID string) string {
	return p.url("/saml/" + url.PathEscape(appID) + "/login")
}

func (p *IdP) url(path string) string { return p.cfg.BaseURL + path }

// requestIDLifetime is how long a consumed request ID is remembered: past it the request's IssueInstant is too
// old to be accepted anyway (it may be RequestMaxAge old, plus the allowed skew on either side).
func (p *IdP) requestIDLifetime() time.Duration {
	return p.saml().RequestWindow() + time.Minute
}

// Client is the browser a request came from.
type Client struct {
	IP        string // its address, as shown on the phone
	UserAgent string
	Network   string // the key of per-client limits: the address, or the /64 of an IPv6 address
}

// Inbound is a SAML protocol message as it reached an endpoint, still in its binding: the HTTP method, the
// raw query (HTTP-Redirect) and the form (HTTP-POST).
type Inbound struct {
	Method   string
	RawQuery string
	Form     url.Values
}

// decode reads the message param (SAMLRequest or SAMLResponse) from its binding.
func (in Inbound) decode(param string) (*saml.InboundMessage, error) {
	var msg *saml.InboundMessage
	var err error
	if in.Method == "POST" {
		msg, err = saml.DecodePOST(in.Form, param)
	} else {
		msg, err = saml.DecodeRedirect(in.RawQuery, param)
	}
	return msg, fromSAML(err)
}

// Post is a SAML message to hand an SP through the browser by HTTP-POST (saml-bindings §3.5.4): a form
// posting Response, base64-encoded as the page is written, as SAMLResponse, and RelayState, to ACS.
type Post struct {
	ACS        string
	Response   []byte // the signed Response, as made (XML)
	RelayState string
}

// fromSAML turns a refusal of the protocol layer (*saml.Error) into the application's error model, its code
// and public message kept and the detail left for the log; any other error passes unchanged.
func fromSAML(err error) error {
	var se *saml.Error
	if !errors.As(err, &se) {
		return err
	}
	return &authn.Error{Code: se.Code, Message: se.Message, Err: err}
}
