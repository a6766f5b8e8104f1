package main

import (
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/mail"
	"net/url"
	"strings"
	"time"

	"github.com/winkk/passport/authn"
)

// config is the server's configuration: each field comes from a flag, else its environment variable, else
// the default.
type config struct {
	Listen          string
	BaseURL         string
	EntityID        string
	RedisURL        string
	RedisPrefix     string
	AdminToken      string
	FCMCredentials  string
	FCMEndpoint     string
	SMTPURL         string
	AllowedDomains  string
	LoginTTL        time.Duration
	SessionTTL      time.Duration
	AssertionTTL    time.Duration
	ClockSkew       time.Duration
	SigningKeyFile  string
	SigningCertFile string
	KeyEncryption   string
	TrustedProxies  string
	MetricsListen   string
	Pprof           string
	OfflineCodes    string
	AuditRetention  time.Duration
	AlertEmails     string
	AdminEmails     string
	AlertWebhookURL string
	AlertSecret     string
}

type setting struct {
	env, def, help string
	str            *string
	dur            *time.Duration
	// min and max bound a duration (zero: no bound but that it is positive). A value outside is refused at
	// start-up rather than run with: a 10-second login cannot be approved, a year-long session outlives
	// every revocation an administrator forgets.
	min, max time.Duration
}

func (c *config) settings() []setting {
	return []setting{
		{env: "PASSPORT_LISTEN", def: ":8080", help: "address to listen on", str: &c.Listen},
		{env: "PASSPORT_BASE_URL", def: "http://localhost:8080", help: "public URL; every absolute URL the IdP issues or checks derives from it", str: &c.BaseURL},
		{env: "PASSPORT_ENTITY_ID", def: "Winkk Passport IdP", help: "the IdP's SAML entity ID", str: &c.EntityID},
		{env: "PASSPORT_REDIS_URL", def: "", help: "redis://, rediss://, unix://, redis-sentinel://, redis-cluster:// URL; empty: embedded in-memory store (data lost at exit)", str: &c.RedisURL},
		{env: "PASSPORT_REDIS_PREFIX", def: "", help: "prefix of every key and channel in Redis, to share one server between deployments", str: &c.RedisPrefix},
		{env: "PASSPORT_ADMIN_TOKEN", def: "", help: "bearer token of the admin API; empty: a random one is printed at start-up", str: &c.AdminToken},
		{env: "PASSPORT_FCM_CREDENTIALS", def: "", help: "Firebase service-account JSON file; empty: pushes are logged and devices pull", str: &c.FCMCredentials},
		{env: "PASSPORT_FCM_ENDPOINT", def: "", help: "another FCM v1 base URL, /v1 included", str: &c.FCMEndpoint},
		{env: "PASSPORT_SMTP_URL", def: "", help: "smtp://user:pass@host:port; empty: mails are logged", str: &c.SMTPURL},
		{env: "PASSPORT_ALLOWED_DOMAINS", def: "", help: "comma-separated email domains that may enroll; empty: any", str: &c.AllowedDomains},
		{env: "PASSPORT_LOGIN_TTL", def: "5m", help: "how long a parked login waits for the phone, 30s to 30m", dur: &c.LoginTTL, min: 30 * time.Second, max: 30 * time.Minute},
		{env: "PASSPORT_SESSION_TTL", def: "8h", help: "how long one phone approval signs the browser in to further apps, 1m to 720h (30 days)", dur: &c.SessionTTL, min: time.Minute, max: 30 * 24 * time.Hour},
		{env: "PASSPORT_ASSERTION_TTL", def: "5m", help: "validity of an assertion, counted from the moment the Response is issued, 1m to 1h", dur: &c.AssertionTTL, min: time.Minute, max: time.Hour},
		{env: "PASSPORT_CLOCK_SKEW", def: "90s", help: "clock difference allowed with SPs (assertion NotBefore, request IssueInstant), 1s to 10m", dur: &c.ClockSkew, min: time.Second, max: 10 * time.Minute},
		{env: "PASSPORT_SIGNING_KEY_FILE", def: "", help: "PEM RSA signing key; empty: a key is generated at first start and kept in the store", str: &c.SigningKeyFile},
		{env: "PASSPORT_SIGNING_CERT_FILE", def: "", help: "PEM certificate of PASSPORT_SIGNING_KEY_FILE", str: &c.SigningCertFile},
		{env: "PASSPORT_TRUSTED_PROXIES", def: "", help: "comma-separated CIDRs of reverse proxies whose X-Forwarded-For names the client; empty: trust no header", str: &c.TrustedProxies},
		{env: "PASSPORT_KEY_ENCRYPTION_KEY", def: "", help: "base64 of 32 random bytes: seals the signing keys kept in the store (AES-256-GCM)", str: &c.KeyEncryption},
		{env: "PASSPORT_METRICS_LISTEN", def: "", help: "address of a listener of its own for /metrics (and /debug/pprof/); empty: /metrics on the main listener, to loopback clients only", str: &c.MetricsListen},
		{env: "PASSPORT_PPROF", def: "off", help: "on: serve Go's runtime profiles at /debug/pprof/ on the metrics listener (needs PASSPORT_METRICS_LISTEN)", str: &c.Pprof},
		{env: "PASSPORT_OFFLINE_CODES", def: "on", help: "on: each phone also shows a 6-digit code that can be typed on the login page when the phone has no network; off: approval on the phone only", str: &c.OfflineCodes},
		{env: "PASSPORT_AUDIT_RETENTION", def: "2160h", help: "how long the audit log keeps events, 1h to 87600h (10 years)", dur: &c.AuditRetention, min: time.Hour, max: 87600 * time.Hour},
		{env: "PASSPORT_ADMIN_EMAILS", def: "", help: "comma-separated emails made administrators of the admin console at start-up (created when missing)", str: &c.AdminEmails},
		{env: "PASSPORT_ALERT_EMAILS", def: "", help: "comma-separated addresses mailed when a sign-in is reported or pushes are paused", str: &c.AlertEmails},
		{env: "PASSPORT_ALERT_WEBHOOK_URL", def: "", help: "URL posted the event JSON when a sign-in is reported or pushes are paused", str: &c.AlertWebhookURL},
		{env: "PASSPORT_ALERT_WEBHOOK_SECRET", def: "", help: "key of the webhook's X-Passport-Signature (HMAC-SHA256 of the body); required with PASSPORT_ALERT_WEBHOOK_URL", str: &c.AlertSecret},
	}
}

// errHelp reports that -h was asked for and the usage printed.
var errHelp = errors.New("help requested")

// flagName turns PASSPORT_BASE_URL into base-url.
func flagName(env string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(env, "PASSPORT_")), "_", "-")
}

// parseConfig reads flags from args over the environment over defaults.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("passport-idp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	raw := map[string]*string{}
	for _, s := range c.settings() {
		v := s.def
		if e := getenv(s.env); e != "" {
			v = e
		}
		raw[s.env] = fs.String(flagName(s.env), v, s.help+" ("+s.env+")")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, errHelp
		}
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for _, s := range c.settings() {
		v := strings.TrimSpace(*raw[s.env])
		switch {
		case s.str != nil:
			*s.str = v
		case s.dur != nil:
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return c, fmt.Errorf("%s: %q is not a positive duration such as 5m", s.env, v)
			}
			if (s.min > 0 && d < s.min) || (s.max > 0 && d > s.max) {
				return c, fmt.Errorf("%s: %s is out of bounds: it must be between %s and %s", s.env, v, shortDuration(s.min), shortDuration(s.max))
			}
			*s.dur = d
		}
	}
	if (c.SigningKeyFile == "") != (c.SigningCertFile == "") {
		return c, errors.New("PASSPORT_SIGNING_KEY_FILE and PASSPORT_SIGNING_CERT_FILE go together")
	}
	if c.KeyEncryption != "" {
		if k, err := base64.StdEncoding.DecodeString(c.KeyEncryption); err != nil || len(k) != 32 {
			return c, errors.New("PASSPORT_KEY_ENCRYPTION_KEY must be the base64 of 32 bytes (openssl rand -base64 32)")
		}
	}
	if _, err := c.trustedProxies(); err != nil {
		return c, err
	}
	switch c.Pprof {
	case "off":
	case "on":
		if c.MetricsListen == "" {
			return c, errors.New("PASSPORT_PPROF=on needs PASSPORT_METRICS_LISTEN: the profiles are served only on the metrics listener")
		}
	default:
		return c, fmt.Errorf("PASSPORT_PPROF: %q is neither on nor off", c.Pprof)
	}
	if c.OfflineCodes != "on" && c.OfflineCodes != "off" {
		return c, fmt.Errorf("PASSPORT_OFFLINE_CODES: %q is neither on nor off", c.OfflineCodes)
	}
	if c.EntityID == "" {
		return c, errors.New("PASSPORT_ENTITY_ID must not be empty")
	}
	if err := c.checkAlerts(); err != nil {
		return c, err
	}
	if _, err := c.adminEmails(); err != nil {
		return c, err
	}
	if c.FCMEndpoint != "" {
		if c.FCMCredentials == "" {
			return c, errors.New("PASSPORT_FCM_ENDPOINT is used only with PASSPORT_FCM_CREDENTIALS: set both, or neither")
		}
		if u, err := url.Parse(c.FCMEndpoint); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return c, fmt.Errorf("PASSPORT_FCM_ENDPOINT: %q is not an http(s) URL", c.FCMEndpoint)
		}
	}
	return c, nil
}

// shortDuration writes d as a person would: 30m and 720h rather than 30m0s and 720h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// checkAlerts refuses alert settings that would silently send nothing, or send unsigned.
func (c config) checkAlerts() error {
	for _, a := range c.alertEmails() {
		if m, err := mail.ParseAddress(a); err != nil || m.Address != a {
			return fmt.Errorf("PASSPORT_ALERT_EMAILS: %q is not an email address", a)
		}
	}
	if c.AlertWebhookURL == "" {
		if c.AlertSecret != "" {
			return errors.New("PASSPORT_ALERT_WEBHOOK_SECRET is used only with PASSPORT_ALERT_WEBHOOK_URL: set both, or neither")
		}
		return nil
	}
	if u, err := url.Parse(c.AlertWebhookURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("PASSPORT_ALERT_WEBHOOK_URL: %q is not an http(s) URL", c.AlertWebhookURL)
	}
	if c.AlertSecret == "" {
		return errors.New("PASSPORT_ALERT_WEBHOOK_URL needs PASSPORT_ALERT_WEBHOOK_SECRET: the receiver checks each post's signature with it")
	}
	return nil
}

// adminEmails are the administrators PASSPORT_ADMIN_EMAILS names, normalized, in order.
func (c config) adminEmails() ([]string, error) {
	var out []string
	for _, a := range strings.Split(c.AdminEmails, ",") {
		if a = strings.TrimSpace(a); a == "" {
			continue
		}
		email, err := authn.NormalizeEmail(a)
		if err != nil {
			return nil, fmt.Errorf("PASSPORT_ADMIN_EMAILS: %q is not an email address", a)
		}
		out = append(out, email)
	}
	return out, nil
}

func (c config) alertEmails() []string {
	var out []string
	for _, a := range strings.Split(c.AlertEmails, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

func (c config) allowedDomains() []string {
	var out []string
	for _, d := range strings.Split(c.AllowedDomains, ",") {
		if d = strings.TrimSpace(d); d != "" {
			out = append(out, strings.TrimPrefix(d, "@"))
		}
	}
	return out
}

func (c config) keyEncryptionKey() []byte {
	k, _ := base64.StdEncoding.DecodeString(c.KeyEncryption)
	return k
}

func (c config) trustedProxies() ([]*net.IPNet, error) {
	var out []*net.IPNet
	for _, p := range strings.Split(c.TrustedProxies, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if !strings.Contains(p, "/") {
			if strings.Contains(p, ":") {
				p += "/128"
			} else {
				p += "/32"
			}
		}
		_, n, err := net.ParseCIDR(p)
		if err != nil {
			return nil, fmt.Errorf("PASSPORT_TRUSTED_PROXIES: %q is not an address or CIDR", p)
		}
		out = append(out, n)
	}
	return out, nil
}
