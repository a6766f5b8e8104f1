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
	Rand           io.Reader
	Logger         *slog.Logger
	// IdentifyLimit caps email submissions per client network per minute (default 1000: an office of
	// hundreds behind one address signs in at nine without a refusal; pushes are limited per user, see Limits).
	IdentifyLimit int64
	// SessionTTL is the life of an IdP session (default 8h).
	SessionTTL time.Duration
	// KeyEncryptionKey, when set (32 bytes), seals the IdP's private keys in the store with AES-256-GCM.
	KeyEncryptionKey []byte
	// Limits bound the pushes a user can be sent (push-bombing protection).
	Limits Limits
}

// Service is the login state machine and its records. It is safe for concurrent use.
type Service struct {
	cfg    Config
	st     *store.Store
	pusher Pusher
	mailer Mailer
	log    *slog.Logger

	apps        *store.Table[App]
	users       *store.Table[User]
	devices     *store.Table[Device]
	invitations *store.Table[Invitation]
	logins      *store.Table[Login]
	sessions    *store.Table[Session]
	keys        *store.Table[storedRing]

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
	return &Service{
		cfg:         cfg,
		st:          st,
		pusher:      p,
		mailer:      m,
		log:         cfg.Logger,
		apps:        store.NewTable[App](st, "app"),
		users:       store.NewTable[User](st, "user"),
		devices:     store.NewTable[Device](st, "device"),
		invitations: store.NewTable[Invitation](st, "invitation"),
		logins:      store.NewTable[Login](st, "login"),
		sessions:    store.NewTable[Session](st, "session"),
		keys:        store.NewTable[storedRing](st, "idp"),
		bgCtx:       ctx,
		bgCancel:    cancel,
	}
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

// LoginTTL is how long a parked login waits for the phone.
func (s *Service) LoginTTL() time.Duration { return s.cfg.LoginTTL }

func (s *Service) now() time.Time { return s.cfg.Clock().UTC() }

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// randomID returns n random bytes encoded in lower-case base32.
func (s *Service) randomID(n int) string {
	b := make([]byte, n)
	if _, err := io.ReadFull(s.cfg.Rand, b); err != nil {
		panic(fmt.Sprintf("authn: random source failed: %v", err))
	}
	return idEncoding.EncodeToString(b)
}

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

// internal wraps a store failure: the client sees a generic message, the log the detail.
func internal(op string, err error) error {
	if err == nil {
		return nil
	}
	var de *Error
	if errors.As(err, &de) {
		return err
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

func (s *Service) watch(ctx context.Context, channel string) (Watch, error) {
	c, stop, err := s.st.Subscribe(ctx, channel)
	if err != nil {
		return Watch{}, internal("watch", err)
	}
	return Watch{C: c, Stop: stop}, nil
}

// WatchLogin watches login id: its state changed (the phone answered, the browser identified, ...).
func (s *Service) WatchLogin(ctx context.Context, id string) (Watch, error) {
	return s.watch(ctx, LoginChannel(id))
}

// WatchChallenges watches the challenges of the user with email: one was opened, answered or withdrawn.
func (s *Service) WatchChallenges(ctx context.Context, email string) (Watch, error) {
	return s.watch(ctx, UserChannel(email))
}

// WatchKeys watches the signing keys: a replica staged or activated a key.
func (s *Service) WatchKeys(ctx context.Context) (Watch, error) {
	return s.watch(ctx, KeysChannel)
}
