package authn

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strings"
	"time"
)

// ChallengeContext is what a phone shows of a sign-in before its person answers: which application, from
// which browser address and user agent, started when. The phone's signed answer carries its hash
// (Decision.ContextHash), and the server recomputes the hash from the login it holds when the answer lands,
// so a context changed on the server after the phone showed it cannot be approved unseen.
type ChallengeContext struct {
	ChallengeID string
	AppName     string
	IP          string
	UserAgent   string
	Time        time.Time // when the sign-in started
}

// Canonical is the context's canonical serialization, the input of Hash: these six lines, joined by a line
// feed (no final one), values as they are (none can hold a line feed), the time in RFC 3339 UTC to the second:
//
//	passport-challenge-context/v1
//	id=<challenge ID>
//	app=<application name>
//	ip=<browser address>
//	user_agent=<browser User-Agent>
//	time=<2006-01-02T15:04:05Z>
func (c ChallengeContext) Canonical() string {
	return strings.Join([]string{
		"passport-challenge-context/v1",
		"id=" + c.ChallengeID,
		"app=" + oneLine(c.AppName),
		"ip=" + oneLine(c.IP),
		"user_agent=" + oneLine(c.UserAgent),
		"time=" + c.Time.UTC().Format("2006-01-02T15:04:05Z"),
	}, "\n")
}

// Hash is base64url (no padding) of SHA-256 of Canonical.
func (c ChallengeContext) Hash() string {
	h := sha256.Sum256([]byte(c.Canonical()))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// oneLine keeps a value on its line: a line break (none of the values can hold one today) becomes a space.
func oneLine(s string) string { return strings.NewReplacer("\r", " ", "\n", " ").Replace(s) }

// Context is the context of challenge l, as its phone shows it.
func (s *Logins) Context(ctx context.Context, l Login) ChallengeContext {
	return s.contextOf(ctx, l)
}

func (s *core) contextOf(ctx context.Context, l Login) ChallengeContext {
	var appName string
	if a, err := s.svc.Apps.Get(ctx, l.AppID); err == nil {
		appName = a.Name
	}
	return challengeContext(l, appName)
}

// challengeContext is the context of challenge l, whose application is named appName.
func challengeContext(l Login, appName string) ChallengeContext {
	return ChallengeContext{ChallengeID: l.ID, AppName: appName, IP: l.ClientIP, UserAgent: l.UserAgent, Time: l.CreatedAt}
}

// hashes reports, in constant time, whether hash is c's Hash: whether the phone that sent it showed c.
func (c ChallengeContext) hashes(hash string) bool {
	return subtle.ConstantTimeCompare([]byte(c.Hash()), []byte(hash)) == 1
}
