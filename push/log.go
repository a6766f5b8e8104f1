package push

import (
	"context"
	"fmt"
	"log/slog"
)

// LogSender is the Sender used without FCM credentials: it writes the push to the log (devices
// then pull their challenges) and returns nil. Only a short prefix of the registration token is
// logged. A nil Logger means slog.Default(); nil Metrics records nothing. Safe for concurrent use.
type LogSender struct {
	Logger  *slog.Logger
	Metrics *Metrics
}

// Send logs m. It fails only when m has no challenge ID (ErrInvalidMessage); a device without a
// registration token is fine here, since nothing is sent.
func (l LogSender) Send(ctx context.Context, m Message) error {
	if m.ChallengeID == "" {
		l.Metrics.outcome(OutcomeError)
		return fmt.Errorf("%w: no challenge id", ErrInvalidMessage)
	}
	logger := l.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger.LogAttrs(ctx, slog.LevelInfo, "push not sent: FCM not configured, device must pull",
		slog.String("challenge_id", m.ChallengeID),
		slog.String("token", redactToken(m.Token)),
		slog.String("title", m.Title),
		slog.String("body", m.Body),
		slog.Duration("ttl", m.TTL),
	)
	l.Metrics.outcome(OutcomeLogged)
	return nil
}

// redactToken keeps enough of a registration token to tell devices apart in a log.
func redactToken(t string) string {
	const keep = 8
	if len(t) <= keep {
		return t
	}
	return t[:keep] + "…"
}
