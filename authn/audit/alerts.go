package audit

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mssola/useragent"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/store"
)

// AlertConfig says where alerts go: reported and paused sign-ins (login.reported, login.paused) are mailed
// to Emails and posted to WebhookURL.
type AlertConfig struct {
	Emails []string
	Mailer authn.Mailer
	// WebhookURL receives each alert's event as JSON (POST), signed in the X-Passport-Signature header:
	// "sha256=" and the hex HMAC-SHA256 of the body with WebhookSecret.
	WebhookURL    string
	WebhookSecret string
	HTTPClient    *http.Client
	// RetryFor bounds how long a mail or post that fails is tried again, with growing pauses (default 10m).
	RetryFor time.Duration
	// Quiet is how long alerts of one type for one user and network are sent only once (default 15m), so a
	// paused network that keeps trying does not flood the administrators.
	Quiet time.Duration
}

// SignatureHeader carries the webhook body's HMAC.
const SignatureHeader = "X-Passport-Signature"

// Sign is the X-Passport-Signature value of body with secret: "sha256=" and the hex HMAC-SHA256.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// alerter sends alerts in the background, each retried with backoff for a bounded time; nothing it does
// blocks a login.
type alerter struct {
	cfg     AlertConfig
	log     *slog.Logger
	clock   func() time.Time
	appName func(ctx context.Context, appID string) string
	st      *store.Store

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	sem    chan struct{} // bounds the alerts in flight

	sent *prometheus.CounterVec
}

func newAlerter(cfg AlertConfig, log *slog.Logger, clock func() time.Time, appName func(context.Context, string) string, st *store.Store) *alerter {
	if cfg.RetryFor <= 0 {
		cfg.RetryFor = 10 * time.Minute
	}
	if cfg.Quiet <= 0 {
		cfg.Quiet = 15 * time.Minute
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &alerter{cfg: cfg, log: log, clock: clock, appName: appName, st: st, ctx: ctx, cancel: cancel,
		sem: make(chan struct{}, 64),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "passport_alerts_total",
			Help: "Alerts sent, by channel (mail, webhook) and outcome (sent, failed: given up after retrying)."}, []string{"channel", "outcome"})}
}

func (a *alerter) register(r prometheus.Registerer) { r.MustRegister(a.sent) }

// close stops retrying (alerts in flight get a few seconds to finish their current attempt) and waits.
func (a *alerter) close() {
	done := make(chan struct{})
	go func() { a.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		a.cancel()
		<-done
	}
	a.cancel()
}

// send alerts of e, unless an alert of its kind for the same user and network went out within Quiet.
func (a *alerter) send(e Event) {
	if len(a.cfg.Emails) == 0 && a.cfg.WebhookURL == "" {
		return
	}
	select {
	case a.sem <- struct{}{}:
	default:
		a.log.Error("alert dropped: too many in flight", "type", e.Type, "email", e.Email)
		return
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer func() { <-a.sem }()
		net, _ := e.Details["network"].(string)
		first, err := a.st.Claim(a.ctx, "alert:"+e.Type+":"+e.Email+" "+net, a.cfg.Quiet)
		if err == nil && !first {
			return // the administrators were told of this user and network moments ago
		}
		var wg sync.WaitGroup
		if len(a.cfg.Emails) > 0 && a.cfg.Mailer != nil {
			subject, body := a.mail(e)
			wg.Go(func() {
				a.retry("mail", e, func(ctx context.Context) error {
					for _, to := range a.cfg.Emails {
						if err := a.cfg.Mailer.Send(ctx, to, subject, body); err != nil {
							return err
						}
					}
					return nil
				})
			})
		}
		if a.cfg.WebhookURL != "" {
			body, _ := json.Marshal(e)
			wg.Go(func() { a.retry("webhook", e, func(ctx context.Context) error { return a.post(ctx, body) }) })
		}
		wg.Wait()
	}()
}

// retry runs try until it succeeds or RetryFor has passed, pausing 1s, 2s, 4s... (at most a minute).
func (a *alerter) retry(channel string, e Event, try func(ctx context.Context) error) {
	deadline := a.clock().Add(a.cfg.RetryFor)
	pause := time.Second
	for {
		ctx, cancel := context.WithTimeout(a.ctx, 15*time.Second)
		err := try(ctx)
		cancel()
		if err == nil {
			a.sent.WithLabelValues(channel, "sent").Inc()
			return
		}
		if a.clock().Add(pause).After(deadline) || a.ctx.Err() != nil {
			a.sent.WithLabelValues(channel, "failed").Inc()
			a.log.Error("alert not delivered", "channel", channel, "type", e.Type, "email", e.Email, "err", err)
			return
		}
		a.log.Warn("alert not delivered; trying again", "channel", channel, "type", e.Type, "in", pause, "err", err)
		select {
		case <-time.After(pause):
		case <-a.ctx.Done():
		}
		pause = min(2*pause, time.Minute)
	}
}

// post sends the webhook.
func (a *alerter) post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.cfg.WebhookURL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(SignatureHeader, Sign(a.cfg.WebhookSecret, body))
	resp, err := a.cfg.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}

// mail is an alert in words an administrator reads on a phone: who, which application, from which address
// and browser, when, and what Passport did.
func (a *alerter) mail(e Event) (subject, body string) {
	app := "an application"
	if e.AppID != "" {
		app = a.appName(a.ctx, e.AppID)
	}
	when := e.Time.UTC().Format("15:04 UTC on 2 Jan 2006")
	from := e.ClientIP
	if b := browserOf(e.UserAgent); b != "" {
		from += " (" + b + ")"
	}
	var b strings.Builder
	switch e.Type {
	case LoginReported:
		subject = "Passport: " + e.Email + " reported a sign-in as not theirs"
		fmt.Fprintf(&b, "%s answered \"this wasn't me\" on their phone to a sign-in request to %s.\n\n", e.Email, app)
		fmt.Fprintf(&b, "The request came from %s at %s.\n\n", from, when)
		fmt.Fprintf(&b, "Passport denied it, and pauses sign-in requests to %s from that network for a while (see the audit log). Sign-ins from the employee's own network are not affected.\n", e.Email)
	case LoginPaused:
		subject = "Passport: sign-in requests to " + e.Email + " paused"
		until := ""
		if t, ok := e.Details["paused_until"].(time.Time); ok {
			until = " until " + t.UTC().Format("15:04 UTC on 2 Jan 2006")
		} else if s, ok := e.Details["paused_until"].(string); ok {
			until = " until " + s
		}
		fmt.Fprintf(&b, "Sign-in requests to %s for %s from %s are paused%s (%s), at %s.\n\n", e.Email, app, from, until, pauseWords(e.Reason), when)
		b.WriteString("Nothing was sent to the employee's phone. Requests from the employee's own network are not affected.\n")
	}
	fmt.Fprintf(&b, "\nEvent %s (%s) in Passport's audit log.\n", e.ID, e.Type)
	return subject, b.String()
}

func pauseWords(reason string) string {
	switch reason {
	case authn.PauseReported:
		return "a recent request was reported as \"this wasn't me\""
	case authn.PauseRefused:
		return "several recent requests were denied or not answered"
	case authn.PauseHourly:
		return "the hourly limit of requests was reached"
	case authn.PauseTooPending:
		return "several requests already wait on the phone"
	}
	return reason
}

// browserOf names a User-Agent's browser and OS in a few words.
func browserOf(ua string) string {
	if ua == "" {
		return ""
	}
	u := useragent.New(ua)
	name, version := u.Browser()
	if i := strings.IndexByte(version, '.'); i > 0 {
		version = version[:i]
	}
	out := strings.TrimSpace(name + " " + version)
	if os := u.OS(); os != "" {
		out += " on " + os
	}
	return out
}
