package authn

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/winkk/passport/push"
	"github.com/winkk/passport/store"
)

// LoginState is where a parked login stands.
type LoginState string

// The states of a login. Identify → Pending → Approved | Denied | Expired; Approved → Answered once the
// signed Response has been made. Failed covers logins refused before any push (suspended user, no device).
const (
	StateIdentify LoginState = "identify"
	StatePending  LoginState = "pending"
	StateApproved LoginState = "approved"
	StateDenied   LoginState = "denied"
	StateExpired  LoginState = "expired"
	StateFailed   LoginState = "failed"
	StateAnswered LoginState = "answered"
	// StatePaused: no push was sent because pushes to the user are paused (see Limits).
	StatePaused LoginState = "paused"
)

// Reasons a login did not succeed.
const (
	ReasonDenied         = "denied"          // the user tapped deny on the phone
	ReasonReported       = "reported"        // the user tapped "this wasn't me"
	ReasonNumberMismatch = "number_mismatch" // the number typed on the phone was not the one shown
	ReasonExpired        = "expired"         // nobody answered in time
	ReasonSuspended      = "suspended"       // the account is suspended
	ReasonNoDevice       = "no_device"       // the account has no enrolled device
	ReasonUnknownUser    = "unknown_user"    // no account has that email
	// ReasonSubjectMismatch: the application asked about one user and another identified.
	ReasonSubjectMismatch = "subject_mismatch"
	// ReasonNotAllowed: the user is in none of the application's allowed groups (App.AllowedGroups).
	ReasonNotAllowed = "not_allowed"
)

// Login is a parked sign-in: the SP's request as the api package parsed it, the browser it is bound to, and
// the phone approval it waits for. It doubles as the challenge the phone sees (same ID).
type Login struct {
	ID    string `json:"id"`
	AppID string `json:"app_id"`

	// The request being answered, kept opaque to authn.
	RequestID    string `json:"request_id,omitempty"` // empty for IdP-initiated logins
	RelayState   string `json:"relay_state,omitempty"`
	NameIDFormat string `json:"nameid_format,omitempty"`
	ACSURL       string `json:"acs_url,omitempty"` // where the Response goes; empty: the app's default
	// Subject is the principal the request is about, if it names one.
	Subject
	// AuthnContext is the authentication context class the Response states; empty: the default.
	AuthnContext string `json:"authn_context,omitempty"`

	BrowserHash string `json:"browser_hash"`
	ClientIP    string `json:"client_ip"`
	UserAgent   string `json:"user_agent"`
	// Network is the client network that started the login (its address, or the /64 of an IPv6 address):
	// the limits on pushes are counted per user and network.
	Network string `json:"net,omitempty"`

	State   LoginState `json:"state"`
	Reason  string     `json:"reason,omitempty"`
	Email   string     `json:"email,omitempty"`
	Number  int        `json:"number,omitempty"`
	Devices []string   `json:"devices,omitempty"`
	// Decoy marks a login waiting for an account that cannot be asked (unknown, suspended, or without a
	// phone): it shows a number and waits like any other, so the page does not tell those accounts apart,
	// but nothing is pushed and nothing can approve it; it expires.
	Decoy bool `json:"decoy,omitempty"`
	// Changes counts the times the browser went back to change the email typed.
	Changes int `json:"changes,omitempty"`
	// Method is how the login was approved: MethodPush (the default, also when empty) or MethodOfflineCode.
	Method string `json:"method,omitempty"`
	// Receipt is the phone's signed answer, exactly as the server verified it (a compact JWS), for approvals
	// and denials: proof of which phone answered and what it showed. Kept until the login is answered; the
	// audit log keeps it for good (details.receipt of login.approved and login.denied).
	Receipt string `json:"receipt,omitempty"`
	// ReceiptBody is the exact request body the Receipt signed (its bsh claim is this body's SHA-256).
	ReceiptBody string `json:"receipt_body,omitempty"`
	AnsweredBy  string `json:"answered_by,omitempty"`
	// SessionID is the IdP session this login belongs to: the one it was answered from, or the one it opened.
	SessionID string `json:"session_id,omitempty"`

	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	DecidedAt time.Time `json:"decided_at,omitzero"`
	// PausedUntil is when pushes to the user resume (StatePaused).
	PausedUntil time.Time `json:"paused_until,omitzero"`
	ResponseAt  time.Time `json:"response_at,omitzero"`
	// Response is the message handed to the SP once the login has been answered; reloading the page shows
	// the same one, so a login yields exactly one Response.
	Response Document `json:"response,omitempty"`
}

// Document is an XML document kept in a record. It is stored as JSON text rather than as base64, so that the
// store's compression of large records sees the XML's repetitions (a signed Response shrinks to about a
// third). A stored value that does not start as XML and is base64 is read as the base64 of a document, as
// older records hold it.
type Document []byte

// MarshalText has the document stored as a JSON string (it is UTF-8 XML). As a TextMarshaler rather than a
// json.Marshaler it is escaped once, without the validation and compaction pass encoding/json makes over
// the output of a MarshalJSON (a signed Response is about 10 KB, written once per login).
func (d Document) MarshalText() ([]byte, error) { return d, nil }

// UnmarshalText reads a document stored as text, or as base64.
func (d *Document) UnmarshalText(b []byte) error {
	if len(b) == 0 || b[0] == '<' {
		*d = append(Document(nil), b...)
		return nil
	}
	if raw, err := base64.StdEncoding.DecodeString(string(b)); err == nil {
		*d = raw
		return nil
	}
	*d = append(Document(nil), b...)
	return nil
}

// How a login was approved (Login.Method).
const (
	MethodPush        = "push"         // the phone answered the challenge
	MethodOfflineCode = "offline_code" // a code from the phone's app was typed in the browser
)

// Current returns the state as of now: a login still waiting past ExpiresAt is Expired.
func (l Login) Current(now time.Time) LoginState {
	if (l.State == StateIdentify || l.State == StatePending) && !now.Before(l.ExpiresAt) {
		return StateExpired
	}
	return l.State
}

// Open reports whether the login still waits (identify or pending, not expired).
func (l Login) Open(now time.Time) bool {
	st := l.Current(now)
	return st == StateIdentify || st == StatePending
}

// loginGrace is how long a finished login stays readable after it expires, so a reload explains what happened.
const loginGrace = 15 * time.Minute

// StartLogin is what the api package knows of a new login.
type StartLogin struct {
	AppID        string
	RequestID    string
	RelayState   string
	NameIDFormat string
	ACSURL       string
	ClientIP     string
	UserAgent    string
	Network      string // see Login.Network
	Subject      Subject
	AuthnContext string // see Login
}

// Subject is the principal a request names: by email (checked when the user identifies), or by another
// NameID the api package checks when it builds the Response.
type Subject struct {
	Email  string `json:"subject_email,omitempty"`
	NameID string `json:"subject_nameid,omitempty"`
	Format string `json:"subject_format,omitempty"`
}

// BrowserSecret hashes the secret kept in the browser's cookie, for comparison with Login.BrowserHash.
func BrowserSecret(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// Admit is the first step of every login a browser starts: it counts the login against its client network's
// limit (ErrRateLimited past Limits.ParksPerMinute) and, for an SP's request, remembers the request's ID for
// ttl so that a second use is refused (saml-core §3.2.1: a replay), both in one round trip. Nothing is parked
// yet: requests that cannot lead anywhere are refused before they cost the store anything. A login that is
// parked at once after it is admitted takes AdmitAndPark instead.
func (s *Logins) Admit(ctx context.Context, net, appID, requestID string, ttl time.Duration) error {
	b := s.st.Batch(ctx)
	hit := s.st.HitIn(b, parkKey(net), time.Minute)
	var claim *store.Result[bool]
	if requestID != "" {
		claim = s.st.ClaimIn(b, requestIDKey(appID, requestID), ttl)
	}
	b.Run()
	h, err := hit.Get()
	if err != nil {
		return internal("count logins", err)
	}
	first := true
	if claim != nil {
		if first, err = claim.Get(); err != nil {
			return internal("consume request id", err)
		}
	}
	return s.admitted(h.Count, h.ResetIn, first)
}

// admitted is Admit's verdict on a login whose client network's count is now count (its window ends in
// resetIn), and whose request ID was first used now (first), or has none.
func (s *core) admitted(count int64, resetIn time.Duration, first bool) error {
	if !first {
		return newErr(ErrConflict, "This sign-in request was already used. Go back to the application and sign in again.")
	}
	if count > s.cfg.Limits.ParksPerMinute {
		return &Error{Code: ErrRateLimited.Code, Message: "Too many sign-ins from this network. Try again in " + roundUp(resetIn) + "."}
	}
	return nil
}

// Park stores a new login waiting for the user to identify, bound to a fresh browser secret, and returns the
// login and that secret (for the binding cookie). The login was admitted first (Admit).
func (s *Logins) Park(ctx context.Context, in StartLogin) (Login, string, error) {
	l, secret := s.newLogin(in)
	if err := s.logins.Create(ctx, l.ID, l, s.cfg.LoginTTL+loginGrace); err != nil {
		return Login{}, "", internal("park login", err)
	}
	return l, secret, nil
}

// AdmitAndPark is Admit of in (its client network, and its request ID for requestIDTTL when it has one), then
// Park of in when admitted. On one server both are one round trip, one script: a login refused by the limit or
// a replay stores nothing, and its count and its request ID are kept as Admit keeps them. On a Redis Cluster,
// whose scripts reach one slot (the count, the request ID and the login have three), Admit and Park run one
// after the other.
func (s *Logins) AdmitAndPark(ctx context.Context, in StartLogin, requestIDTTL time.Duration) (Login, string, error) {
	if !s.logins.InOrder() {
		if err := s.Admit(ctx, in.Network, in.AppID, in.RequestID, requestIDTTL); err != nil {
			return Login{}, "", err
		}
		return s.Park(ctx, in)
	}
	adm := store.Admission{Hit: store.Hit{Counter: parkKey(in.Network), Window: time.Minute, Cap: s.cfg.Limits.ParksPerMinute}}
	if in.RequestID != "" {
		adm.Claim, adm.ClaimTTL = requestIDKey(in.AppID, in.RequestID), requestIDTTL
	}
	l, secret := s.newLogin(in)
	a, err := s.logins.CreateAdmitted(ctx, l.ID, l, s.cfg.LoginTTL+loginGrace, adm)
	if err != nil {
		return Login{}, "", internal("park login", err)
	}
	if err := s.admitted(a.Count, a.ResetIn, a.Claimed); err != nil {
		return Login{}, "", err // not created
	}
	return l, secret, nil
}

// newLogin makes (but does not store) a login waiting for the user to identify, and its browser secret.
func (s *core) newLogin(in StartLogin) (Login, string) {
	now := s.now()
	secret := s.randomID(20)
	return Login{
		ID:           s.randomID(16),
		AppID:        in.AppID,
		RequestID:    in.RequestID,
		RelayState:   in.RelayState,
		NameIDFormat: in.NameIDFormat,
		ACSURL:       in.ACSURL,
		Subject:      Subject{Email: strings.ToLower(in.Subject.Email), NameID: in.Subject.NameID, Format: in.Subject.Format},
		AuthnContext: in.AuthnContext,
		BrowserHash:  BrowserSecret(secret),
		ClientIP:     in.ClientIP,
		UserAgent:    truncate(in.UserAgent, maxUserAgent),
		Network:      in.Network,
		State:        StateIdentify,
		CreatedAt:    now,
		ExpiresAt:    now.Add(s.cfg.LoginTTL),
	}, secret
}

// maxUserAgent is how much of a browser's User-Agent a login keeps (what the phone shows of it): enough for
// every real browser's, and it keeps a parked login small.
const maxUserAgent = 256

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// Get returns the login id if secret is the one its browser holds. A wrong or missing secret is
// ErrForbidden; an unknown (or long gone) login is ErrNotFound.
func (s *Logins) Get(ctx context.Context, id, secret string) (Login, error) {
	return s.GetWith(ctx, id, secret, nil)
}

// GetWith is Get with, when pre is set, the reads of the email step (IdentifyPrefetch) in the same round trip:
// they run whatever the login turns out to be, so the attempt counts against the client's limit even when the
// browser is refused.
func (s *Logins) GetWith(ctx context.Context, id, secret string, pre *IdentifyPrefetch) (Login, error) {
	if !plausibleID(id) {
		return Login{}, newErr(ErrNotFound, "this sign-in does not exist or has expired")
	}
	var l Login
	var err error
	if pre == nil {
		l, err = s.logins.Get(ctx, id)
	} else {
		b := s.st.Batch(ctx)
		read := s.logins.GetIn(b, id)
		pre.queue(b, pre.clientKey) // the network the login was parked from is not known yet: most often this one
		b.Run()
		l, err = read.Get()
	}
	if errors.Is(err, store.ErrNotFound) {
		return Login{}, newErr(ErrNotFound, "this sign-in does not exist or has expired")
	}
	if err != nil {
		return Login{}, internal("get login", err)
	}
	if secret == "" || subtle.ConstantTimeCompare([]byte(BrowserSecret(secret)), []byte(l.BrowserHash)) != 1 {
		return Login{}, newErr(ErrForbidden, "this sign-in was started in another browser")
	}
	return l, nil
}

// Identify takes the email typed in the browser of login l and moves the login to Pending with a two-digit
// number that none of the user's other open sign-ins shows, then pushes a challenge to every active device
// of the user. Email submissions are limited per client network.
//
// No account probing: an unknown email, a suspended user and a user without a phone get the very same
// outcome as an enrolled user — a number to match, under the same limits — except that nothing is pushed
// and nothing can approve it (Login.Decoy); the login expires. Only a request that named another user fails
// at once (the application said who must sign in).
//
// The limits (pending challenges, pushes per hour, cool-downs, pauses) are counted per user and client
// network (Login.Network), under per-user ceilings; see Limits.
//
// l is the login as the caller read it through GetLogin (which proved the browser); it is not read again.
func (s *Logins) Identify(ctx context.Context, l Login, rawEmail, clientKey string) (Login, error) {
	return s.IdentifyPrefetched(ctx, l, s.PrefetchIdentify(rawEmail, clientKey))
}

// IdentifyPrefetch is what the email step reads in one round trip — the attempt counted against the client's
// limit, and the facts about the user the email names (identifyFacts) — queued beside the read of the login
// itself (GetWith), which saves the step a round trip. The facts are read for the client's network: a login
// parked from another network has them read again for it. Made by PrefetchIdentify, used by IdentifyPrefetched.
type IdentifyPrefetch struct {
	s                *Logins
	email, clientKey string
	emailErr         error
	net              string                        // the network the facts were read for
	hit              *store.Result[store.HitCount] // nil until queued
	facts            *identifyFacts                // nil for an email that does not parse
}

// PrefetchIdentify is the IdentifyPrefetch of rawEmail, as typed in a browser of client network clientKey.
func (s *Logins) PrefetchIdentify(rawEmail, clientKey string) *IdentifyPrefetch {
	email, err := NormalizeEmail(rawEmail)
	return &IdentifyPrefetch{s: s, email: email, emailErr: err, clientKey: clientKey}
}

// queue queues the reads in b, the facts for a login of network net.
func (p *IdentifyPrefetch) queue(b *store.Batch, net string) {
	p.net, p.hit = net, p.s.st.HitIn(b, identifyKey(p.clientKey), time.Minute)
	if p.emailErr == nil {
		p.facts = p.s.queueIdentifyFacts(b, p.email, net)
	}
}

// IdentifyPrefetched is Identify with the email step's reads made beside the login's (GetWith), or made now
// when they were not.
func (s *Logins) IdentifyPrefetched(ctx context.Context, l Login, pre *IdentifyPrefetch) (Login, error) {
	if l.Current(s.now()) != StateIdentify {
		return l, nil // already past this step: show it as it stands
	}
	net := l.Network
	if net == "" {
		net = pre.clientKey
	}
	email, emailErr := pre.email, pre.emailErr
	switch {
	case pre.hit == nil: // one round trip reads everything the decision needs, and counts the attempt
		b := s.st.Batch(ctx)
		pre.queue(b, net)
		b.Run()
	case pre.facts != nil && net != pre.net: // read for another network than the login's: read again for its own
		b := s.st.Batch(ctx)
		pre.net, pre.facts = net, s.queueIdentifyFacts(b, email, net)
		b.Run()
	}
	facts := pre.facts
	h, err := pre.hit.Get()
	if err != nil {
		return Login{}, internal("rate limit", err)
	}
	if h.Count > s.cfg.IdentifyLimit {
		return Login{}, &Error{Code: ErrRateLimited.Code, Message: "Too many attempts from this network. Try again in " + roundUp(h.ResetIn) + "."}
	}
	if emailErr != nil {
		return Login{}, emailErr
	}
	in := &identifying{s: s, ctx: ctx, l: l, email: email, net: net}
	if l.Subject.Email != "" && email != l.Subject.Email {
		s.log.Info("login refused: not the user the application asked for", "login", l.ID, "email", email, "asked_for", l.Subject.Email)
		return in.fail(ReasonSubjectMismatch)
	}
	if ok, err := s.mayUse(ctx, l.AppID, facts); err != nil {
		return Login{}, err
	} else if !ok {
		s.log.Info("login refused: not in the application's allowed groups", "login", l.ID, "email", email, "app", l.AppID)
		return in.fail(ReasonNotAllowed)
	}
	devs, why, err := facts.reachable()
	if err != nil {
		return Login{}, err
	}
	p, pending, ok, err := s.checkPushAllowed(ctx, email, net, facts)
	if err != nil {
		return Login{}, err
	}
	if !ok {
		return in.pause(p)
	}
	return in.open(devs, why, pending)
}

// identifying is one submission of the email step: the login as read, and the address and network it is
// for, with the ways it can leave the identify step.
type identifying struct {
	s          *Logins
	ctx        context.Context
	l          Login
	email, net string
}

// leave moves the login out of the identify step (set says how), with also in the same write, unless a
// concurrent submission already did.
func (in *identifying) leave(also store.Effects, set func(cur *Login, now time.Time)) (Login, error) {
	return in.s.transition(in.ctx, in.l.ID, &in.l, also, func(cur Login, now time.Time) (Login, error) {
		if cur.Current(now) != StateIdentify {
			return cur, errUnchanged
		}
		cur.Email, cur.Network = in.email, in.net
		set(&cur, now)
		return cur, nil
	})
}

// fail ends the login at once, for reason, without a push.
func (in *identifying) fail(reason string) (Login, error) {
	return in.leave(store.Effects{}, func(cur *Login, now time.Time) { cur.State, cur.Reason, cur.DecidedAt = StateFailed, reason, now })
}

// pause ends the login without a push: pushes to the user from this network are paused (p says why, until
// when).
func (in *identifying) pause(p Pause) (Login, error) {
	in.s.log.Warn("login not pushed: pushes paused", "login", in.l.ID, "email", in.email, "network", in.net, "reason", p.Reason, "until", p.Until)
	return in.leave(store.Effects{}, func(cur *Login, now time.Time) {
		cur.State, cur.Reason, cur.PausedUntil, cur.DecidedAt = StatePaused, p.Reason, p.Until, now
	})
}

// open moves the login to Pending with a number that none of the user's open sign-ins (pending) shows, and
// pushes the challenge to devs when the account can be asked (why is empty; else the login is a decoy, and
// why says, for the record, why the account cannot be asked).
func (in *identifying) open(devs []Device, why string, pending []Login) (Login, error) {
	s, email, net := in.s, in.email, in.net
	reachable := why == ""
	ids := make([]string, len(devs))
	for i, d := range devs {
		ids[i] = d.ID
	}
	used := make(map[int]bool, len(pending))
	for _, o := range pending {
		used[o.Number] = true
	}
	lim := s.cfg.Limits
	for range maxNumberDraws {
		number, err := s.drawNumber(used)
		if err != nil {
			return Login{}, internal("draw number", err)
		}
		// The challenge joins the user's indexes, under their caps, and the phones' long-polls hear of it, in
		// the same write: the limits hold against submissions racing this one, and the number index (capped
		// at one) keeps the number unique among the user's open sign-ins.
		also := store.Effects{
			AddTo:    []string{pendingIndex(email), pendingNetIndex(email, net), numberIndex(email, number)},
			Caps:     []int{lim.MaxPendingPerUser, lim.MaxPending, 1},
			IndexTTL: s.cfg.LoginTTL + loginGrace,
		}
		// The pushes are counted with this write where one script can (decoys too, so that a limit never
		// tells an account that cannot be asked from one that can); elsewhere checkPushAllowed counted them.
		inWrite := s.pushesCountedInWrite()
		if inWrite {
			also.Hits = s.pushHits(email, net)
		}
		if reachable {
			also.Publish = []store.Message{{Channel: UserChannel(email), Payload: "changed"}}
		}
		next, err := in.leave(also, func(cur *Login, _ time.Time) {
			cur.State, cur.Number, cur.Devices, cur.Decoy, cur.Reason = StatePending, number, ids, !reachable, why
		})
		var full *store.IndexFullError
		var limited *store.LimitError
		switch {
		case errors.As(err, &limited): // nothing written, nothing counted
			return in.pause(Pause{Reason: PauseHourly, Until: s.now().Add(limited.ResetIn)})
		case errors.As(err, &full) && full.Index == numberIndex(email, number):
			// Drawn by a submission racing this one, or approved by number within answerRepeatWindow (it
			// lingers, see answer): draw again.
			used[number] = true
			continue
		case errors.As(err, &full):
			if !inWrite { // counted before: the push does not go
				s.giveBackHit(in.ctx, hourKey(email, net))
				s.giveBackHit(in.ctx, hourKey(email, ""))
			}
			return in.pause(Pause{Reason: PauseTooPending, Until: s.now().Add(s.cfg.LoginTTL)})
		case err != nil || next.State != StatePending || next.Number != number:
			return next, err
		}
		if reachable {
			s.pushChallenge(next, devs)
		} else {
			s.log.Info("login waits without a push: the account cannot be asked", "login", next.ID, "email", email)
		}
		return next, nil
	}
	return Login{}, internal("draw number", errors.New("no free number after several draws"))
}

// maxNumberDraws bounds Identify's draws of a number when the ones it drew are taken: by racing submissions,
// or by the user's approvals by number of the last answerRepeatWindow, which its read of the open sign-ins
// does not show (at most 30 with the default limits on pushes: all 16 draws meet one of them in fewer than
// one in 10^6 sign-ins).
const maxNumberDraws = 16

// identifyFacts are the reads Identify queues in one batch: the user, their devices, their open challenges
// and any pause on pushes to them from the client's network.
type identifyFacts struct {
	user    *store.Result[User]
	devices *store.Result[[]Device]
	pending *store.Result[[]Login]
	pause   *store.Result[string]
}

func (s *core) queueIdentifyFacts(b *store.Batch, email, net string) *identifyFacts {
	return &identifyFacts{
		user:    s.users.GetIn(b, email),
		devices: s.devices.ListIndexIn(b, userIndex(email)),
		pending: s.logins.ListIndexIn(b, pendingIndex(email)),
		pause:   s.st.GetValueIn(b, pauseKey(email, net)),
	}
}

// mayUse reports whether the user of facts may use application appID: every user when it has no allowed
// groups; else an active user in one of them. An unknown email may not: for such an application the page
// says "not allowed" to every address outside its groups, known or not.
//
// A console login (ConsoleApp) is open to every address here: whether the user is an administrator is told only
// after their phone approved (Console.SignIn), so the page cannot be used to learn who is one.
func (s *core) mayUse(ctx context.Context, appID string, facts *identifyFacts) (bool, error) {
	if appID == ConsoleApp {
		return true, nil
	}
	app, err := s.svc.Apps.Get(ctx, appID)
	if err != nil {
		return false, err
	}
	if len(app.AllowedGroups) == 0 {
		return true, nil
	}
	u, err := facts.user.Get()
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, internal("get user", err)
	}
	return u.Status == UserActive && app.Allowed(u), nil
}

// reachable returns the user's devices, sorted, and whether the user can be asked at all: the account
// exists, is active and has a phone.
//
// When it cannot, why says so (ReasonUnknownUser, ReasonSuspended or ReasonNoDevice), for the record only:
// the browser is shown the same page whatever the reason (no account probing).
func (f *identifyFacts) reachable() (devs []Device, why string, err error) {
	u, err := f.user.Get()
	if errors.Is(err, store.ErrNotFound) {
		return nil, ReasonUnknownUser, nil
	}
	if err != nil {
		return nil, "", internal("get user", err)
	}
	if devs, err = f.devices.Get(); err != nil {
		return nil, "", internal("list devices", err)
	}
	switch {
	case u.Status != UserActive:
		return nil, ReasonSuspended, nil
	case len(devs) == 0:
		return nil, ReasonNoDevice, nil
	}
	sortDevices(devs)
	return devs, "", nil
}

// ChangeEmail takes login l, waiting for the phone (or paused), back to the email step, so that a mistyped
// address is put right by the person who typed it rather than by a five-minute wait. The challenge is
// withdrawn in the same write: it leaves the user's indexes and the phones hear of it. A login goes back at
// most maxEmailChanges times.
//
// l is the login as the caller read it through GetLogin (which proved the browser).
func (s *Logins) ChangeEmail(ctx context.Context, l Login) (Login, error) {
	st := l.Current(s.now())
	if st != StatePending && st != StatePaused {
		return l, nil // nothing to change: show it as it stands
	}
	if l.Changes >= maxEmailChanges {
		return Login{}, newErr(ErrConflict, "The address was changed too often for this sign-in. Go back to the application and sign in again.")
	}
	var also store.Effects
	if l.State == StatePending {
		also = store.Effects{RemoveFrom: openIndexes(l)}
		if !l.Decoy {
			also.Publish = []store.Message{{Channel: UserChannel(l.Email), Payload: "changed"}}
		}
	}
	return s.transition(ctx, l.ID, &l, also, func(cur Login, now time.Time) (Login, error) {
		if st := cur.Current(now); st != StatePending && st != StatePaused {
			return cur, errUnchanged
		}
		if cur.Number != l.Number || cur.Email != l.Email {
			return cur, errUnchanged // another change came first; its indexes are not this one's
		}
		cur.State, cur.Reason, cur.Email, cur.Number, cur.Devices, cur.Decoy = StateIdentify, "", "", 0, nil, false
		cur.PausedUntil, cur.DecidedAt = time.Time{}, time.Time{}
		cur.Changes++
		return cur, nil
	})
}

// maxEmailChanges bounds how often one login goes back to the email step.
const maxEmailChanges = 5

func roundUp(d time.Duration) string {
	if d < time.Minute {
		return (d.Round(time.Second) + time.Second).String()
	}
	return d.Round(time.Minute).String()
}

// twoDigit reports whether n is a number a browser can show: 10 to 99, as drawNumber draws them.
func twoDigit(n int) bool { return n >= 10 && n <= 99 }

// drawNumber draws a two-digit number (10–99) that is not in used, from the service's random source.
func (s *core) drawNumber(used map[int]bool) (int, error) {
	free := make([]int, 0, 90)
	for n := 10; n <= 99; n++ {
		if !used[n] {
			free = append(free, n)
		}
	}
	if len(free) == 0 {
		return 0, errors.New("every number is in use")
	}
	i, err := rand.Int(s.cfg.Rand, big.NewInt(int64(len(free))))
	if err != nil {
		return 0, err
	}
	return free[i.Int64()], nil
}

// errUnchanged tells transition that fn decided to leave the login as it is.
var errUnchanged = errors.New("authn: unchanged")

// transition applies fn to login id atomically and, in the same round trip, announces the change to the
// browser waiting on it and carries out also. seen, when not nil, is the login as the caller read it: if it
// is still current, the whole transition is that one round trip.
func (s *core) transition(ctx context.Context, id string, seen *Login, also store.Effects, fn func(cur Login, now time.Time) (Login, error)) (Login, error) {
	var unchanged Login
	also.Announce = announceLogin
	l, err := s.logins.Change(ctx, id, seen, func(cur Login) (Login, error) {
		next, err := fn(cur, s.now())
		if errors.Is(err, errUnchanged) {
			unchanged = cur
		}
		return next, err
	}, also)
	switch {
	case errors.Is(err, errUnchanged):
		return unchanged, nil
	case errors.Is(err, store.ErrIndexFull), errors.Is(err, store.ErrRequiredMissing):
		return Login{}, err // a *store.IndexFullError or *store.MissingError: the caller tells which
	case errors.Is(err, store.ErrNotFound):
		return Login{}, newErr(ErrNotFound, "this sign-in does not exist or has expired")
	case err != nil:
		return Login{}, internal("update login", err)
	}
	return l, nil
}

// LoginChannel is the pub/sub channel announcing changes of login id. Each message is a LoginChange.
func LoginChannel(id string) string { return "login:" + id }

// announceLogin is the message on the login's channel announcing what a transition writes (store.Effects).
func announceLogin(written any) []store.Message {
	l := written.(Login)
	return []store.Message{{Channel: LoginChannel(l.ID), Payload: ChangeOf(l).String()}}
}

// LoginChange is what a message on LoginChannel says of the login as written: its state and expiry, which is
// all a page waiting on it shows, so that it need not read the login again, and when it was decided. Any other
// message ("" when the store's connection was re-established) only says "read it again".
type LoginChange struct {
	State     LoginState
	ExpiresAt time.Time
	// DecidedAt is when the login was decided (Login.DecidedAt, by the clock of the server that decided it),
	// to the millisecond; zero while it waits.
	DecidedAt time.Time
}

// ChangeOf is what a message on LoginChannel says of l.
func ChangeOf(l Login) LoginChange {
	return LoginChange{State: l.State, ExpiresAt: l.ExpiresAt, DecidedAt: l.DecidedAt}
}

// Current is the login's state at now, as Login.Current.
func (c LoginChange) Current(now time.Time) LoginState {
	return Login{State: c.State, ExpiresAt: c.ExpiresAt}.Current(now)
}

// String is the message: "state <state> <expiry>", and " <decided>" once decided (Unix milliseconds).
func (c LoginChange) String() string {
	msg := "state " + string(c.State) + " " + strconv.FormatInt(c.ExpiresAt.UnixMilli(), 10)
	if !c.DecidedAt.IsZero() {
		msg += " " + strconv.FormatInt(c.DecidedAt.UnixMilli(), 10)
	}
	return msg
}

// ParseLoginChange reads a message of LoginChannel; ok is false for one that carries no change. A message
// without the decision's time (as servers before it wrote them) reads with DecidedAt zero.
func ParseLoginChange(msg string) (c LoginChange, ok bool) {
	f := strings.Fields(msg)
	if len(f) < 3 || len(f) > 4 || f[0] != "state" || f[1] == "" {
		return LoginChange{}, false
	}
	ms, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		return LoginChange{}, false
	}
	c = LoginChange{State: LoginState(f[1]), ExpiresAt: time.UnixMilli(ms).UTC()}
	if len(f) == 4 {
		decided, err := strconv.ParseInt(f[3], 10, 64)
		if err != nil {
			return LoginChange{}, false
		}
		c.DecidedAt = time.UnixMilli(decided).UTC()
	}
	return c, true
}

// UserChannel is the pub/sub channel announcing new challenges for email.
func UserChannel(email string) string { return "challenges:" + email }

// pushChallenge sends the challenge to devs in the background, for at most the login's remaining life.
// A token FCM refuses as dead is marked so; the device then pulls.
func (s *core) pushChallenge(l Login, devs []Device) {
	var msgs []push.Message
	var targets []Device
	ttl := l.ExpiresAt.Sub(s.now())
	for _, d := range devs {
		if d.FCMToken == "" || d.PushStatus == PushDead {
			continue
		}
		msgs = append(msgs, push.Message{
			Token:       d.FCMToken,
			ChallengeID: l.ID,
			Title:       "Sign-in request",
			Body:        "Open Passport to review a sign-in.",
			TTL:         ttl,
		})
		targets = append(targets, d)
	}
	if len(msgs) == 0 {
		return
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		ctx, cancel := context.WithDeadline(s.bgCtx, l.ExpiresAt)
		defer cancel()
		for i, err := range push.FanOut(ctx, s.pusher, msgs) {
			switch {
			case err == nil:
			case errors.Is(err, push.ErrTokenDead):
				s.markPushDead(context.WithoutCancel(ctx), targets[i].ID, targets[i].FCMToken)
				s.log.Info("push token dead; device will pull", "device", targets[i].ID)
			default:
				s.log.Warn("push failed; device can pull", "device", targets[i].ID, "login", l.ID, "err", err)
			}
		}
	}()
}

// Decision is the phone's answer.
type Decision struct {
	Approve bool
	Number  int  // the number the user typed; checked when approving
	Report  bool // deny and report "this wasn't me"
	// ContextHash is the hash of the context the phone showed (ChallengeContext.Hash), when it sent one: an
	// answer whose hash is not the one of the login as the server holds it is refused (ErrContextChanged).
	ContextHash string
	// Receipt is the phone's signed answer as verified (the compact JWS of its device proof) and ReceiptBody
	// the exact body it signed; both are kept with the login (Login.Receipt).
	Receipt, ReceiptBody string
	// Prefetched is the sign-ins showing Number to the device's user, as read with the phone's device proof
	// (Logins.PrefetchNumber); nil, or read for another number: ApproveSigned reads them itself.
	Prefetched *NumberPrefetch

	byNumber bool // the number selected the login (ApproveSigned): the login keeps the number a while (answer)
}

// answerRepeatWindow is how long after a device's approval by number the same approval, sent again, is told
// the approval it made (ApproveSigned): a phone whose answer never came back (a timeout, a failover) sends
// its request again, and the write it asked for may have landed.
const answerRepeatWindow = time.Minute

// repeats reports whether dec, from device d, is the answer l already holds from that device: the phone sent
// it again, not having heard the first time. It is told the answer it made; nothing is written again.
func (l Login) repeats(d Device, dec Decision) bool {
	if l.AnsweredBy != d.ID || l.DecidedAt.IsZero() {
		return false
	}
	switch {
	case dec.Report:
		return l.Reason == ReasonReported
	case !dec.Approve:
		return l.Reason == ReasonDenied
	case dec.Number != l.Number:
		return l.Reason == ReasonNumberMismatch
	default:
		return l.State == StateApproved || l.State == StateAnswered
	}
}

// Challenges returns the pending challenges of the device's user, oldest first.
func (s *Logins) Challenges(ctx context.Context, d Device) ([]Login, error) {
	ls, err := s.sweepIgnored(ctx, d.Email)
	if err != nil {
		return nil, err
	}
	out := ls[:0]
	for _, l := range ls {
		if !l.Decoy {
			out = append(out, l)
		}
	}
	return out, nil
}

// Challenge returns challenge id if it belongs to the device's user.
func (s *Logins) Challenge(ctx context.Context, d Device, id string) (Login, error) {
	if !plausibleID(id) {
		return Login{}, errNoChallenge
	}
	l, err := s.logins.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !l.challengeOf(d)) {
		return Login{}, errNoChallenge
	}
	return l, internal("get challenge", err)
}

var errNoChallenge = newErr(ErrNotFound, "challenge not found")

// challengeOf reports whether l is a challenge the user of device d may see and answer.
func (l Login) challengeOf(d Device) bool { return l.Email != "" && l.Email == d.Email && !l.Decoy }

// Answer records the device's decision on challenge id exactly once: the first valid answer from any of the
// user's devices wins; later ones, and answers after expiry, get ErrChallengeClosed — except the same answer
// from the device that made it, sent again because its answer never came back, which is told that answer
// (nothing is written again). Approving with a number
// that is not the one shown in that login's browser denies the login and returns ErrNumberMismatch. To
// approve the sign-in whose browser shows a number, whichever it is, see ApproveByNumber.
func (s *Logins) Answer(ctx context.Context, d Device, id string, dec Decision) (Login, error) {
	if !plausibleID(id) {
		return Login{}, errNoChallenge
	}
	l, err := s.logins.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !l.challengeOf(d)) {
		return Login{}, errNoChallenge
	}
	if err != nil {
		return Login{}, internal("get challenge", err)
	}
	return s.answer(ctx, d, l, dec)
}

// ApproveByNumber approves the one open sign-in of the device's user whose browser shows number: the number
// the person read in the browser selects the login, so an approval can only ever complete the login that
// shows it, never another open login of the same user (a request planted by someone who knows the user's
// email shows another number). Numbers are unique among a user's open sign-ins (Identify). A number that no
// open sign-in of the user shows completes nothing: ErrNoMatchingChallenge — unless this device approved a
// sign-in by that number within answerRepeatWindow: then the phone is sending that approval again, not having
// heard its answer, and is told the approval it made.
//
// That cannot be mistaken for the approval of another sign-in: a number approved by number stays taken for
// answerRepeatWindow (it lingers in the user's number index, see answer), so no sign-in of the user draws it
// in between — not the user's next one, not one a stranger planted with the user's email.
func (s *Logins) ApproveByNumber(ctx context.Context, d Device, number int) (Login, error) {
	return s.ApproveSigned(ctx, d, Decision{Number: number})
}

// ApproveSigned is ApproveByNumber with the rest of the phone's signed answer: dec.Number selects the
// sign-in; dec.ContextHash, when set, must be the hash of its context — of the open sign-in showing the
// number, or of the one this device approved by it within answerRepeatWindow (then it is told that
// approval); else ErrContextChanged, and nothing is answered. dec.Receipt is kept.
func (s *Logins) ApproveSigned(ctx context.Context, d Device, dec Decision) (Login, error) {
	number := dec.Number
	if !twoDigit(number) {
		return Login{}, newErr(ErrInvalid, "number must be the two-digit number shown in the browser")
	}
	ls, err := dec.Prefetched.read(d, number)
	if errors.Is(err, errNotPrefetched) {
		ls, err = s.logins.ListIndex(ctx, numberIndex(d.Email, number))
	}
	if err != nil {
		return Login{}, internal("find challenge", err)
	}
	now := s.now()
	var match []Login
	for _, l := range ls {
		if l.challengeOf(d) && l.Number == number && l.Current(now) == StatePending {
			match = append(match, l)
		}
	}
	dec.Approve, dec.Number, dec.Report, dec.byNumber = true, number, false, true
	switch {
	case len(match) > 1: // cannot happen (the index is capped at one): then approve none
		return Login{}, errNoMatchingChallenge
	case len(match) == 1 && (dec.ContextHash == "" || s.contextOf(ctx, match[0]).hashes(dec.ContextHash)):
		return s.answer(ctx, d, match[0], dec)
	}
	// No open sign-in shows the number, or the one showing it is not the one the phone showed: the sign-in
	// this device approved by the number, lingering in its index, may be what the phone sends again.
	if l, ok := s.repeatIn(ctx, ls, d, dec); ok {
		return l, nil
	}
	if len(match) == 1 {
		return Login{}, errContextChanged
	}
	return Login{}, errNoMatchingChallenge
}

// NumberPrefetch reads, beside the claim of a phone's device proof, the sign-ins of its user that show a
// number: the first read of an approval by number (ApproveSigned), made without a round trip of its own. Set
// it as the proof's ProofRequest.Prefetch, then as the approval's Decision.Prefetched.
type NumberPrefetch struct {
	s      *Logins
	number int
	email  string
	ls     *store.Result[[]Login]
}

// PrefetchNumber is the NumberPrefetch of number; nil for a number no browser shows (ApproveSigned refuses it).
func (s *Logins) PrefetchNumber(number int) *NumberPrefetch {
	if !twoDigit(number) {
		return nil
	}
	return &NumberPrefetch{s: s, number: number}
}

func (p *NumberPrefetch) queue(b *store.Batch, d Device) {
	p.email, p.ls = d.Email, p.s.logins.ListIndexIn(b, numberIndex(d.Email, p.number))
}

// errNotPrefetched: the prefetch was not made, or not for this user and number.
var errNotPrefetched = errors.New("authn: not prefetched")

// read returns the sign-ins in the number index of device d's user for number, as prefetched.
func (p *NumberPrefetch) read(d Device, number int) ([]Login, error) {
	if p == nil || p.ls == nil || p.email != d.Email || p.number != number {
		return nil, errNotPrefetched
	}
	return p.ls.Get()
}

var (
	errNoMatchingChallenge = newErr(ErrNoMatchingChallenge, "no open sign-in request of this account shows this number")
	errContextChanged      = newErr(ErrContextChanged, "this sign-in is not the one the phone showed (its context changed); nothing was answered")
	errNumberMismatch      = newErr(ErrNumberMismatch, "the number does not match the one shown in the browser; this sign-in was denied")
)

// repeatIn finds, among ls (the sign-ins in the number index of dec.Number), the one device d approved by that
// number within answerRepeatWindow and whose context is dec's, when dec names one: the phone is sending that
// approval again. It is told that approval, as the first answer would have told it.
func (s *Logins) repeatIn(ctx context.Context, ls []Login, d Device, dec Decision) (Login, bool) {
	now := s.now()
	for _, l := range ls {
		if !l.challengeOf(d) || !l.repeats(d, dec) || now.Sub(l.DecidedAt) > answerRepeatWindow {
			continue
		}
		if dec.ContextHash != "" && !s.contextOf(ctx, l).hashes(dec.ContextHash) {
			continue
		}
		s.log.Info("challenge answer repeated", "login", l.ID, "device", d.ID, "state", l.State)
		return l, true
	}
	return Login{}, false
}

// answer records dec on l, the challenge as just read, exactly once (see Answer).
func (s *core) answer(ctx context.Context, d Device, l Login, dec Decision) (Login, error) {
	// The challenge leaves the user's indexes, and the phones' long-polls hear of it, in the same write. An
	// approval by number keeps the number for answerRepeatWindow: the sign-in lingers in its number index,
	// where the phone's resending finds it and no other sign-in of the user can draw the number meanwhile.
	answered := store.Effects{RemoveFrom: openIndexes(l), Publish: []store.Message{{Channel: UserChannel(d.Email), Payload: "changed"}}}
	if dec.byNumber {
		answered.RemoveFrom = waitingIndexes(l)
		answered.Linger, answered.LingerFor = []string{numberIndex(l.Email, l.Number)}, answerRepeatWindow
	}
	var appName string
	if dec.ContextHash != "" {
		appName = s.contextOf(ctx, l).AppName // the application of a login never changes
	}
	// The phone is told its answer was recorded only once a replica has it too (where the store waits for
	// replicas: Sentinel): a failover right after cannot lose an approval the phone reported as done.
	var repeated bool
	l, err := s.transition(store.WithReplicaAck(ctx), l.ID, &l, answered, func(cur Login, now time.Time) (Login, error) {
		repeated = false
		if !cur.challengeOf(d) {
			return cur, errNoChallenge
		}
		shown := dec.ContextHash == "" || challengeContext(cur, appName).hashes(dec.ContextHash)
		if cur.Current(now) != StatePending {
			if shown && cur.repeats(d, dec) {
				repeated = true
				return cur, errUnchanged
			}
			return cur, newErr(ErrChallengeClosed, "this sign-in request was already answered or has expired")
		}
		if !shown {
			return cur, errContextChanged
		}
		cur.AnsweredBy, cur.DecidedAt = d.ID, now
		cur.Receipt, cur.ReceiptBody = dec.Receipt, dec.ReceiptBody
		switch {
		case dec.Report:
			cur.State, cur.Reason = StateDenied, ReasonReported
		case !dec.Approve:
			cur.State, cur.Reason = StateDenied, ReasonDenied
		case subtle.ConstantTimeEq(int32(dec.Number), int32(cur.Number)) != 1:
			cur.State, cur.Reason = StateDenied, ReasonNumberMismatch
		default:
			cur.State = StateApproved
		}
		return cur, nil
	})
	if err != nil {
		return Login{}, err
	}
	if repeated {
		s.log.Info("challenge answer repeated", "login", l.ID, "device", d.ID, "state", l.State, "reason", l.Reason)
		if l.Reason == ReasonNumberMismatch {
			return l, errNumberMismatch
		}
		return l, nil
	}
	// Refusals count against the network that started the login, not against the user everywhere: a
	// stranger's planted requests, denied or reported, pause the stranger's network.
	switch l.Reason {
	case ReasonReported:
		s.pausePushes(ctx, d.Email, l.Network, PauseReported, s.cfg.Limits.ReportPause)
	case ReasonDenied, ReasonNumberMismatch:
		s.noteRefused(ctx, d.Email, l.Network)
	}
	s.log.Info("challenge answered", "login", l.ID, "device", d.ID, "state", l.State, "reason", l.Reason)
	if l.Reason == ReasonReported {
		s.log.Warn("user reported a sign-in they did not start", "login", l.ID, "email", d.Email, "ip", l.ClientIP, "user_agent", l.UserAgent, "network", l.Network)
	}
	if l.Reason == ReasonNumberMismatch {
		return l, errNumberMismatch
	}
	return l, nil
}

// Respond makes the login's Response exactly once: for an approved login, build is called (it may be called
// more than once under a race, but only one result is ever stored and returned) and the login moves to
// Answered; an answered login returns the stored Response again while its user is active and its session
// lives (else ErrForbidden). Other states return ErrConflict.
//
// A login that did not come from a session opens one: tell and build see its ID in Login.SessionID, and the
// caller that stored the Response gets the session cookie value to hand the browser (others get ""). What
// tell says the Response tells the app (the SessionApp: its NameID, which the login's email decides) is
// recorded in the session, for single logout, and handed to build, which signs the Response for the user.
//
// The phone that approved the login must still be enrolled when the Response is stored, and its user active
// when the Response is made. On one server the session is written and the phone and the user read in one
// round trip before the Response is signed, and the Response's compare-and-swap requires the phone's record
// (a phone removed while the Response was signed refuses the login); on a Cluster, whose scripts touch one
// slot, the user is read first and the session written and the phone read again once the Response is signed.
//
// l is the login as the caller read it through GetLogin (which proved the browser) or ParkFromSession; it
// is not read again.
func (s *Logins) Respond(ctx context.Context, l Login, tell func(Login) (SessionApp, error),
	build func(Login, User, SessionApp) ([]byte, error)) (Login, string, error) {
	if l.State == StateAnswered {
		return l, "", s.stillSignedIn(ctx, l)
	}
	if l.State != StateApproved {
		return Login{}, "", newErr(ErrConflict, "this sign-in is not approved")
	}
	stored := l // as read; l gets the session to build with
	if l.SessionID != "" {
		return s.respondInSession(ctx, stored, tell, build)
	}
	sess, cookie := s.newSession(l)
	l.SessionID = sess.ID
	told, err := tell(l)
	if err != nil {
		return Login{}, "", err
	}
	sess.Apps = []SessionApp{told}
	oneServer := s.logins.InOrder() && s.sessions.InOrder() && s.devices.InOrder() && s.users.InOrder()
	var u User
	var also store.Effects
	if oneServer {
		if u, err = s.openSession(ctx, sess, l.AnsweredBy, true); err != nil {
			return Login{}, "", err
		}
		also.Require = []store.Ref{s.devices.Ref(l.AnsweredBy)}
	} else if u, err = s.activeUser(ctx, l.Email); err != nil {
		return Login{}, "", err
	}
	resp, err := build(l, u, told)
	if err != nil {
		if oneServer {
			s.dropSession(ctx, sess.ID, "drop the session of a Response not made")
		}
		return Login{}, "", err
	}
	if !oneServer {
		if _, err := s.openSession(ctx, sess, l.AnsweredBy, false); err != nil {
			return Login{}, "", err
		}
	}
	answered, won, err := s.storeResponse(ctx, stored, l.SessionID, resp, also)
	if errors.Is(err, store.ErrRequiredMissing) {
		s.dropSession(ctx, sess.ID, "drop the session of a removed phone")
		return Login{}, "", newErr(ErrForbidden, "the phone that approved this sign-in was removed")
	}
	if err != nil {
		// The write may have landed although its answer was lost: then this session is the login's.
		if cur, gerr := s.logins.Get(context.WithoutCancel(ctx), l.ID); gerr == nil && cur.State == StateAnswered && cur.SessionID == sess.ID {
			return cur, cookie, nil
		}
	}
	if err != nil || !won {
		s.dropSession(ctx, sess.ID, "drop the session of a Response not stored")
		return answered, "", err
	}
	return answered, cookie, nil
}

// activeUser returns the user of email (normalized) if active: ErrNotFound for none, ErrForbidden for a
// suspended one.
func (s *Logins) activeUser(ctx context.Context, email string) (User, error) {
	return activeOf(s.users.Get(ctx, email))
}

// activeOf is what a read of the users table (u, err) says of a login's user: u if active, else ErrNotFound
// for none, ErrForbidden for a suspended one, or the store's failure.
func activeOf(u User, err error) (User, error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return User{}, newErr(ErrNotFound, "user not found")
	case err != nil:
		return User{}, internal("get user", err)
	case u.Status != UserActive:
		return User{}, newErr(ErrForbidden, "this account is suspended")
	}
	return u, nil
}

// respondInSession is Respond for a login parked from an IdP session (ParkFromSession): the session exists,
// so the user is read first and the application is added to the session once the Response is stored.
func (s *Logins) respondInSession(ctx context.Context, l Login, tell func(Login) (SessionApp, error),
	build func(Login, User, SessionApp) ([]byte, error)) (Login, string, error) {
	u, err := s.activeUser(ctx, l.Email)
	if err != nil {
		return Login{}, "", err
	}
	told, err := tell(l)
	if err != nil {
		return Login{}, "", err
	}
	resp, err := build(l, u, told)
	if err != nil {
		return Login{}, "", err
	}
	answered, won, err := s.storeResponse(ctx, l, l.SessionID, resp, store.Effects{})
	if err != nil || !won {
		return answered, "", err
	}
	return answered, "", s.svc.Sessions.RecordApp(ctx, answered.SessionID, told)
}

// openSession stores the IdP session a login opens, before the login points to it, so a reload never finds
// the login answered and its session missing. A login that opens a session must not outlive the removal of
// the phone that approved it (approver): Devices.Remove deletes the device and then ends its sessions, so
// reading the device once this session exists leaves no gap; nor, with withUser, the suspension or deletion
// of its user, which change the user and then end the user's sessions, so reading the user once this
// session exists leaves none either. Then the session is dropped again and the login refused; otherwise
// the user read (withUser) is returned.
//
// Where the store runs a batch in order (one server), the session's write and the reads go in one round
// trip, the write first; a write that ran after the batch (the server had lost its script) has them read
// again.
func (s *Logins) openSession(ctx context.Context, sess *Session, approver string, withUser bool) (User, error) {
	also := store.Effects{AddTo: []string{userIndex(sess.Email)}}
	var u User
	var uerr, derr error
	read := func() { // the reads, each in a round trip of its own
		_, derr = s.devices.Get(ctx, approver)
		if withUser {
			u, uerr = s.users.Get(ctx, sess.Email)
		}
	}
	if s.sessions.InOrder() && s.devices.InOrder() && s.users.InOrder() {
		b := s.st.Batch(ctx)
		created := s.sessions.CreateIn(b, sess.ID, *sess, s.sessionTTL(), also)
		dev := s.devices.GetIn(b, approver)
		var user *store.Result[User]
		if withUser {
			user = s.users.GetIn(b, sess.Email)
		}
		b.Run()
		inPlace, err := created.Get()
		if err != nil {
			return User{}, internal("create session", err)
		}
		if inPlace {
			_, derr = dev.Get()
			if withUser {
				u, uerr = user.Get()
			}
		} else {
			read() // the write ran after the batch's reads
		}
	} else {
		if err := s.sessions.CreateWith(ctx, sess.ID, *sess, s.sessionTTL(), also); err != nil {
			return User{}, internal("create session", err)
		}
		read()
	}
	var err error
	if withUser {
		u, err = activeOf(u, uerr)
	}
	if err == nil && errors.Is(derr, store.ErrNotFound) {
		err = newErr(ErrForbidden, "the phone that approved this sign-in was removed")
	} else if err == nil && derr != nil {
		err = internal("get device", derr)
	}
	if err != nil {
		s.dropSession(ctx, sess.ID, "drop the session of a sign-in refused")
		return User{}, err
	}
	return u, nil
}

// storeResponse moves approved login l (as read) to Answered with resp, in session sessionID, exactly once.
// won is false when another caller's Response was stored first (answered is then that login).
func (s *Logins) storeResponse(ctx context.Context, l Login, sessionID string, resp []byte, also store.Effects) (answered Login, won bool, err error) {
	answered, err = s.transition(ctx, l.ID, &l, also, func(cur Login, now time.Time) (Login, error) {
		won = false // fn may run again on the stored login after a lost race: only its last call counts
		if cur.State == StateAnswered {
			return cur, errUnchanged
		}
		if cur.State != StateApproved {
			return cur, newErr(ErrConflict, "this sign-in is not approved")
		}
		cur.State, cur.Response, cur.ResponseAt, cur.SessionID = StateAnswered, resp, now, sessionID
		// The receipt went into the audit log's login.approved event with the approval; an answered login
		// keeps its Response instead, within its 4 KiB.
		cur.Receipt, cur.ReceiptBody = "", ""
		won = true
		return cur, nil
	})
	return answered, won, err
}

// dropSession ends session id that a login did not keep, logging (not returning) a failure.
func (s *core) dropSession(ctx context.Context, id, why string) {
	if _, err := s.svc.Sessions.End(context.WithoutCancel(ctx), id); err != nil && !errors.Is(err, ErrNotFound) {
		s.log.Warn(why, "session", id, "err", err)
	}
}

// stillSignedIn checks, before an answered login's Response is shown again, that what it asserts still
// holds: the user is active and the IdP session it belongs to has not ended (logout, suspension, an admin,
// a revoked device). Otherwise a reload would hand out a valid Success for someone signed out.
func (s *core) stillSignedIn(ctx context.Context, l Login) error {
	b := s.st.Batch(ctx)
	user := s.users.GetIn(b, l.Email)
	var sess *store.Result[Session]
	if l.SessionID != "" {
		sess = s.sessions.GetIn(b, l.SessionID)
	}
	b.Run()
	ended := newErr(ErrForbidden, "this sign-in has ended; go back to the application and sign in again")
	u, err := user.Get()
	if errors.Is(err, store.ErrNotFound) || (err == nil && u.Status != UserActive) {
		return ended
	}
	if err != nil {
		return internal("get user", err)
	}
	if sess != nil {
		if _, err := sess.Get(); errors.Is(err, store.ErrNotFound) {
			return ended
		} else if err != nil {
			return internal("get session", err)
		}
	}
	return nil
}

// ConsumeRequestID remembers an AuthnRequest ID of app for ttl; a second use is refused (replay).
func (s *Logins) ConsumeRequestID(ctx context.Context, appID, requestID string, ttl time.Duration) error {
	ok, err := s.st.Claim(ctx, requestIDKey(appID, requestID), ttl)
	if err != nil {
		return internal("consume request id", err)
	}
	if !ok {
		return newErr(ErrConflict, "This sign-in request was already used. Go back to the application and sign in again.")
	}
	return nil
}
