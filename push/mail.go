package push

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/url"
	"strings"
	"time"
)

// Mailer sends one plain-text mail. Implementations are safe for concurrent use.
type Mailer interface {
	Send(ctx context.Context, to, subject, body string) error
}

// SMTPMailer sends mail through an SMTP server, with STARTTLS whenever the server offers it. Credentials are
// only ever sent over TLS (or to a loopback server), as net/smtp's PLAIN auth enforces.
type SMTPMailer struct {
	addr     string
	host     string
	from     string
	auth     smtp.Auth
	timeout  time.Duration
	tlsConf  *tls.Config
	hostname string
}

// NewSMTPMailer parses smtp://[user:pass@]host[:port][?from=address] (port 25 when absent). The sender is the
// from parameter, else passport@host.
func NewSMTPMailer(rawURL string) (*SMTPMailer, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "smtp" || u.Hostname() == "" {
		return nil, errors.New("push: SMTP URL must look like smtp://user:pass@host:port")
	}
	port := u.Port()
	if port == "" {
		port = "25"
	}
	m := &SMTPMailer{
		addr:     net.JoinHostPort(u.Hostname(), port),
		host:     u.Hostname(),
		from:     u.Query().Get("from"),
		timeout:  30 * time.Second,
		tlsConf:  &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12},
		hostname: "localhost",
	}
	if m.from == "" {
		m.from = "passport@" + u.Hostname()
	}
	if _, err := mail.ParseAddress(m.from); err != nil {
		return nil, fmt.Errorf("push: SMTP sender %q is not an address", m.from)
	}
	if u.User != nil {
		pass, _ := u.User.Password()
		m.auth = smtp.PlainAuth("", u.User.Username(), pass, u.Hostname())
	}
	return m, nil
}

// Describe says where mail goes, without credentials.
func (m *SMTPMailer) Describe() string { return "SMTP " + m.addr + " from " + m.from }

// Send delivers one mail, bounded by ctx and the mailer's timeout.
func (m *SMTPMailer) Send(ctx context.Context, to, subject, body string) error {
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", m.addr)
	if err != nil {
		return fmt.Errorf("push: smtp dial: %w", err)
	}
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	c, err := smtp.NewClient(conn, m.host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("push: smtp greeting: %w", err)
	}
	defer c.Close()
	if err := c.Hello(m.hostname); err != nil {
		return fmt.Errorf("push: smtp hello: %w", err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		if err := c.StartTLS(m.tlsConf); err != nil {
			return fmt.Errorf("push: smtp starttls: %w", err)
		}
	}
	if m.auth != nil {
		if err := c.Auth(m.auth); err != nil {
			return fmt.Errorf("push: smtp auth: %w", err)
		}
	}
	if err := c.Mail(m.from); err != nil {
		return fmt.Errorf("push: smtp mail from: %w", err)
	}
	if err := c.Rcpt(to); err != nil {
		return fmt.Errorf("push: smtp rcpt: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("push: smtp data: %w", err)
	}
	if _, err := w.Write(composeMail(m.from, to, subject, body, time.Now())); err != nil {
		return fmt.Errorf("push: smtp write: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("push: smtp end of data: %w", err)
	}
	return c.Quit()
}

// composeMail renders an RFC 5322 message with a quoted-printable UTF-8 body.
func composeMail(from, to, subject, body string, now time.Time) []byte {
	id := make([]byte, 12)
	_, _ = rand.Read(id)
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: Passport <%s>\r\n", from)
	fmt.Fprintf(&b, "To: <%s>\r\n", to)
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.QEncoding.Encode("utf-8", subject))
	fmt.Fprintf(&b, "Date: %s\r\n", now.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%s@%s>\r\n", hex.EncodeToString(id), from[strings.LastIndexByte(from, '@')+1:])
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	qp := quotedprintable.NewWriter(&b)
	_, _ = qp.Write([]byte(strings.ReplaceAll(body, "\n", "\r\n")))
	_ = qp.Close()
	return b.Bytes()
}

// LogMailer writes mails to the log instead of sending them (no PASSPORT_SMTP_URL): for development, where the
// operator reads enrollment codes from the log.
type LogMailer struct{ Logger *slog.Logger }

// Send logs the mail and returns nil.
func (l LogMailer) Send(_ context.Context, to, subject, body string) error {
	l.Logger.Info("mail (not sent: no PASSPORT_SMTP_URL)", "to", to, "subject", subject, "body", body)
	return nil
}
