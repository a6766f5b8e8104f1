package push

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestLogSender(t *testing.T) {
	tests := []struct {
		name      string
		msg       Message
		wantErr   error
		wantToken string
	}{
		{"with a registration token", Message{Token: "fcm-token-abcdefghijklmnop", ChallengeID: "ch_1", Title: "Sign-in request",
			Body: "Open Passport to review a sign-in", TTL: 5 * time.Minute}, nil, "fcm-toke…"},
		{"without a registration token", Message{ChallengeID: "ch_2", TTL: time.Minute}, nil, ""},
		{"without a challenge id", Message{Token: "fcm-token"}, ErrInvalidMessage, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			reg := prometheus.NewRegistry()
			s := LogSender{Logger: slog.New(slog.NewJSONHandler(&buf, nil)), Metrics: NewMetrics(reg)}

			err := s.Send(context.Background(), tt.msg)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Send = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil {
				if buf.Len() != 0 {
					t.Errorf("logged %q for an invalid message", buf.String())
				}
				if got := mustCounter(t, reg, OutcomeError); got != 1 {
					t.Errorf("error outcome = %v, want 1", got)
				}
				return
			}
			var rec map[string]any
			if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
				t.Fatalf("log line %q: %v", buf.String(), err)
			}
			if rec["challenge_id"] != tt.msg.ChallengeID || rec["token"] != tt.wantToken ||
				rec["title"] != tt.msg.Title || rec["level"] != "INFO" {
				t.Errorf("log record = %v", rec)
			}
			if tt.msg.Token != "" && strings.Contains(buf.String(), tt.msg.Token) {
				t.Errorf("full registration token logged: %s", buf.String())
			}
			if got := mustCounter(t, reg, OutcomeLogged); got != 1 {
				t.Errorf("logged outcome = %v, want 1", got)
			}
		})
	}
	t.Run("zero value uses the default logger", func(t *testing.T) {
		var buf bytes.Buffer
		prev := slog.Default()
		slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
		defer slog.SetDefault(prev)
		if err := (LogSender{}).Send(context.Background(), Message{ChallengeID: "ch_3"}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(buf.String(), "challenge_id=ch_3") {
			t.Errorf("default logger got %q", buf.String())
		}
	})
}

func TestMetrics(t *testing.T) {
	t.Run("nil metrics record nothing", func(t *testing.T) {
		var m *Metrics
		m.outcome(OutcomeSent)
		m.observe(time.Second) // must not panic
	})
	t.Run("every outcome is exported at zero", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		NewMetrics(reg)
		for _, o := range outcomes {
			if got := mustCounter(t, reg, o); got != 0 {
				t.Errorf("%s = %v, want 0", o, got)
			}
		}
	})
	t.Run("registering twice shares the collectors", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		a, b := NewMetrics(reg), NewMetrics(reg)
		a.outcome(OutcomeSent)
		b.outcome(OutcomeSent)
		if got := mustCounter(t, reg, OutcomeSent); got != 2 {
			t.Errorf("sent = %v, want 2", got)
		}
	})
	t.Run("no registerer", func(t *testing.T) {
		m := NewMetrics(nil)
		m.outcome(OutcomeQuota)
		if m.pushes == nil || m.latency == nil {
			t.Error("collectors missing")
		}
	})
}
