// Package authn owns Passport's login state machine and the records it rests on: applications, users,
// enrolled devices, invitations and parked logins. A login moves identify → pending (pushed) →
// approved | denied | expired → answered, and every transition that must happen once is an atomic
// compare-and-swap in the store. authn knows nothing of HTTP or SAML: the api package drives it and
// builds protocol messages through callbacks.
package authn

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/winkk/passport/push"
	"github.com/winkk/passport/store"
)

// Pusher sends one push message; push.FCM and push.LogSender implement it. It must be safe for concurrent use.
type Pusher interface {
	Send(ctx context.Context, m push.Message) error
}

// Config holds the rules of the service.
type Config struct {
	LoginTTL       time.Duration // how long a parked login waits for the phone (default 5m)
	AllowedDomains []string      // email domains that may enroll; empty means any
	BaseURL        string        // public URL, for enrollment links
	Clock          func() time.Time
	// Rand is the source of every random value the services draw (IDs, numbers, codes, secrets, nonces),
	// crypto/rand's Reader by default. New RSA keys are the exception: Go's crypto/rsa draws their
	// randomness itself.
	Rand   io.Reader
	Logger *slog.Logger
	// IdentifyLimit caps email submissions per client network per minute (default 1000: an office of
	// hundreds behind one address signs in at nine without a refusal; pushes are limited per user, see Limits).
	IdentifyLimit int64
	// SessionTTL is the life of an IdP session (default 8h).
	SessionTTL time.Duration
	// KeyEncryptionKey, when set (32 bytes), seals the IdP's private keys in the store with AES-256-GCM.
	KeyEncryptionKey []byte
	// DisableOfflineCodes turns offline codes off: enrollment hands out no secret and the login page takes no
	// code (see Logins.ApproveByCode).
	DisableOfflineCodes bool
	// Limits bound the pushes a user can be sent (push-bombing protection).
	Limits Limits
	// OnChange, when set, is told of every state change the services make, once it has landed (see Change):
	// synchronously, on the goroutine that made it, so it must be quick and must not fail.
	OnChange func(ctx context.Context, c Change)
}

// Service is Passport's core: the records and the login state machine, as small services by concern over
// shared tables. Every state change any of them makes passes through one place (see Config.OnChange). It is
// safe for concurrent use.
type Service struct {
	Apps     *Apps     // the applications (SPs) and their settings
	Users    *Users    // the employees
	Devices  *Devices  // enrolled phones, invitations, email codes and device proofs
	Logins   *Logins   // the login state machine: park, identify, approve, respond, and the limits
	Sessions *Sessions // IdP sessions
	Keys     *Keys     // the IdP's signing keys and secrets
	Console  *Console  // the admin console's sign-ins and sessions

	*core
}

// The services by concern. Each is the shared core seen from one concern; they reach each other through it.
type (
	// Apps registers applications and keeps them cached briefly.
	Apps struct{ *core }
	// Users keeps the employees: names, groups, status.
	Users struct{ *core }
	// Devices enrolls phones (by invitation or emailed code), authenticates their proofs and keeps them.
	Devices struct{ *core }
	// Logins runs the login state machine and the limits on it.
	Logins struct{ *core }
	// Sessions keeps the IdP sessions an approval opens.
	Sessions struct{ *core }
	// Keys keeps the IdP's signing keys (rollover) and its secrets.
	Keys struct{ *core }
)

// core is what the services share: configuration, the store and its tables, the push and mail senders, and
// background work.
type core struct {
	cfg    Config
	st     *store.Store
	pusher Pusher
	mailer Mailer
	log    *slog.Logger
	svc    *Service // the services, for one to call another

	apps        table[App]
	users       table[User]
	devices     table[Device]
	invitations table[Invitation]
	logins      table[Login]
	sessions    table[Session]
	keys        table[storedRing]
	// consoleSessions are the admin console's sessions (ConsoleSession).
	consoleSessions table[ConsoleSession]

	appCache sync.Map // app ID → cachedApp

	bg       sync.WaitGroup
	bgCtx    context.Context
	bgCancel context.CancelFunc
}

// New returns a Service over st that sends pushes through p and mails through m.
func New(st *store.Store, p Pusher, m Mailer, cfg Config) *Service {
	if cfg.LoginTTL <= 0 {
		cfg.LoginTTL = 5 * time.Minute
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.IdentifyLimit <= 0 {
		cfg.IdentifyLimit = 1000
	}
	cfg.Limits = cfg.Limits.withDefaults()
	for i, d := range cfg.AllowedDomains {
		cfg.AllowedDomains[i] = strings.ToLower(strings.TrimSpace(d))
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &core{
		cfg:      cfg,
		st:       st,
		pusher:   p,
		mailer:   m,
		log:      cfg.Logger,
		bgCtx:    ctx,
		bgCancel: cancel,
	}
	c.apps = newTable[App](c, "app")
	c.users = newTable[User](c, "user")
	c.devices = newTable[Device](c, "device")
	c.invitations = newTable[Invitation](c, "invitation")
	c.logins = newSpreadTable[Login](c, "login")
	c.sessions = newSpreadTable[Session](c, "session")
	c.keys = newTable[storedRing](c, "idp")
	c.consoleSessions = newTable[ConsoleSession](c, TableConsoleSession)
	s := &Service{Apps: &Apps{c}, Users: &Users{c}, Devices: &Devices{c}, Logins: &Logins{c}, Sessions: &Sessions{c}, Keys: &Keys{c},
		Console: &Console{c}, core: c}
	c.svc = s
	return s
}

// Close stops background work (pushes in flight) and waits for it to end.
func (s *Service) Close() {
	s.bgCancel()
	s.bg.Wait()
}

// Store returns the underlying store, for the program that wires Passport together and for tests; the faces
// (package api) use the services.
func (s *Service) Store() *store.Store { return s.st }

// Ping reports whether the store answers (readiness).
func (s *Service) Ping(ctx context.Context) error { return s.st.Ping(ctx) }

// StoreStats counts the round trips and commands the services have asked of the store (for metrics).
func (s *Service) StoreStats() store.Stats { return s.st.Stats() }

// TTL is how long a parked login waits for the phone.
func (s *Logins) TTL() time.Duration { return s.cfg.LoginTTL }

func (s *core) now() time.Time { return s.cfg.Clock().UTC() }

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// randomID returns n random bytes encoded in lower-case base32.
func (s *core) randomID(n int) string {
	b := make([]byte, n)
	if _, err := io.ReadFull(s.cfg.Rand, b); err != nil {
		panic(fmt.Sprintf("authn: random source failed: %v", err))
	}
	return idEncoding.EncodeToString(b)
}

// PlausibleLoginID reports whether id has the form of a login's ID, without looking it up: for callers that
// key something by an ID before reading it.
func PlausibleLoginID(id string) bool { return plausibleID(id) }

// plausibleID reports whether id, taken from a URL, cookie or proof, can be one of our generated IDs
// (lower-case base32 with an optional "dev_"-style prefix). Anything else is answered as not found before it
// becomes a store key, so no caller can make us look up arbitrary or huge keys.
func plausibleID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// internal wraps a store failure: the client sees a generic message, the log the detail. A store that is out
// of reach, stalled past the deadline or failing over is ErrUnavailable (try again in a moment).
func internal(op string, err error) error {
	if err == nil {
		return nil
	}
	var de *Error
	if errors.As(err, &de) {
		return err
	}
	if store.Unavailable(err) {
		return &Error{Code: ErrUnavailable.Code, Message: ErrUnavailable.Message, Err: fmt.Errorf("authn: %s: %w", op, err)}
	}
	return fmt.Errorf("authn: %s: %w", op, err)
}

// A Watch tells of changes to something the services keep: C receives a value after changes are announced
// (several changes may arrive as one) and is closed when the store closes. Changes announced while the
// store's connection was down are missed, so a caller looks at what it waits on again now and then rather
// than rely on a signal for every change. Stop ends the watch; call it once done.
type Watch struct {
	C    <-chan string
	Stop func()
}

func (s *core) watch(ctx context.Context, channel string) (Watch, error) {
	c, stop, err := s.st.Subscribe(ctx, channel)
	if err != nil {
		return Watch{}, internal("watch", err)
	}
	return Watch{C: c, Stop: stop}, nil
}

// Watch watches login id: its state changed (the phone answered, the browser identified, ...).
func (s *Logins) Watch(ctx context.Context, id string) (Watch, error) {
	return s.watch(ctx, LoginChannel(id))
}

// Notify calls fn whenever login id may have changed, until stop is called: a Watch for holders of many
// (the login page's event streams) that cannot spare a goroutine each. fn gets the message, which
// ParseLoginChange reads (the login as written), or one that says only "read it again". fn runs on the
// store's pub/sub reader with its lock held: it must return at once and must not call stop. ctx bounds only
// the set-up.
func (s *Logins) Notify(ctx context.Context, id string, fn func(msg string)) (stop func(), err error) {
	stop, err = s.st.SubscribeFunc(ctx, fn, LoginChannel(id))
	if err != nil {
		return nil, internal("watch", err)
	}
	return stop, nil
}

// WatchChallenges watches the challenges of the user with email: one was opened, answered or withdrawn.
func (s *Logins) WatchChallenges(ctx context.Context, email string) (Watch, error) {
	return s.watch(ctx, UserChannel(email))
}

// Watch watches the signing keys: a replica staged or activated a key.
func (s *Keys) Watch(ctx context.Context) (Watch, error) {
	return s.watch(ctx, KeysChannel)
}
