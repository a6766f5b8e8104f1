package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	qrcode "github.com/skip2/go-qrcode"

	"github.com/winkk/passport/api"
	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/authn/audit"
	"github.com/winkk/passport/push"
	"github.com/winkk/passport/saml/rsasigner"
	"github.com/winkk/passport/store"
)

// run starts the server and blocks until ctx ends, then shuts down gracefully: streams tell browsers to
// reload, in-flight requests finish, background pushes stop.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		if errors.Is(err, errHelp) {
			return nil
		}
		return err
	}
	log := newLogger(stdout)
	store.SetLogger(log) // the Redis client's own complaints become log lines like ours

	st, err := store.Open(ctx, store.Options{URL: cfg.RedisURL, Prefix: cfg.RedisPrefix})
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer st.Close()
	if st.Embedded() {
		log.Warn("using the embedded in-memory store: all data is lost when the process exits; set PASSPORT_REDIS_URL for Redis")
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	pushMetrics := push.NewMetrics(reg)
	var pusher authn.Pusher
	pushMode := "logged (no PASSPORT_FCM_CREDENTIALS): devices pull their challenges"
	if cfg.FCMCredentials != "" {
		fcm, err := push.NewFCM(ctx, push.FCMConfig{CredentialsFile: cfg.FCMCredentials, Endpoint: cfg.FCMEndpoint}, push.WithMetrics(pushMetrics), push.WithLogger(log))
		if err != nil {
			return fmt.Errorf("set up FCM: %w", err)
		}
		pusher = fcm
		pushMode = "FCM"
		if cfg.FCMEndpoint != "" {
			pushMode += " at " + cfg.FCMEndpoint
		}
	} else {
		pusher = push.LogSender{Logger: log, Metrics: pushMetrics}
	}

	var mailer authn.Mailer = push.LogMailer{Logger: log}
	mailMode := "logged (no PASSPORT_SMTP_URL)"
	if cfg.SMTPURL != "" {
		m, err := push.NewSMTPMailer(cfg.SMTPURL)
		if err != nil {
			return fmt.Errorf("set up mail: %w", err)
		}
		mailer, mailMode = m, m.Describe()
	}

	// The audit log comes first: every change the services make is recorded through it. It names the
	// applications of its alerts through the services, made just below.
	var svc *authn.Service
	auditLog := audit.New(st, audit.Config{
		Retention: cfg.AuditRetention,
		Logger:    log,
		Registry:  reg,
		Alerts: audit.AlertConfig{Emails: cfg.alertEmails(), Mailer: mailer,
			WebhookURL: cfg.AlertWebhookURL, WebhookSecret: cfg.AlertSecret},
		AppName: func(ctx context.Context, id string) string {
			if a, err := svc.Apps.Get(ctx, id); err == nil {
				return a.Name
			}
			return id
		},
	})
	defer auditLog.Close()
	svc = authn.New(st, pusher, mailer, authn.Config{
		LoginTTL:            cfg.LoginTTL,
		AllowedDomains:      cfg.allowedDomains(),
		BaseURL:             cfg.BaseURL,
		Logger:              log,
		SessionTTL:          cfg.SessionTTL,
		KeyEncryptionKey:    cfg.keyEncryptionKey(),
		DisableOfflineCodes: cfg.OfflineCodes == "off",
		OnChange:            auditLog.OnChange,
	})
	defer svc.Close()

	ring, keySource, err := keyRing(ctx, cfg, svc)
	if err != nil {
		return err
	}

	adminToken, tokenGenerated := cfg.AdminToken, false
	if adminToken == "" {
		b := make([]byte, 24)
		if _, err := rand.Read(b); err != nil {
			return fmt.Errorf("generate admin token: %w", err)
		}
		adminToken, tokenGenerated = base64.RawURLEncoding.EncodeToString(b), true
	}

	proxies, _ := cfg.trustedProxies()
	srv, err := api.New(ctx, api.Config{
		TrustedProxies: proxies,
		BaseURL:        cfg.BaseURL, EntityID: cfg.EntityID, AdminToken: adminToken, Logger: log, Registry: reg,
		AssertionLifetime: cfg.AssertionTTL, ClockSkew: cfg.ClockSkew, StaticKey: cfg.SigningKeyFile != "",
		MetricsListener: cfg.MetricsListen != "", Pprof: cfg.Pprof == "on", Audit: auditLog,
	}, svc, ring)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// Connections handed back by the login page's event streams are served again (api.Server.Listener).
	ln = srv.Listener(ln)
	httpSrv := &http.Server{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	srv.ConfigureHTTP(httpSrv)
	servers := []*http.Server{httpSrv}
	listeners := []net.Listener{ln}
	metricsMode := "on the main listener, to loopback clients only"
	if cfg.MetricsListen != "" {
		opsLn, err := net.Listen("tcp", cfg.MetricsListen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listen for metrics: %w", err)
		}
		opsSrv := &http.Server{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
		srv.ConfigureOpsHTTP(opsSrv)
		servers, listeners = append(servers, opsSrv), append(listeners, opsLn)
		metricsMode = "on the metrics listener only"
		if cfg.Pprof == "on" {
			metricsMode += ", with /debug/pprof/"
		}
	}

	attrs := []any{
		"listen", ln.Addr().String(),
		"base_url", cfg.BaseURL,
		"entity_id", cfg.EntityID,
		"store", st.Describe(),
		"push", pushMode,
		"mail", mailMode,
		"signing_key", keySource,
		"signer", rsasigner.Backend(),
		"login_ttl", cfg.LoginTTL.String(),
		"metrics", metricsMode,
	}
	if len(listeners) > 1 {
		attrs = append(attrs, "metrics_listen", listeners[1].Addr().String())
	}
	if tokenGenerated {
		attrs = append(attrs, "admin_token", adminToken, "admin_token_note", "generated for this run; set PASSPORT_ADMIN_TOKEN to keep one")
	}
	log.Info("passport-idp started", attrs...)
	if err := bootstrapAdmins(ctx, cfg, svc, log, stdout); err != nil {
		return err
	}
	if w := authn.CertificateWarning(ring.Current.Certificate, time.Now()); w != "" {
		log.Warn(w, "not_after", ring.Current.Certificate.NotAfter)
	}

	errc := make(chan error, len(servers))
	for i, hs := range servers {
		go func() { errc <- hs.Serve(listeners[i]) }()
	}
	select {
	case err := <-errc:
		for _, hs := range servers {
			hs.Close()
		}
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing requests in flight")
	srv.Closing()
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
	defer cancel()
	// The main listener first: the metrics stay readable while its requests finish.
	var shutdownErr error
	for _, hs := range servers {
		if err := hs.Shutdown(shutdownCtx); err != nil {
			hs.Close()
			shutdownErr = cmp.Or(shutdownErr, fmt.Errorf("shutdown: %w", err))
		}
	}
	if shutdownErr != nil {
		return shutdownErr
	}
	log.Info("stopped")
	return nil
}

func keyRing(ctx context.Context, cfg config, svc *authn.Service) (*authn.KeyRing, string, error) {
	if cfg.SigningKeyFile != "" {
		keyPEM, err := os.ReadFile(cfg.SigningKeyFile)
		if err != nil {
			return nil, "", fmt.Errorf("read signing key: %w", err)
		}
		certPEM, err := os.ReadFile(cfg.SigningCertFile)
		if err != nil {
			return nil, "", fmt.Errorf("read signing certificate: %w", err)
		}
		k, err := authn.ParseSigningKey(certPEM, keyPEM)
		if err != nil {
			return nil, "", err
		}
		return authn.StaticKeyRing(k), "files " + cfg.SigningKeyFile, nil
	}
	r, err := svc.Keys.Ring(ctx, cfg.EntityID)
	if err != nil {
		return nil, "", fmt.Errorf("signing key: %w", err)
	}
	source := "kept in the store"
	if len(cfg.keyEncryptionKey()) > 0 {
		source += ", sealed with PASSPORT_KEY_ENCRYPTION_KEY"
	}
	return r, source, nil
}

// newLogger logs JSON, or text when stdout is a terminal.
func newLogger(w io.Writer) *slog.Logger {
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			return slog.New(slog.NewTextHandler(w, nil))
		}
	}
	return slog.New(slog.NewJSONHandler(w, nil))
}

// bootstrapAdmins makes the users PASSPORT_ADMIN_EMAILS names administrators, creating them when missing. When
// the first of them has no phone yet, it logs an invitation for it and draws the invitation's QR code on
// stdout, so that the first administrator can enroll and sign in to the console.
func bootstrapAdmins(ctx context.Context, cfg config, svc *authn.Service, log *slog.Logger, stdout io.Writer) error {
	emails, err := cfg.adminEmails()
	if err != nil {
		return err
	}
	for _, email := range emails {
		_, created, err := svc.Console.EnsureAdmin(ctx, email)
		if err != nil {
			return fmt.Errorf("make %s an administrator: %w", email, err)
		}
		log.Info("administrator of the admin console", "email", email, "created", created)
	}
	if len(emails) == 0 {
		return nil
	}
	first := emails[0]
	devs, err := svc.Devices.List(ctx, first)
	if err != nil {
		return fmt.Errorf("list the first administrator's phones: %w", err)
	}
	if len(devs) > 0 {
		return nil
	}
	inv, token, err := svc.Devices.Invite(ctx, first)
	if err != nil {
		return fmt.Errorf("invite the first administrator: %w", err)
	}
	link := svc.Devices.EnrollURL(token)
	log.Warn("the first administrator has no phone: enroll one with this invitation, then sign in at "+cfg.BaseURL+"/admin",
		"email", first, "enroll_url", link, "expires_at", inv.ExpiresAt)
	qr, err := qrcode.New(link, qrcode.Low)
	if err != nil {
		return fmt.Errorf("draw the invitation's QR code: %w", err)
	}
	fmt.Fprintf(stdout, "\nScan with the Passport app to enroll %s (invitation valid until %s):\n%s\n%s\n\n",
		first, inv.ExpiresAt.UTC().Format(time.RFC3339), qr.ToSmallString(false), link)
	return nil
}
