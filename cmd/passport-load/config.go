package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/winkk/passport/saml"
)

const usage = `usage: passport-load --idp URL [flags]

Drives whole logins (browser and phone) against a running Passport IdP and reports what they cost.

  --idp URL              the IdP's base URL, as its PASSPORT_BASE_URL says (required)
  --admin-token T        the IdP's admin token (default $PASSPORT_ADMIN_TOKEN)
  --concurrency N        logins in flight at once (default 8)
  --logins N             stop after N logins (default 100 when --duration is not given; 0 with --waiting:
                         measure waiting browsers only)
  --duration D           stop starting logins after D, e.g. 60s (default 10m when only --logins is given)
  --timeout D            give up on one login after D (default 30s)
  --waiting N            first hold N browsers waiting on their event streams, unapproved, and report the
                         IdP's resident memory per waiting browser (default 0)
  --keep-waiting         keep those browsers waiting while the logins run (closed at the end), so the logins'
                         latencies are measured with N sign-ins waiting beside them
  --users N              users to enroll for the logins (default: enough for the run, each starting at most
                         --logins-per-user logins)
  --logins-per-user N    logins one user may start in the run: the IdP pushes to a user at most 10 times an
                         hour from one client address and 30 in all (default 10)
  --metrics URL          the IdP's Prometheus metrics (default {idp}/metrics)
  --source-addrs N       on a loopback IdP, spread the browsers over N addresses of 127.0.0.0/8, because
                         the IdP limits each client address (default 4096, or --waiting when larger)
  --domain D             the email domain of the users it creates (default example.com)
  --sign WHAT            what its application's Responses sign: both (default, as Atlassian's set-up wants
                         it), assertion (one signature per login) or response; the check of each Response
                         requires exactly that
  --check-after          check each Response after the logins end, not as it arrives: kept until then in a
                         temporary file (about 11 KB a login), so that on a machine shared with the IdP the
                         checks take no CPU from it while its cost is measured
  --json                 the report as JSON instead of text
  --redis URL            the IdP's Redis, as its PASSPORT_REDIS_URL (redis://, rediss://, unix://, redis-sentinel://,
                         redis-cluster://): also report Redis's memory (INFO used_memory, whole servers) before
                         and after the setup, the waiting browsers and the logins, per user and per login, and
                         the keys on each master (login and session records among them) after the logins
  --redis-prefix P       the IdP's PASSPORT_REDIS_PREFIX, whose keys --redis counts (default "", the IdP's)

It creates one application and its own users (load-<run>-<n>@<domain>), each with one enrolled device, and
deletes them at the end, also when interrupted. A progress bar shows on a terminal.
Exit status: 0 every login succeeded, 1 a login failed or the run could not be set up, 2 usage.
`

// config is what the command line asks for.
type config struct {
	IdP           string
	AdminToken    string
	Concurrency   int
	Logins        int           // < 0: no bound on the count; 0: no logins (--waiting only)
	Duration      time.Duration // 0: no bound on the time
	Timeout       time.Duration
	Waiting       int
	KeepWaiting   bool // the waiting browsers stay open while the logins run
	Users         int  // 0: sized for the run
	LoginsPerUser int
	Metrics       string
	SourceAddrs   int // 0: the default
	Domain        string
	Sign          saml.Signing // what the application's Responses sign (--sign)
	CheckAfter    bool         // the Responses are checked after the logins (--check-after)
	JSON          bool
	Redis         string // "": Redis is not measured
	RedisPrefix   string
}

// Bounds that apply when the command line gives none.
const (
	defaultLogins      = 100
	defaultMaxDuration = 10 * time.Minute
	defaultSourceAddrs = 4096
	maxSourceAddrs     = 1 << 18
)

// usageError is a mistake in the command line: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

func parseConfig(args []string, getenv func(string) string) (config, error) {
	var c config
	fs := flag.NewFlagSet("passport-load", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&c.IdP, "idp", "", "")
	fs.StringVar(&c.AdminToken, "admin-token", getenv("PASSPORT_ADMIN_TOKEN"), "")
	fs.IntVar(&c.Concurrency, "concurrency", 8, "")
	fs.IntVar(&c.Logins, "logins", 0, "")
	fs.DurationVar(&c.Duration, "duration", 0, "")
	fs.DurationVar(&c.Timeout, "timeout", 30*time.Second, "")
	fs.IntVar(&c.Waiting, "waiting", 0, "")
	fs.BoolVar(&c.KeepWaiting, "keep-waiting", false, "")
	fs.IntVar(&c.Users, "users", 0, "")
	fs.IntVar(&c.LoginsPerUser, "logins-per-user", 10, "")
	fs.StringVar(&c.Metrics, "metrics", "", "")
	fs.IntVar(&c.SourceAddrs, "source-addrs", 0, "")
	fs.StringVar(&c.Domain, "domain", "example.com", "")
	sign := fs.String("sign", "both", "")
	fs.BoolVar(&c.CheckAfter, "check-after", false, "")
	fs.BoolVar(&c.JSON, "json", false, "")
	fs.StringVar(&c.Redis, "redis", "", "")
	fs.StringVar(&c.RedisPrefix, "redis-prefix", "", "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, usagef("%v", err)
	}
	if fs.NArg() > 0 {
		return c, usagef("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	u, err := url.Parse(c.IdP)
	switch {
	case c.IdP == "":
		return c, usagef("--idp is required")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "":
		return c, usagef("--idp %q is not the IdP's base URL (http or https, no path)", c.IdP)
	}
	c.IdP = strings.TrimRight(c.IdP, "/")
	if c.Metrics == "" {
		c.Metrics = c.IdP + "/metrics"
	} else if m, err := url.Parse(c.Metrics); err != nil || (m.Scheme != "http" && m.Scheme != "https") || m.Host == "" {
		return c, usagef("--metrics %q is not an http(s) URL", c.Metrics)
	}
	if c.AdminToken == "" {
		return c, usagef("--admin-token (or PASSPORT_ADMIN_TOKEN) is required: the IdP's admin token")
	}
	var signErr error
	c.Sign, signErr = saml.ParseSigning(*sign)
	switch {
	case c.Concurrency < 1 || c.Concurrency > 10000:
		return c, usagef("--concurrency must be between 1 and 10000")
	case c.Logins < 0:
		return c, usagef("--logins must not be negative")
	case c.Duration < 0:
		return c, usagef("--duration must not be negative")
	case c.Timeout <= 0:
		return c, usagef("--timeout must be positive")
	case c.Waiting < 0:
		return c, usagef("--waiting must not be negative")
	case c.Users < 0:
		return c, usagef("--users must not be negative")
	case c.LoginsPerUser < 1:
		return c, usagef("--logins-per-user must be at least 1")
	case c.SourceAddrs < 0 || c.SourceAddrs > maxSourceAddrs:
		return c, usagef("--source-addrs must be between 1 and %d", maxSourceAddrs)
	case c.Domain == "" || strings.ContainsAny(c.Domain, "@ /"):
		return c, usagef("--domain %q is not an email domain", c.Domain)
	case signErr != nil || *sign == "":
		return c, usagef("--sign must be both, assertion or response")
	case set["redis-prefix"] && c.Redis == "":
		return c, usagef("--redis-prefix needs --redis URL")
	case c.Redis != "" && !isRedisURL(c.Redis):
		// The URL itself is not quoted: it may hold a password.
		return c, usagef("--redis is not a Redis URL: want redis://, rediss://, unix://, redis-sentinel:// or redis-cluster://")
	}
	// Bounded in count and time: whichever bound the command line leaves out gets a default. Without --logins,
	// --duration alone bounds the run (Logins < 0: no bound on the count).
	switch {
	case !set["logins"] && !set["duration"]:
		c.Logins, c.Duration = defaultLogins, defaultMaxDuration
	case !set["logins"]:
		c.Logins = -1
	case !set["duration"]:
		c.Duration = defaultMaxDuration
	}
	switch {
	case c.Logins < 0 && c.Duration == 0:
		return c, usagef("--duration 0 needs --logins N: the run must end by itself")
	case c.Logins == 0 && c.Waiting == 0:
		return c, usagef("--logins 0 does no login: give --waiting N to measure waiting browsers only")
	}
	if c.SourceAddrs == 0 {
		c.SourceAddrs = max(defaultSourceAddrs, c.Waiting)
	}
	return c, nil
}

// isRedisURL reports whether u has one of the schemes the IdP's PASSPORT_REDIS_URL takes (store.Open checks the
// rest).
func isRedisURL(u string) bool {
	scheme, rest, ok := strings.Cut(strings.TrimSpace(u), "://")
	return ok && rest != "" && slices.Contains([]string{"redis", "rediss", "unix", "redis-sentinel", "redis-cluster"}, scheme)
}
