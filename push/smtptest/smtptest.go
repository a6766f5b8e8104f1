// Package smtptest runs a real SMTP server (github.com/emersion/go-smtp) on loopback for tests: it accepts
// every mail and hands it to the test, decoded.
package smtptest

import (
	"bytes"
	"io"
	"net"
	"net/mail"
	"testing"

	"github.com/emersion/go-smtp"
	"mime/quotedprintable"
)

// Mail is one received message.
type Mail struct {
	From, To string
	Subject  string
	Body     string // decoded text
	Raw      []byte
}

// Server is a loopback SMTP server that keeps what it receives.
type Server struct {
	Addr string
	// Mails receives every mail (buffered).
	Mails chan Mail
}

// URL is the PASSPORT_SMTP_URL for this server.
func (s *Server) URL() string { return "smtp://" + s.Addr + "?from=passport@example.test" }

// New starts a server that stops when tb ends.
func New(tb testing.TB) *Server {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &Server{Addr: ln.Addr().String(), Mails: make(chan Mail, 64)}
	srv := smtp.NewServer(backend{s})
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	go func() { _ = srv.Serve(ln) }()
	tb.Cleanup(func() { _ = srv.Close() })
	return s
}

type backend struct{ s *Server }

func (b backend) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{s: b.s}, nil }

type session struct {
	s        *Server
	from, to string
}

func (x *session) Reset()        {}
func (x *session) Logout() error { return nil }
func (x *session) Mail(from string, _ *smtp.MailOptions) error {
	x.from = from
	return nil
}
func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.to = to
	return nil
}

func (x *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m := Mail{From: x.from, To: x.to, Raw: raw}
	if msg, err := mail.ReadMessage(bytes.NewReader(raw)); err == nil {
		m.Subject, _ = new(mimeDecoder).decode(msg.Header.Get("Subject"))
		body, _ := io.ReadAll(msg.Body)
		if msg.Header.Get("Content-Transfer-Encoding") == "quoted-printable" {
			body, _ = io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body)))
		}
		m.Body = string(body)
	}
	select {
	case x.s.Mails <- m:
	default:
	}
	return nil
}
