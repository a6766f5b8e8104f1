// Package apitest starts a whole Passport server in-process for tests: real HTTP on loopback, the real store
// (Redis when one is configured or answers, see storetest), the real Firebase SDK talking to a fake FCM on
// loopback, and a real SMTP listener receiving the mails.
package apitest

import (
	"bytes"
	"context"
	"log/slog"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/winkk/passport/api"
	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/authn/audit"
	"github.com/winkk/passport/push"
	"github.com/winkk/passport/push/fcmtest"
	"github.com/winkk/passport/push/smtptest"
	"github.com/winkk/passport/store"
	"github.com/winkk/passport/store/storetest"
)

// AdminToken is the admin bearer token of every test server.
const AdminToken = "test-admin-token"

// EntityID is the IdP entity ID of every test server.
const EntityID = "Winkk Passport IdP"

// Clock runs with real time plus an offset a test can advance.
type Clock struct{ offset atomic.Int64 }

// Now is the clock's time.
func (c *Clock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// Logs collects the server's JSON log lines; safe for concurrent use.
type Logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// String returns everything logged so far.
func (l *Logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Server is a running Passport.
type Server struct {
	URL   string
	Svc   *authn.Service
	API   *api.Server
	FCM   *fcmtest.Server
	Mails *smtptest.Server
	Clock *Clock
	Key   *authn.SigningKey
	Logs  *Logs
	// Audit is the server's audit log; Registry the metrics registry served at /metrics.
	Audit    *audit.Log
	Registry *prometheus.Registry
	// Direct is the server's own loopback URL (URL is the public one, different behind a proxy).
	Direct string

	stop func()
}

// Stop shuts the server down before the test ends, as a replica that is restarted or dies: long-lived requests
// are told to reload, the listener and every connection are closed. The store is left as it is. Calling it
// again, or the test's cleanup after it, does nothing more.
func (s *Server) Stop() { s.stop() }

// Option adjusts the authn configuration.
type Option func(*authn.Config)

// APIOption adjusts the HTTP layer's configuration (its limits, trusted proxies...).
type APIOption func(*api.Config)

// AuditOption adjusts the audit log's configuration (retention, alerts...).
type AuditOption func(*audit.Config)

// Options adjust every layer of a test server; nil fields leave a layer as it is.
type Options struct {
	Authn Option
	API   APIOption
	Audit AuditOption
	// BaseURL is the public URL when the server sits behind a proxy of the test's (replicas behind one load
	// balancer share it); empty: the server's own loopback URL.
	BaseURL string
}

// StartWith runs a server on st (nil: a store chosen as storetest.Open does) until tb ends, configured by o.
func StartWith(tb testing.TB, st *store.Store, o Options) *Server {
	tb.Helper()
	if st == nil {
		st = storetest.Open(tb)
	}
	var opts []Option
	if o.Authn != nil {
		opts = append(opts, o.Authn)
	}
	return start(tb, st, o, opts...)
}

// Start runs a server until tb ends, on a store chosen as storetest.Open does.
func Start(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	return StartOn(tb, storetest.Open(tb), opts...)
}

// StartAPI is Start with the HTTP layer's configuration adjusted by apiOpt.
func StartAPI(tb testing.TB, apiOpt APIOption, opts ...Option) *Server {
	tb.Helper()
	return start(tb, storetest.Open(tb), Options{API: apiOpt}, opts...)
}

// StartOn runs a server on st until tb ends.
func StartOn(tb testing.TB, st *store.Store, opts ...Option) *Server {
	tb.Helper()
	return start(tb, st, Options{}, opts...)
}

// start runs a server on st until tb ends. Its http.Server is configured by api.Server.ConfigureHTTP, with
// the same limits and timeouts as passport-idp's.
func start(tb testing.TB, st *store.Store, o Options, opts ...Option) *Server {
	tb.Helper()
	ctx := context.Background()
	fake := fcmtest.New(tb)
	pusher, err := push.NewFCM(ctx, push.FCMConfig{CredentialsFile: fake.CredentialsFile(tb), Endpoint: fake.Endpoint()})
	if err != nil {
		tb.Fatalf("apitest: FCM: %v", err)
	}
	mails := smtptest.New(tb)
	mailer, err := push.NewSMTPMailer(mails.URL())
	if err != nil {
		tb.Fatalf("apitest: mailer: %v", err)
	}
	ts := httptest.NewUnstartedServer(nil)
	direct := "http://" + ts.Listener.Addr().String()
	base := direct
	if o.BaseURL != "" {
		base = o.BaseURL
	}
	clk := &Clock{}
	logs := &Logs{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var svc *authn.Service
	auditCfg := audit.Config{Clock: clk.Now, Logger: log, Registry: reg, Alerts: audit.AlertConfig{Mailer: mailer},
		AppName: func(ctx context.Context, id string) string {
			if a, err := svc.Apps.Get(ctx, id); err == nil {
				return a.Name
			}
			return id
		}}
	if o.Audit != nil {
		o.Audit(&auditCfg)
	}
	auditLog := audit.New(st, auditCfg)
	cfg := authn.Config{BaseURL: base, Clock: clk.Now, Logger: log, OnChange: auditLog.OnChange}
	for _, o := range opts {
		o(&cfg)
	}
	svc = authn.New(st, pusher, mailer, cfg)
	ring, err := svc.Keys.Ring(ctx, EntityID)
	if err != nil {
		tb.Fatalf("apitest: signing key: %v", err)
	}
	apiCfg := api.Config{BaseURL: base, EntityID: EntityID, AdminToken: AdminToken, Logger: log, Clock: clk.Now,
		Registry: reg, Audit: auditLog}
	if o.API != nil {
		o.API(&apiCfg)
	}
	srv, err := api.New(ctx, apiCfg, svc, ring)
	if err != nil {
		tb.Fatalf("apitest: api.New: %v", err)
	}
	srv.ConfigureHTTP(ts.Config)
	ts.Listener = srv.Listener(ts.Listener) // as passport-idp serves it
	ts.Start()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			srv.Closing()
			ts.Close()
			svc.Close()
			auditLog.Close()
		})
	}
	tb.Cleanup(stop)
	return &Server{URL: base, Svc: svc, API: srv, FCM: fake, Mails: mails, Clock: clk, Key: ring.Current, Logs: logs,
		Audit: auditLog, Registry: reg, Direct: direct, stop: stop}
}
