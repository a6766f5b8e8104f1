package authn

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/winkk/passport/store"
)

// Limits against push bombing (someone who knows an employee's email sending prompt after prompt until the
// employee taps approve) and against locking an employee out. Every limit on a user's sign-in requests is
// counted per client network (the address, or the /64 of an IPv6 address, that started the login): a
// stranger's network that plants requests, or has them denied or reported, is paused, while the employee's
// own network still gets its push. Per-user ceilings, above what one network can reach, stop a flood spread
// over many networks. Zero fields take the defaults.
type Limits struct {
	MaxPending    int           // challenges waiting at once per user and client network (default 3)
	PushesPerHour int64         // pushes per user and client network per hour (default 10)
	RefusedLimit  int64         // denied or ignored pushes from one network within RefusedWindow before a cool-down (default 3)
	RefusedWindow time.Duration // default 15m
	CoolDown      time.Duration // pause of that network after RefusedLimit is reached (default 15m)
	ReportPause   time.Duration // pause of the reported login's network after "this wasn't me" (default 1h)

	// MaxPendingPerUser caps a user's waiting challenges from all networks together (default 10). It also
	// keeps numbers unique among a user's open sign-ins with room to spare (90 two-digit numbers).
	MaxPendingPerUser int
	// PushesPerHourPerUser caps a user's pushes per hour from all networks together (default 30).
	PushesPerHourPerUser int64
	// ParksPerMinute caps the logins one client network may start per minute (default 1000).
	ParksPerMinute int64

	// CodeFailures is how many wrong offline codes for a user one client network may type within CodeWindow
	// before codes from it are refused until the window ends (default 5); CodeFailuresPerUser the same from
	// all networks together (default 20).
	CodeFailures        int64
	CodeFailuresPerUser int64
	CodeWindow          time.Duration // default 15m
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
	if l.MaxPendingPerUser <= 0 {
		l.MaxPendingPerUser = 10
	}
	l.MaxPendingPerUser = min(max(l.MaxPendingPerUser, l.MaxPending), maxOpenNumbers)
	if l.PushesPerHourPerUser <= 0 {
		l.PushesPerHourPerUser = 30
	}
	l.PushesPerHourPerUser = max(l.PushesPerHourPerUser, l.PushesPerHour)
	if l.ParksPerMinute <= 0 {
		l.ParksPerMinute = 1000
	}
	if l.CodeFailures <= 0 {
		l.CodeFailures = 5
	}
	if l.CodeFailuresPerUser <= 0 {
		l.CodeFailuresPerUser = 20
	}
	l.CodeFailuresPerUser = max(l.CodeFailuresPerUser, l.CodeFailures)
	if l.CodeWindow <= 0 {
		l.CodeWindow = 15 * time.Minute
	}
	return l
}

// maxOpenNumbers bounds a user's open sign-ins so that a fresh number can always be drawn.
const maxOpenNumbers = 60

// Reasons pushes to a user are paused.
const (
	PauseReported   = "reported"    // the user answered "this wasn't me"
	PauseRefused    = "refused"     // several recent requests were denied or ignored
	PauseHourly     = "hourly"      // the hourly number of requests is used up
	PauseTooPending = "too_pending" // several requests already wait on the phone
)

// openIndexes are the indexes an open challenge l is in: waitingIndexes and the index of its number.
func openIndexes(l Login) []string {
	return append(waitingIndexes(l), numberIndex(l.Email, l.Number))
}

// waitingIndexes are the indexes that count an open challenge l under the limits on waiting challenges.
func waitingIndexes(l Login) []string {
	return []string{pendingIndex(l.Email), pendingNetIndex(l.Email, l.Network)}
}

// Pause is a stop on pushes to a user from one network.
type Pause struct {
	Reason string
	Until  time.Time
}

// pause returns the pause in force for email and net, if any.
func (s *core) pause(ctx context.Context, email, net string) (Pause, bool, error) {
	return s.parsePause(s.st.GetValue(ctx, pauseKey(email, net)))
}

// parsePause reads a pause as stored (v, err from GetValue).
func (s *core) parsePause(v string, err error) (Pause, bool, error) {
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

// pausePushes stops pushes to email from net for d, keeping the later of an existing pause and this one.
func (s *core) pausePushes(ctx context.Context, email, net, reason string, d time.Duration) {
	until := s.now().Add(d)
	if cur, ok, _ := s.pause(ctx, email, net); ok && cur.Until.After(until) {
		return
	}
	if err := s.st.SetValue(ctx, pauseKey(email, net), reason+"|"+strconv.FormatInt(until.Unix(), 10), d); err != nil {
		s.log.Warn("pause pushes", "email", email, "network", net, "err", err)
		return
	}
	s.log.Warn("pushes to user paused for a client network", "email", email, "network", net, "reason", reason, "until", until)
}

// noteRefused counts a denied or ignored push from net; reaching the limit starts a cool-down for that net.
func (s *core) noteRefused(ctx context.Context, email, net string) {
	lim := s.cfg.Limits
	n, _, err := s.st.Hit(ctx, refusedKey(email, net), lim.RefusedWindow)
	if err != nil {
		s.log.Warn("count refused push", "email", email, "err", err)
		return
	}
	if n >= lim.RefusedLimit {
		s.pausePushes(ctx, email, net, PauseRefused, lim.CoolDown)
		_ = s.st.ResetCount(ctx, refusedKey(email, net))
	}
}

// sweepIgnored counts the user's challenges that expired unanswered as refused (each once, against the
// network that started it) and drops them from the indexes; it returns the challenges still pending.
func (s *core) sweepIgnored(ctx context.Context, email string) ([]Login, error) {
	ls, err := s.logins.ListIndex(ctx, pendingIndex(email))
	if err != nil {
		return nil, internal("list challenges", err)
	}
	return s.sweepListed(ctx, email, ls), nil
}

// sweepListed is sweepIgnored on ls, the user's pending index as just listed. Decoys (see Login.Decoy) stay
// in the result: they hold their number and their place under the limits like any open sign-in.
func (s *core) sweepListed(ctx context.Context, email string, ls []Login) []Login {
	now := s.now()
	out := ls[:0]
	for _, l := range ls {
		switch {
		case l.Email == email && l.Current(now) == StatePending:
			out = append(out, l)
		case l.Current(now) == StateExpired && l.State == StatePending:
			s.expire(ctx, l)
		case !l.Open(now):
			_ = s.logins.RemoveFromIndexes(ctx, l.ID, openIndexes(l)...)
		}
	}
	sortBy(out, func(l Login) string { return l.CreatedAt.Format(time.RFC3339Nano) + l.ID })
	return out
}

// expire records that challenge l (as read) expired unanswered: it moves to Expired and leaves the user's
// indexes in one write, and the first to do so counts it as refused against the network that started it
// (an ignored request counts like a denied one).
func (s *core) expire(ctx context.Context, l Login) {
	won := false
	_, err := s.transition(ctx, l.ID, &l, store.Effects{RemoveFrom: openIndexes(l)}, func(cur Login, now time.Time) (Login, error) {
		won = false // fn may run again after a lost race: only its last call counts
		if cur.State != StatePending || cur.Current(now) != StateExpired {
			return cur, errUnchanged
		}
		cur.State, cur.Reason, cur.DecidedAt = StateExpired, ReasonExpired, cur.ExpiresAt
		won = true
		return cur, nil
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		s.log.Warn("expire a challenge", "login", l.ID, "err", err)
	}
	if err == nil && won {
		s.noteRefused(ctx, l.Email, l.Network)
	}
}

// Expire records that login l, as read, expired unanswered (see expire); the login page calls it when it
// shows a login that expired while nobody looked. A login not (or no longer) pending is left as it is.
func (s *Logins) Expire(ctx context.Context, l Login) {
	if l.State == StatePending && l.Current(s.now()) == StateExpired {
		s.expire(ctx, l)
	}
}

// checkPushAllowed returns the pause that stops a new challenge to email from net, or ok when one may be
// sent (and counts it against the hourly caps). facts are the user's open challenges and the network's pause
// as Identify read them; pending is what is still open after sweeping.
func (s *core) checkPushAllowed(ctx context.Context, email, net string, facts *identifyFacts) (p Pause, pending []Login, ok bool, err error) {
	lim := s.cfg.Limits
	listed, err := facts.pending.Get()
	if err != nil {
		return Pause{}, nil, false, internal("list challenges", err)
	}
	n := len(listed)
	// Sweeping may start a cool-down (ignored challenges count as refused), so the pause is read again then.
	pending = s.sweepListed(ctx, email, listed)
	var paused bool
	if swept := len(pending) < n; swept {
		p, paused, err = s.pause(ctx, email, net)
	} else {
		p, paused, err = s.parsePause(facts.pause.Get())
	}
	if err != nil || paused {
		return p, pending, false, err
	}
	var fromNet []Login
	for _, l := range pending {
		if l.Network == net {
			fromNet = append(fromNet, l)
		}
	}
	if len(fromNet) >= lim.MaxPending {
		return Pause{Reason: PauseTooPending, Until: fromNet[0].ExpiresAt}, pending, false, nil
	}
	if len(pending) >= lim.MaxPendingPerUser {
		return Pause{Reason: PauseTooPending, Until: pending[0].ExpiresAt}, pending, false, nil
	}
	if s.pushesCountedInWrite() {
		return Pause{}, pending, true, nil // counted, under their caps, with the challenge's write (pushHits)
	}
	hits, err := s.st.HitAll(ctx, time.Hour, hourKey(email, net), hourKey(email, ""))
	if err != nil {
		return Pause{}, pending, false, internal("count pushes", err)
	}
	nh, uh := hits[0], hits[1]
	switch {
	case nh.Count > lim.PushesPerHour:
		// A network past its own cap must not use up the user's ceiling as well.
		s.giveBackHit(ctx, hourKey(email, ""))
		return Pause{Reason: PauseHourly, Until: s.now().Add(nh.ResetIn)}, pending, false, nil
	case uh.Count > lim.PushesPerHourPerUser:
		s.giveBackHit(ctx, hourKey(email, net))
		return Pause{Reason: PauseHourly, Until: s.now().Add(uh.ResetIn)}, pending, false, nil
	}
	return Pause{}, pending, true, nil
}

// pushesCountedInWrite reports whether a challenge's pushes are counted in the write that opens it (one
// server: pushHits are its Effects.Hits, checked against their caps and hit in the same script), rather than
// by checkPushAllowed before it (a Redis Cluster, where the counters and the login are two slots).
func (s *core) pushesCountedInWrite() bool { return s.logins.InOrder() }

// pushHits are the hourly push counters of email from net and from all networks, under their caps, as
// checkPushAllowed counts them.
func (s *core) pushHits(email, net string) []store.Hit {
	lim := s.cfg.Limits
	return []store.Hit{
		{Counter: hourKey(email, net), Window: time.Hour, Cap: lim.PushesPerHour},
		{Counter: hourKey(email, ""), Window: time.Hour, Cap: lim.PushesPerHourPerUser},
	}
}

// giveBackHit takes back one hit of a counter, logging a failure (the limit then errs on the safe side).
func (s *core) giveBackHit(ctx context.Context, key string) {
	if err := s.st.Unhit(ctx, key); err != nil {
		s.log.Warn("give back a counted push", "key", key, "err", err)
	}
}
