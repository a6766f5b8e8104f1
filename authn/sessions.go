package authn

import (
	"context"
	"crypto/subtle"
	"errors"
	"strings"
	"time"

	"github.com/winkk/passport/store"
)

// Session is an IdP session: one phone approval that lets the same browser sign in to further applications
// without another push until it expires or is ended (by the user's logout, an admin, suspension, or the removal
// of the phone that approved it).
type Session struct {
	ID           string    `json:"id"`
	Email        string    `json:"email"`
	SecretHash   string    `json:"secret_hash"`
	AuthnInstant time.Time `json:"authn_instant"`
	// Device is the phone whose approval opened the session; removing it ends the session.
	Device    string       `json:"device,omitempty"`
	CreatedAt time.Time    `json:"created_at"`
	ExpiresAt time.Time    `json:"expires_at"`
	Apps      []SessionApp `json:"apps"`
}

// SessionApp records what an application was told in this session, for single logout.
type SessionApp struct {
	AppID        string `json:"app_id"`
	NameID       string `json:"nameid"`
	NameIDFormat string `json:"nameid_format"`
}

// SessionIndex is the value of saml:AuthnStatement/@SessionIndex for every assertion of the session.
func (s Session) SessionIndex() string { return "_s" + s.ID }

// SessionIDFromIndex reverses SessionIndex.
func SessionIDFromIndex(index string) (string, bool) {
	return strings.CutPrefix(index, "_s")
}

// DefaultSessionTTL is how long an IdP session lasts unless configured.
const DefaultSessionTTL = 8 * time.Hour

// TTL is the life of an IdP session.
func (s *Sessions) TTL() time.Duration { return s.sessionTTL() }

func (s *core) sessionTTL() time.Duration {
	if s.cfg.SessionTTL > 0 {
		return s.cfg.SessionTTL
	}
	return DefaultSessionTTL
}

// SessionCookie splits a session cookie value "id.secret".
func splitSessionCookie(v string) (string, string, bool) {
	id, secret, ok := strings.Cut(v, ".")
	return id, secret, ok && id != "" && secret != "" && len(v) < 200
}

// newSession makes (but does not store) a session for the user of login l, and the cookie value naming it.
func (s *core) newSession(l Login) (*Session, string) {
	now := s.now()
	secret := s.randomID(20)
	sess := &Session{
		ID:           s.randomID(12),
		Email:        l.Email,
		SecretHash:   BrowserSecret(secret),
		AuthnInstant: l.DecidedAt,
		Device:       l.AnsweredBy,
		CreatedAt:    now,
		ExpiresAt:    now.Add(s.sessionTTL()),
		Apps:         []SessionApp{},
	}
	return sess, sess.ID + "." + secret
}

// FromCookie returns the live session a cookie names, for an active user. Anything else — no cookie,
// a forged or ended session, a suspended user — is ErrNotFound.
func (s *Sessions) FromCookie(ctx context.Context, cookie string) (Session, error) {
	none := newErr(ErrNotFound, "no session")
	id, secret, ok := splitSessionCookie(cookie)
	if !ok || !plausibleID(id) {
		return Session{}, none
	}
	sess, err := s.sessions.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Session{}, none
	}
	if err != nil {
		return Session{}, internal("get session", err)
	}
	if subtle.ConstantTimeCompare([]byte(sess.SecretHash), []byte(BrowserSecret(secret))) != 1 || !s.now().Before(sess.ExpiresAt) {
		return Session{}, none
	}
	u, err := s.svc.Users.Get(ctx, sess.Email)
	if err != nil || u.Status != UserActive {
		return Session{}, none
	}
	return sess, nil
}

// Get returns session id.
func (s *Sessions) Get(ctx context.Context, id string) (Session, error) {
	if !plausibleID(id) {
		return Session{}, newErr(ErrNotFound, "session not found")
	}
	sess, err := s.sessions.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Session{}, newErr(ErrNotFound, "session not found")
	}
	return sess, internal("get session", err)
}

// RecordApp notes that app was answered in session id, for single logout.
func (s *Sessions) RecordApp(ctx context.Context, id string, a SessionApp) error {
	_, err := s.sessions.Update(ctx, id, func(cur Session) (Session, error) {
		for i, x := range cur.Apps {
			if x.AppID == a.AppID {
				cur.Apps[i] = a
				return cur, nil
			}
		}
		cur.Apps = append(cur.Apps, a)
		return cur, nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return internal("record session app", err)
}

// End ends session id and returns it as it was (ErrNotFound when it was already gone).
func (s *Sessions) End(ctx context.Context, id string) (Session, error) {
	sess, err := s.sessions.Take(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Session{}, newErr(ErrNotFound, "session not found")
	}
	if err != nil {
		return Session{}, internal("end session", err)
	}
	_ = s.sessions.RemoveFromIndex(ctx, userIndex(sess.Email), id)
	s.log.Info("session ended", "email", sess.Email, "session", id)
	return sess, nil
}

// EndUser ends every session of email and returns how many there were.
func (s *Sessions) EndUser(ctx context.Context, email string) (int, error) {
	return s.endSessionsWhere(ctx, strings.ToLower(strings.TrimSpace(email)), func(Session) bool { return true })
}

// endSessionsWhere ends the sessions of email for which end is true and returns how many there were.
func (s *core) endSessionsWhere(ctx context.Context, email string, end func(Session) bool) (int, error) {
	ss, err := s.sessions.ListIndex(ctx, userIndex(email))
	if err != nil {
		return 0, internal("list sessions", err)
	}
	n := 0
	for _, sess := range ss {
		if !end(sess) {
			continue
		}
		if _, err := s.svc.Sessions.End(ctx, sess.ID); err == nil {
			n++
		}
	}
	return n, nil
}

// ParkFromSession makes an already approved login for sess: the browser proved it holds the session, so no
// push is needed. The login is answered through Respond like any other, once.
func (s *Logins) ParkFromSession(ctx context.Context, in StartLogin, sess Session) (Login, error) {
	l, _ := s.newLogin(in) // the browser secret is not needed: the login is answered in the request that parks it
	l.State, l.Email, l.SessionID, l.DecidedAt = StateApproved, sess.Email, sess.ID, sess.AuthnInstant
	if err := s.logins.Create(ctx, l.ID, l, s.cfg.LoginTTL+loginGrace); err != nil {
		return Login{}, internal("park login", err)
	}
	return l, nil
}
