package authn

import (
	"context"
	"crypto/subtle"
	"errors"
	"slices"
	"time"

	"github.com/winkk/passport/store"
)

// ConsoleApp is the application ID of a login whose target is the admin console rather than an application.
// Such a login is parked, identified, pushed, limited, answered on the phone and recorded like any other (the
// same state machine, the same decoys for accounts that cannot be asked); once approved it ends in a console
// session (Console.SignIn) instead of a Response. Generated IDs never hold '_', so it names no application.
const ConsoleApp = "_console"

// ReasonNotAdmin: the person approved a console sign-in on their phone, but the account is not an
// administrator (User.Roles lacks RoleAdmin). Only a real approval by that user's phone learns it.
const ReasonNotAdmin = "not_admin"

// The life of a console session, and how long a phone approval counts as fresh for the actions that ask for
// one (activating a signing key, deleting an application, revoking all of a user's phones).
const (
	ConsoleIdle     = 30 * time.Minute
	ConsoleLifetime = 8 * time.Hour
	StepUpWindow    = 5 * time.Minute
)

// consoleTouchEvery is how stale a console session's LastSeen may get before a request writes it again:
// the idle limit is counted to within this, without a write on every page.
const consoleTouchEvery = time.Minute

// ConsoleSession is an administrator signed in to the console from one browser.
type ConsoleSession struct {
	ID         string `json:"id"`
	Email      string `json:"email"`
	SecretHash string `json:"secret_hash"`
	// CSRF is the token every form of the session carries and every POST must bring back.
	CSRF string `json:"csrf"`
	// Device is the phone whose approval opened the session or last confirmed an action.
	Device    string    `json:"device,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	LastSeen  time.Time `json:"last_seen"`
	ExpiresAt time.Time `json:"expires_at"` // CreatedAt + ConsoleLifetime, whatever the activity
	// ApprovedAt is the last phone approval of this session: the sign-in, or a confirmation since.
	ApprovedAt time.Time `json:"approved_at"`
}

// Fresh reports whether the session's last phone approval is recent enough (StepUpWindow) for an action that
// asks for a fresh one.
func (s ConsoleSession) Fresh(now time.Time) bool {
	return !s.ApprovedAt.IsZero() && now.Sub(s.ApprovedAt) < StepUpWindow
}

// CheckCSRF reports whether token is the session's CSRF token (in constant time).
func (s ConsoleSession) CheckCSRF(token string) bool {
	return token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.CSRF)) == 1
}

// Console keeps the admin console's sign-ins and sessions.
type Console struct{ *core }

// Park admits and parks a login for the console (ConsoleApp), waiting for the person to identify: the same
// per-network limit as any login's (Logins.AdmitAndPark), bound to a fresh browser secret (returned, for the
// cookie).
func (s *Console) Park(ctx context.Context, in StartLogin) (Login, string, error) {
	in.AppID, in.RequestID = ConsoleApp, ""
	return s.svc.Logins.AdmitAndPark(ctx, in, 0)
}

var (
	errNotConsoleLogin = newErr(ErrNotFound, "this sign-in does not exist or has expired")
	errNotApproved     = newErr(ErrConflict, "this sign-in is not approved")
	// ErrNotAdmin is the refusal of a console sign-in approved by a user who is not an administrator.
	ErrNotAdmin = &Error{Code: ErrForbidden.Code, Message: "This account is not an administrator of Passport. Ask an administrator to give it the admin role."}
)

// SignIn ends console login l (as read through Logins.Get, which proved the browser), once approved: for an
// active administrator it opens a console session and returns it with the cookie value naming it; for anyone
// else the login fails (ReasonNotAdmin) and ErrNotAdmin is returned.
//
// With cur, the browser's live console session, the approval is a confirmation instead (step-up): it must be
// the same administrator's, and it refreshes cur.ApprovedAt; no new session or cookie is made.
//
// A login yields at most one session or confirmation: a second SignIn of the same login is ErrConflict.
func (s *Console) SignIn(ctx context.Context, l Login, cur *ConsoleSession) (ConsoleSession, string, error) {
	if l.AppID != ConsoleApp {
		return ConsoleSession{}, "", errNotConsoleLogin
	}
	if l.Current(s.now()) != StateApproved {
		return ConsoleSession{}, "", errNotApproved
	}
	u, err := s.svc.Users.Get(ctx, l.Email)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return ConsoleSession{}, "", err
	}
	if err != nil || u.Status != UserActive || !u.IsAdmin() || (cur != nil && cur.Email != l.Email) {
		s.log.Info("console sign-in refused: not an administrator", "login", l.ID, "email", l.Email)
		if _, err := s.finish(ctx, l, func(x *Login) { x.State, x.Reason = StateFailed, ReasonNotAdmin }); err != nil {
			return ConsoleSession{}, "", err
		}
		return ConsoleSession{}, "", ErrNotAdmin
	}
	now := s.now()
	if cur != nil {
		if _, err := s.finish(ctx, l, func(x *Login) { x.State, x.ResponseAt, x.SessionID = StateAnswered, now, cur.ID }); err != nil {
			return ConsoleSession{}, "", err
		}
		sess, err := s.consoleSessions.Update(ctx, cur.ID, func(old ConsoleSession) (ConsoleSession, error) {
			old.ApprovedAt, old.Device, old.LastSeen = l.DecidedAt, l.AnsweredBy, now
			return old, nil
		})
		if errors.Is(err, store.ErrNotFound) {
			return ConsoleSession{}, "", errNoConsoleSession
		}
		return sess, "", internal("confirm console session", err)
	}
	secret := s.randomID(20)
	sess := ConsoleSession{
		ID:         s.randomID(12),
		Email:      l.Email,
		SecretHash: BrowserSecret(secret),
		CSRF:       s.randomID(20),
		Device:     l.AnsweredBy,
		CreatedAt:  now,
		LastSeen:   now,
		ExpiresAt:  now.Add(ConsoleLifetime),
		ApprovedAt: l.DecidedAt,
	}
	if err := s.consoleSessions.Create(ctx, sess.ID, sess, ConsoleLifetime); err != nil {
		return ConsoleSession{}, "", internal("create console session", err)
	}
	if _, err := s.finish(ctx, l, func(x *Login) { x.State, x.ResponseAt, x.SessionID = StateAnswered, now, sess.ID }); err != nil {
		_ = s.consoleSessions.Delete(context.WithoutCancel(ctx), sess.ID)
		return ConsoleSession{}, "", err
	}
	s.log.Info("console session opened", "email", sess.Email, "session", sess.ID)
	return sess, sess.ID + "." + secret, nil
}

// finish moves approved console login l to its end (set says how), exactly once.
func (s *Console) finish(ctx context.Context, l Login, set func(*Login)) (Login, error) {
	return s.transition(ctx, l.ID, &l, store.Effects{}, func(cur Login, now time.Time) (Login, error) {
		if cur.Current(now) != StateApproved {
			return cur, errNotApproved
		}
		cur.DecidedAt = now
		set(&cur)
		return cur, nil
	})
}

var errNoConsoleSession = newErr(ErrNotFound, "no console session")

// Session returns the live console session a cookie names, for an active administrator, and counts the request
// as activity. Anything else — no cookie, a forged or ended session, idle for ConsoleIdle, older than
// ConsoleLifetime, a user suspended or no longer an administrator — is ErrNotFound.
func (s *Console) Session(ctx context.Context, cookie string) (ConsoleSession, error) {
	id, secret, ok := splitSessionCookie(cookie)
	if !ok || !plausibleID(id) {
		return ConsoleSession{}, errNoConsoleSession
	}
	sess, err := s.consoleSessions.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return ConsoleSession{}, errNoConsoleSession
	}
	if err != nil {
		return ConsoleSession{}, internal("get console session", err)
	}
	now := s.now()
	if subtle.ConstantTimeCompare([]byte(sess.SecretHash), []byte(BrowserSecret(secret))) != 1 {
		return ConsoleSession{}, errNoConsoleSession
	}
	if !now.Before(sess.ExpiresAt) || now.Sub(sess.LastSeen) >= ConsoleIdle {
		s.End(ctx, sess.ID)
		return ConsoleSession{}, errNoConsoleSession
	}
	u, err := s.svc.Users.Get(ctx, sess.Email)
	if errors.Is(err, ErrNotFound) || (err == nil && (u.Status != UserActive || !u.IsAdmin())) {
		s.End(ctx, sess.ID)
		return ConsoleSession{}, errNoConsoleSession
	}
	if err != nil {
		return ConsoleSession{}, err
	}
	if now.Sub(sess.LastSeen) >= consoleTouchEvery {
		sess, err = s.consoleSessions.Update(ctx, id, func(old ConsoleSession) (ConsoleSession, error) {
			old.LastSeen = now
			return old, nil
		})
		if errors.Is(err, store.ErrNotFound) {
			return ConsoleSession{}, errNoConsoleSession
		}
		if err != nil {
			return ConsoleSession{}, internal("touch console session", err)
		}
	}
	return sess, nil
}

// End ends console session id (signing out); ending one already gone is not an error.
func (s *Console) End(ctx context.Context, id string) {
	if !plausibleID(id) {
		return
	}
	if err := s.consoleSessions.Delete(ctx, id); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Warn("end console session", "session", id, "err", err)
	}
}

// EnsureAdmin makes the user with email an administrator, creating an active user when there is none
// (PASSPORT_ADMIN_EMAILS at start-up). created says whether the user is new.
func (s *Console) EnsureAdmin(ctx context.Context, rawEmail string) (u User, created bool, err error) {
	email, err := NormalizeEmail(rawEmail)
	if err != nil {
		return User{}, false, err
	}
	now := s.now()
	u = User{Email: email, Status: UserActive, Groups: []string{}, Roles: []string{RoleAdmin}, CreatedAt: now, UpdatedAt: now}
	err = s.users.Create(ctx, email, u, 0)
	if err == nil {
		return u, true, nil
	}
	if !errors.Is(err, store.ErrAlreadyExists) {
		return User{}, false, internal("create user", err)
	}
	cur, err := s.svc.Users.Get(ctx, email)
	if err != nil || cur.IsAdmin() {
		return cur, false, err
	}
	roles := append(slices.Clone(cur.Roles), RoleAdmin)
	u, err = s.svc.Users.Update(ctx, email, UserPatch{Roles: &roles})
	return u, false, err
}
