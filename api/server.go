// Package api is Passport's HTTP surface: the SAML endpoints, the login pages an employee's browser sees, the
// device API the phone app calls, the admin API and the operational endpoints. It is the only package that
// knows echo; every route is in routes.go, and one error handler turns domain errors into a status and a
// public message (a page for people, JSON for programs) while the detail goes to the log.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/winkk/passport/api/console"
	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/authn/audit"
	"github.com/winkk/passport/authn/sso"
)

// Config is what the HTTP layer needs to know.
type Config struct {
	BaseURL    string // public URL; every absolute URL we issue or check derives from it
	EntityID   string // the IdP's SAML entity ID
	AdminToken string // bearer token of the admin API
	Logger     *slog.Logger
	// Registry receives the server's metrics and is served at /metrics; nil makes a fresh one with the Go and
	// process collectors.
	Registry *prometheus.Registry
	// Clock is the time source of SAML messages and pages; nil means time.Now.
	Clock func() time.Time
	// AssertionLifetime and ClockSkew shape every assertion's validity window (saml defaults when zero).
	AssertionLifetime time.Duration
	ClockSkew         time.Duration
	// StaticKey says the signing key came from files: no rollover through the store.
	StaticKey bool
	// Audit, when set, is the audit log: requests say who acts and from where, refused admin credentials are
	// recorded, and the admin API reads it.
	Audit *audit.Log
	// TrustedProxies are the networks whose X-Forwarded-For is believed for the client's address (rate
	// limits, what the phone shows). Empty: the connection's own address, headers ignored.
	TrustedProxies []*net.IPNet
	// MetricsListener says /metrics is served by OpsHandler on a listener of its own, and not by the server
	// at all. Without it the server serves /metrics to loopback clients only (the client address as
	// TrustedProxies determines it); anyone else gets 404.
	MetricsListener bool
	// Pprof adds the runtime profiles (/debug/pprof/) to OpsHandler. They are never served by the server
	// itself.
	Pprof bool
	// Limits bound what clients may hold of the server; zero fields take the defaults.
	Limits Limits
}

// Server is the HTTP handler of Passport.
type Server struct {
	cfg Config
	svc *authn.Service
	idp *sso.IdP // the SAML flows
	// console is the admin console's face (pages under /admin).
	console *console.Console
	log     *slog.Logger
	echo    *echo.Echo
	base    *url.URL

	metrics *metrics

	waiting atomic.Int64 // device long-polls in progress
	streams *streams     // long-lived requests open, by login, client and device
	hub     *hub         // the login pages' event streams

	closing   chan struct{}
	closeOnce sync.Once
}

// New returns the Passport HTTP server over svc, signing with the current key of ring. Unless the key is
// static, the server follows key rollovers made by any replica.
func New(ctx context.Context, cfg Config, svc *authn.Service, ring *authn.KeyRing) (*Server, error) {
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	base, err := url.Parse(cfg.BaseURL)
	if err != nil || base.Host == "" || (base.Scheme != "http" && base.Scheme != "https") {
		return nil, fmt.Errorf("api: base URL %q is not an absolute http(s) URL", cfg.BaseURL)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
		cfg.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	cfg.Limits = cfg.Limits.withDefaults()
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.AdminToken == "" {
		return nil, errors.New("api: admin token is empty")
	}
	s := &Server{
		cfg:     cfg,
		svc:     svc,
		log:     cfg.Logger,
		base:    base,
		closing: make(chan struct{}),
		streams: newStreams(cfg.Limits.MaxStreams),
	}
	// The IdP starts following key rollovers; nothing after it can fail, so a New that returns an error leaves
	// nothing running.
	s.idp, err = sso.New(ctx, sso.Config{BaseURL: cfg.BaseURL, EntityID: cfg.EntityID, Clock: cfg.Clock,
		AssertionLifetime: cfg.AssertionLifetime, ClockSkew: cfg.ClockSkew, StaticKey: cfg.StaticKey, Logger: cfg.Logger}, svc, ring)
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	s.hub = newHub(s)
	s.console = console.New(console.Config{BaseURL: cfg.BaseURL, Clock: cfg.Clock, Logger: cfg.Logger, Audit: cfg.Audit, Client: client}, svc, s.idp)
	s.metrics = newMetrics(cfg.Registry, svc, s.streams)
	s.echo = echo.New()
	s.echo.HideBanner = true
	s.echo.HidePort = true
	s.echo.HTTPErrorHandler = s.handleError
	s.echo.IPExtractor = echo.ExtractIPDirect()
	if len(cfg.TrustedProxies) > 0 {
		opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
		for _, n := range cfg.TrustedProxies {
			opts = append(opts, echo.TrustIPRange(n))
		}
		s.echo.IPExtractor = echo.ExtractIPFromXFFHeader(opts...)
	}
	s.echo.Logger.SetOutput(discard{})
	s.routes()
	return s, nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// ServeHTTP serves a request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.echo.ServeHTTP(w, r) }

// Closing tells long-lived streams (login page events, device long-polls) to end: browsers are told to reload.
// Call it before http.Server.Shutdown so in-flight requests can finish. It also stops following key rollovers.
func (s *Server) Closing() {
	s.closeOnce.Do(func() {
		close(s.closing)
		s.idp.Close()
	})
}

// url returns the absolute public URL of path.
func (s *Server) url(path string) string { return s.cfg.BaseURL + path }

func (s *Server) secure() bool { return s.base.Scheme == "https" }

func (s *Server) ctx(c echo.Context) context.Context { return c.Request().Context() }

// Route is one registered route.
type Route struct{ Method, Path string }

// Routes lists every route the server registers, with echo's ":name" parameters.
func (s *Server) Routes() []Route {
	var out []Route
	for _, r := range s.echo.Routes() {
		out = append(out, Route{Method: r.Method, Path: r.Path})
	}
	return out
}

// longLived are the routes that outlive one request's deadline (event streams, long-polls, the audit export):
// withDeadline leaves them be, and they bound each look at the store with storeCtx instead.
var longLived = map[string]bool{
	"/login/:txnID/events":           true,
	"/api/v1/device/challenges/wait": true,
	"/api/v1/admin/events/export":    true,
}

// withDeadline gives every request but the long-lived ones Limits.RequestTimeout to do its work: a store that
// stalls or fails over makes the request end with 503 temporarily_unavailable by then, not hang.
func (s *Server) withDeadline(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if longLived[c.Path()] {
			return next(c)
		}
		r := c.Request()
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Limits.RequestTimeout)
		defer cancel()
		c.SetRequest(r.WithContext(ctx))
		return next(c)
	}
}

// storeCtx bounds one look at the store by a long-lived request (see longLived).
func (s *Server) storeCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.Limits.RequestTimeout)
}

// withClient says, in every request's context, from where it comes (for the audit log's events).
func (s *Server) withClient(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		c.SetRequest(r.WithContext(audit.WithClient(r.Context(), c.RealIP(), r.UserAgent())))
		return next(c)
	}
}

// act says who acts in the request (admin:..., device:...), for the audit log's events.
func (s *Server) act(c echo.Context, actor string) {
	r := c.Request()
	c.SetRequest(r.WithContext(audit.WithActor(r.Context(), actor)))
}

// record adds e to the audit log, when there is one.
func (s *Server) record(c echo.Context, e audit.Event) {
	if s.cfg.Audit != nil {
		s.cfg.Audit.Record(c.Request().Context(), e)
	}
}
