package push

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes counted by passport_push_total{outcome}: one per Send, after retries.
const (
	OutcomeSent        = "sent"        // FCM accepted the message
	OutcomeTokenDead   = "token_dead"  // ErrTokenDead
	OutcomeQuota       = "quota"       // ErrQuota
	OutcomeUnavailable = "unavailable" // ErrUnavailable
	OutcomeError       = "error"       // anything else (invalid message, expired, cancelled, permanent FCM error)
	OutcomeLogged      = "logged"      // LogSender wrote the push to the log
)

var outcomes = []string{OutcomeSent, OutcomeTokenDead, OutcomeQuota, OutcomeUnavailable, OutcomeError, OutcomeLogged}

// Metrics counts pushes by outcome and times each FCM attempt. A nil *Metrics is valid and
// records nothing. Safe for concurrent use.
type Metrics struct {
	pushes  *prometheus.CounterVec
	latency prometheus.Histogram
}

// NewMetrics creates the push metrics and registers them with reg (nil: not registered):
// passport_push_total{outcome} and passport_push_send_duration_seconds (one observation per FCM
// HTTP attempt, retries included). Registering twice with the same registry reuses the collectors
// already there; any other registration failure panics, as prometheus.MustRegister does.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "passport_push_total",
			Help: "Pushes by final outcome (after retries): sent, token_dead, quota, unavailable, error, logged.",
		}, []string{"outcome"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "passport_push_send_duration_seconds",
			Help:    "Duration of one FCM send attempt, retries observed separately.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
	}
	if reg != nil {
		m.pushes = register(reg, m.pushes)
		m.latency = register(reg, m.latency)
	}
	for _, o := range outcomes { // make every outcome visible at zero
		m.pushes.WithLabelValues(o)
	}
	return m
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}

func (m *Metrics) outcome(o string) {
	if m != nil {
		m.pushes.WithLabelValues(o).Inc()
	}
}

func (m *Metrics) observe(d time.Duration) {
	if m != nil {
		m.latency.Observe(d.Seconds())
	}
}
