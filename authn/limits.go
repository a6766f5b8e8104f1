package authn

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/winkk/passport/store"
)

// Limits against push bombing (an attacker who knows a password-less user's email sending prompt after prompt
// until the user taps approve). Zero fields take the defaults.
type Limits struct {
	MaxPending    int           // challenges waiting at once per user (default 3)
	PushesPerHour int64         // pushes per user per hour (default 10)
	RefusedLimit  int64         // denied or ignored pushes within RefusedWindow before a cool-down (default 3)
	RefusedWindow time.Duration // default 15m
	CoolDown      time.Duration // pause after RefusedLimit is reached (default 15m)
	ReportPause   time.Duration // pause after "this wasn't me" (default 1h)
}

func (l Limits) withDefaults() Limits {
	if l.MaxPending <= 0 {
		l.MaxPending = 3
	}
	if l.PushesPerHour <= 0 {
		l.PushesPerHour = 10
	}
	if l.RefusedLimit <= 0 {
		l.RefusedLimit = 3
	}
	if l.RefusedWindow <= 0 {
		l.RefusedWindow = 15 * time.Minute
	}
	if l.CoolDown <= 0 {
		l.CoolDown = 15 * time.Minute
	}
	if l.ReportPause <= 0 {
		l.ReportPause = time.Hour
	}
	return l
}

// Reasons pushes to a user are paused.
const (
	PauseReported   = "reported"    // the user answered "this wasn't me"
	PauseRefused    = "refused"     // several recent requests were denied or ignored
	PauseHourly     = "hourly"      // the hourly number of requests is used up
	PauseTooPending = "too_pending" // several requests already wait on the phone
)

func pauseKey(email string) string   { return "push-pause:" + email }
func refusedKey(email string) string { return "push-refused:" + email }
func hourKey(email string) string    { return "push-hour:" + email }

// Pause is a stop on pushes to a user.
type Pause struct {
	Reason string
	Until  time.Time
}

// pause returns the pause in force for email, if any.
func (s *Service) pause(ctx context.Context, email string) (Pause, bool, error) {
	return s.parsePause(s.st.GetValue(ctx, pauseKey(email)))
}

// parsePause reads a pause as stored (v, err from GetValue).
func (s *Service) parsePause(v string, err error) (Pause, bool, error) {
	if errors.Is(err, store.ErrNotFound) {
		return Pause{}, false, nil
	}
	if err != nil {
		return Pause{}, false, internal("read push pause", err)
	}
	reason, until, _ := strings.Cut(v, "|")
	sec, _ := strconv.ParseInt(until, 10, 64)
	p := Pause{Reason: reason, Until: time.Unix(sec, 0).UTC()}
	return p, s.now().Before(p.Until), nil
}

// pausePushes stops pushes to email for d, keeping the later of an existing pause and this one.
func (s *Service) pausePushes(ctx context.Context, email, reason string, d time.Duration) {
	until := s.now().Add(d)
	if cur, ok, _ := s.pause(ctx, email); ok && cur.Until.After(until) {
		return
	}
	if err := s.st.SetValue(ctx, pauseKey(email), reason+"|"+strconv.FormatInt(until.Unix(), 10), d); err != nil {
		s.log.Warn("pause pushes", "email", email, "err", err)
		return
	}
	s.log.Warn("pushes to user paused", "email", email, "reason", reason, "until", until)
}

// noteRefused counts a denied or ignored push; reaching the limit starts a cool-down.
func (s *Service) noteRefused(ctx context.Context, email string) {
	lim := s.cfg.Limits
	n, _, err := s.st.Hit(ctx, refusedKey(email), lim.RefusedWindow)
	if err != nil {
		s.log.Warn("count refused push", "email", email, "err", err)
		return
	}
	if n >= lim.RefusedLimit {
		s.pausePushes(ctx, email, PauseRefused, lim.CoolDown)
		_ = s.st.ResetCount(ctx, refusedKey(email))
	}
}

// sweepIgnored counts the user's challenges that expired unanswered as refused (each once) and drops them from
// the pending index; it returns the challenges still pending.
func (s *Service) sweepIgnored(ctx context.Context, email string) ([]Login, error) {
	ls, err := s.logins.ListIndex(ctx, "pending:"+email)
	if err != nil {
		return nil, internal("list challenges", err)
	}
	return s.sweepListed(ctx, email, ls), nil
}

// sweepListed is sweepIgnored on ls, the user's pending index as just listed.
func (s *Service) sweepListed(ctx context.Context, email string, ls []Login) []Login {
	now := s.now()
	out := ls[:0]
	for _, l := range ls {
		switch {
		case l.Email == email && l.Current(now) == StatePending:
			out = append(out, l)
		case !l.Open(now):
			_ = s.logins.RemoveFromIndex(ctx, "pending:"+email, l.ID)
			if l.Current(now) == StateExpired && l.State == StatePending {
				if first, err := s.st.Claim(ctx, "ignored:"+l.ID, s.cfg.LoginTTL+loginGrace); err == nil && first {
					s.noteRefused(ctx, email)
				}
			}
		}
	}
	sortBy(out, func(l Login) string { return l.CreatedAt.Format(time.RFC3339Nano) + l.ID })
	return out
}

// checkPushAllowed returns the pause that stops a new push to email, or ok when one may be sent (and counts it
// against the hourly cap). facts are the user's pending challenges and pause as Identify read them.
func (s *Service) checkPushAllowed(ctx context.Context, email string, facts *identifyFacts) (Pause, bool, error) {
	lim := s.cfg.Limits
	listed, err := facts.pending.Get()
	if err != nil {
		return Pause{}, false, internal("list challenges", err)
	}
	// Sweeping may start a cool-down (ignored challenges count as refused), so the pause is read again then.
	pending := s.sweepListed(ctx, email, listed)
	var p Pause
	var paused bool
	if swept := len(pending) < len(listed); swept {
		p, paused, err = s.pause(ctx, email)
	} else {
		p, paused, err = s.parsePause(facts.pause.Get())
	}
	if err != nil || paused {
		return p, false, err
	}
	if len(pending) >= lim.MaxPending {
		return Pause{Reason: PauseTooPending, Until: pending[0].ExpiresAt}, false, nil
	}
	n, reset, err := s.st.Hit(ctx, hourKey(email), time.Hour)
	if err != nil {
		return Pause{}, false, internal("count pushes", err)
	}
	if n > lim.PushesPerHour {
		return Pause{Reason: PauseHourly, Until: s.now().Add(reset)}, false, nil
	}
	return Pause{}, true, nil
}
