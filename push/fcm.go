package push

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/auth/credentials"
	"cloud.google.com/go/auth/httptransport"
	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/messaging"
	"google.golang.org/api/option"
)

// FCMConfig configures the FCM sender. Zero durations and counts take the defaults shown.
type FCMConfig struct {
	// CredentialsFile is the service-account JSON (PASSPORT_FCM_CREDENTIALS). Required; any other
	// credential type is refused.
	CredentialsFile string
	// Endpoint is the FCM HTTP v1 base URL including /v1, e.g. http://127.0.0.1:9099/v1
	// (PASSPORT_FCM_ENDPOINT); "" means FCM's own. The SDK posts to
	// Endpoint + "/projects/{ProjectID}/messages:send".
	Endpoint string
	// ProjectID is the Firebase project; "" means the project_id of the credentials file.
	ProjectID string
	// SendTimeout is the deadline of one attempt (token fetch included); default 10s.
	SendTimeout time.Duration
	// MaxAttempts bounds the attempts per message, first one included; default 5.
	MaxAttempts int
	// Backoff is the first wait after UNAVAILABLE, INTERNAL, another 5xx, a timeout or a network
	// error; it doubles per retry up to MaxBackoff and is jittered. Default 500ms.
	Backoff time.Duration
	// MaxBackoff caps Backoff and QuotaBackoff growth; default 30s.
	MaxBackoff time.Duration
	// QuotaBackoff is the first wait after QUOTA_EXCEEDED when FCM sent no Retry-After; default
	// 1m, the minimum FCM asks for (firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode).
	// Doubles per retry like Backoff, capped by max(QuotaBackoff, MaxBackoff).
	QuotaBackoff time.Duration
	// Now is the clock used for TTL, backoff and Retry-After dates; default time.Now.
	Now func() time.Time
	// Sleep waits d or until ctx is done (returning ctx's error); default a timer. Tests make it
	// advance a fake clock instead.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Option adjusts an FCM sender.
type Option func(*FCM)

// WithMetrics records outcomes and attempt latency in m (nil: none).
func WithMetrics(m *Metrics) Option { return func(f *FCM) { f.metrics = m } }

// WithLogger logs retries and give-ups to l at Warn level (default: discarded).
func WithLogger(l *slog.Logger) Option { return func(f *FCM) { f.logger = l } }

// FCM sends pushes through the Firebase Admin SDK's messaging.Client. It implements Sender and is
// safe for concurrent use. Each Send makes up to MaxAttempts attempts, each bounded by
// SendTimeout and by the message's expiry, and classifies FCM's answer
// (firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode):
//   - UNREGISTERED, SENDER_ID_MISMATCH, INVALID_ARGUMENT about the token: ErrTokenDead, no retry;
//   - QUOTA_EXCEEDED / RESOURCE_EXHAUSTED (429): retried after Retry-After when present, otherwise
//     after QuotaBackoff, doubling; ErrQuota when retries run out;
//   - UNAVAILABLE, INTERNAL, any other 5xx, attempt timeouts, network errors: retried with
//     exponential backoff and jitter, Retry-After honoured; ErrUnavailable when retries run out;
//   - anything else (another INVALID_ARGUMENT, THIRD_PARTY_AUTH_ERROR, PERMISSION_DENIED,
//     credential errors): returned wrapped at once.
//
// No wait ever reaches past the message's TTL or ctx's deadline: when the next attempt could not
// start before either, Send gives up with the last failure.
type FCM struct {
	client  *messaging.Client
	cfg     FCMConfig
	metrics *Metrics
	logger  *slog.Logger
	jitter  func(time.Duration) time.Duration // replaced in tests for exact backoffs
}

// fcmScopes are the OAuth scopes FCM HTTP v1 accepts.
var fcmScopes = []string{
	"https://www.googleapis.com/auth/firebase.messaging",
	"https://www.googleapis.com/auth/cloud-platform",
}

// NewFCM reads the service-account credentials and builds the SDK client. It makes no network
// call: the access token is fetched (from the file's token_uri) on the first send.
func NewFCM(ctx context.Context, cfg FCMConfig, opts ...Option) (*FCM, error) {
	cfg = cfg.withDefaults()
	if cfg.CredentialsFile == "" {
		return nil, errors.New("push: fcm: no credentials file")
	}
	if cfg.Endpoint != "" {
		if u, err := url.Parse(cfg.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("push: fcm: endpoint %q is not an http(s) URL", cfg.Endpoint)
		}
	}
	creds, err := credentials.NewCredentialsFromFile(credentials.ServiceAccount, cfg.CredentialsFile,
		&credentials.DetectOptions{Scopes: fcmScopes})
	if err != nil {
		return nil, fmt.Errorf("push: fcm: read credentials: %w", err)
	}
	if cfg.ProjectID == "" {
		if cfg.ProjectID, err = creds.ProjectID(ctx); err != nil {
			return nil, fmt.Errorf("push: fcm: project id: %w", err)
		}
		if cfg.ProjectID == "" {
			return nil, errors.New("push: fcm: no project id in config or credentials file")
		}
	}

	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConnsPerHost = 2 * fanOutLimit // keep fan-out connections alive on HTTP/1 endpoints
	authed, err := httptransport.NewClient(&httptransport.Options{
		Credentials:      creds,
		BaseRoundTripper: base,
		DisableTelemetry: true,
	})
	if err != nil {
		return nil, fmt.Errorf("push: fcm: http client: %w", err)
	}
	hc := &http.Client{Transport: attemptGuard{base: authed.Transport}}

	appOpts := []option.ClientOption{option.WithHTTPClient(hc)}
	if cfg.Endpoint != "" {
		appOpts = append(appOpts, option.WithEndpoint(strings.TrimSuffix(cfg.Endpoint, "/")))
	}
	app, err := firebase.NewApp(ctx, &firebase.Config{ProjectID: cfg.ProjectID}, appOpts...)
	if err != nil {
		return nil, fmt.Errorf("push: fcm: firebase app: %w", err)
	}
	client, err := app.Messaging(ctx)
	if err != nil {
		return nil, fmt.Errorf("push: fcm: messaging client: %w", err)
	}
	f := &FCM{client: client, cfg: cfg, logger: slog.New(slog.DiscardHandler), jitter: upJitter}
	for _, o := range opts {
		o(f)
	}
	if f.logger == nil {
		f.logger = slog.New(slog.DiscardHandler)
	}
	return f, nil
}

func (c FCMConfig) withDefaults() FCMConfig {
	if c.SendTimeout <= 0 {
		c.SendTimeout = 10 * time.Second
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 5
	}
	if c.Backoff <= 0 {
		c.Backoff = 500 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 30 * time.Second
	}
	if c.QuotaBackoff <= 0 {
		c.QuotaBackoff = time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Sleep == nil {
		c.Sleep = sleepCtx
	}
	return c
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Send delivers m to FCM, retrying as the type's doc describes. The error is nil or final.
func (f *FCM) Send(ctx context.Context, m Message) error {
	err := f.send(ctx, m)
	f.metrics.outcome(outcomeOf(err))
	return err
}

func outcomeOf(err error) string {
	switch {
	case err == nil:
		return OutcomeSent
	case errors.Is(err, ErrTokenDead):
		return OutcomeTokenDead
	case errors.Is(err, ErrQuota):
		return OutcomeQuota
	case errors.Is(err, ErrUnavailable):
		return OutcomeUnavailable
	default:
		return OutcomeError
	}
}

func (f *FCM) send(ctx context.Context, m Message) error {
	if err := m.validate(); err != nil {
		return err
	}
	expiry := f.cfg.Now().Add(m.TTL)
	for n := 1; ; n++ {
		if expiry.Sub(f.cfg.Now()) < time.Second { // FCM's TTL has one-second resolution
			return fmt.Errorf("%w (ttl %v)", ErrExpired, m.TTL)
		}
		res := f.attempt(ctx, m, expiry)
		switch res.class {
		case classOK:
			return nil
		case classTokenDead:
			return fmt.Errorf("%w: %w", ErrTokenDead, res.err)
		case classCanceled, classFatal:
			return fmt.Errorf("push: fcm send: %w", res.err)
		}

		// FCM's Retry-After is a floor, jittered upwards like the backoff, so that a burst it throttled
		// does not come back all at once; the jitter never costs a push its last chance before expiry.
		wait := f.jitter(res.retryAfter)
		if res.retryAfter <= 0 {
			wait = f.backoff(res.class, n)
		} else if left := expiry.Sub(f.cfg.Now()); wait >= left && res.retryAfter < left {
			wait = res.retryAfter // the floor still fits: no jitter rather than no retry
		}
		giveUp := ""
		switch {
		case n >= f.cfg.MaxAttempts:
			giveUp = "attempts exhausted"
		case !f.cfg.Now().Add(wait).Before(expiry):
			giveUp = "next attempt would pass the challenge expiry"
		case ctxEndsWithin(ctx, wait):
			giveUp = "next attempt would pass the context deadline"
		}
		if giveUp != "" {
			f.logger.LogAttrs(ctx, slog.LevelWarn, "push: fcm giving up",
				slog.String("challenge_id", m.ChallengeID), slog.Int("attempts", n),
				slog.String("reason", giveUp), slog.String("error", res.err.Error()))
			sentinel := ErrUnavailable
			if res.class == classQuota {
				sentinel = ErrQuota
			}
			return fmt.Errorf("%w after %d attempts (%s): %w", sentinel, n, giveUp, res.err)
		}
		f.logger.LogAttrs(ctx, slog.LevelWarn, "push: fcm retrying",
			slog.String("challenge_id", m.ChallengeID), slog.Int("attempt", n),
			slog.Duration("wait", wait), slog.String("error", res.err.Error()))
		if err := f.cfg.Sleep(ctx, wait); err != nil {
			return fmt.Errorf("push: fcm send: waiting to retry: %w", err)
		}
	}
}

func ctxEndsWithin(ctx context.Context, d time.Duration) bool {
	dl, ok := ctx.Deadline()
	return ok && time.Until(dl) <= d
}

// attempt makes one SDK call bounded by SendTimeout and by the expiry.
func (f *FCM) attempt(ctx context.Context, m Message, expiry time.Time) attemptResult {
	now := f.cfg.Now()
	actx, cancel := context.WithTimeout(ctx, min(f.cfg.SendTimeout, expiry.Sub(now)))
	defer cancel()
	st := &attemptState{cancel: cancel}
	actx = context.WithValue(actx, attemptKey{}, st)

	start := time.Now()
	_, err := f.client.Send(actx, buildMessage(m, now, expiry))
	f.metrics.observe(time.Since(start))
	return f.classify(ctx, err, st)
}

// Data keys and values the phone app reads; nothing else travels as data.
const (
	dataChallengeID = "challenge_id"
	dataType        = "type"
	typeLogin       = "login_challenge"
)

// buildMessage maps m onto FCM's message: the challenge ID as data, a generic alert, high
// priority, and a lifetime that ends at the challenge's expiry on both Android (ttl, whole
// seconds left) and APNs (apns-expiration, a UNIX time).
func buildMessage(m Message, now, expiry time.Time) *messaging.Message {
	ttl := expiry.Sub(now).Truncate(time.Second)
	headers := map[string]string{
		"apns-priority":   "10", // deliver immediately: a user is waiting at a login page
		"apns-push-type":  "alert",
		"apns-expiration": strconv.FormatInt(expiry.Unix(), 10),
	}
	if len(m.ChallengeID) <= 64 { // APNs limit; a re-delivery replaces rather than stacks
		headers["apns-collapse-id"] = m.ChallengeID
	}
	return &messaging.Message{
		Token:        m.Token,
		Data:         map[string]string{dataChallengeID: m.ChallengeID, dataType: typeLogin},
		Notification: &messaging.Notification{Title: m.Title, Body: m.Body},
		Android: &messaging.AndroidConfig{
			Priority:     "high",
			TTL:          &ttl,
			Notification: &messaging.AndroidNotification{Tag: m.ChallengeID},
		},
		APNS: &messaging.APNSConfig{
			Headers: headers,
			Payload: &messaging.APNSPayload{Aps: &messaging.Aps{
				Alert: &messaging.ApsAlert{Title: m.Title, Body: m.Body},
				Sound: "default",
			}},
		},
	}
}
