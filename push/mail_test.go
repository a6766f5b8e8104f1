package push_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/winkk/passport/push"
	"github.com/winkk/passport/push/smtptest"
)

func TestSMTPMailer(t *testing.T) {
	srv := smtptest.New(t)
	m, err := push.NewSMTPMailer(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Send(context.Background(), "ada@example.com", "Your Passport code: 123456", "Code 123456 — für dich\nline two\n"); err != nil {
		t.Fatalf("send: %v", err)
	}
	select {
	case got := <-srv.Mails:
		if got.To != "ada@example.com" || got.From != "passport@example.test" {
			t.Errorf("envelope %s → %s", got.From, got.To)
		}
		if got.Subject != "Your Passport code: 123456" {
			t.Errorf("subject %q", got.Subject)
		}
		if !strings.Contains(got.Body, "Code 123456 — für dich") {
			t.Errorf("body %q", got.Body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no mail arrived")
	}
}

func TestSMTPMailerRefusals(t *testing.T) {
	for _, u := range []string{"", "http://host", "smtp://", "smtp://host?from=not-an-address"} {
		if _, err := push.NewSMTPMailer(u); err == nil {
			t.Errorf("NewSMTPMailer(%q) accepted", u)
		}
	}
	m, err := push.NewSMTPMailer("smtp://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := m.Send(ctx, "a@example.com", "s", "b"); err == nil {
		t.Error("send to a closed port succeeded")
	}
}
