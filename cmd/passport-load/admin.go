package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/winkk/passport/saml"
)

// adminClient calls the IdP's admin API with its bearer token.
type adminClient struct {
	base  string
	token string
	http  *http.Client
}

// adminError is a refusal from the admin API.
type adminError struct {
	Method, Path string
	Status       int
	Code         string
	Message      string
}

func (e *adminError) Error() string {
	msg := fmt.Sprintf("admin API %s %s: HTTP %d", e.Method, e.Path, e.Status)
	if e.Code != "" {
		msg += " " + e.Code
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden {
		msg += " (the IdP refused the admin token: check --admin-token)"
	}
	return msg
}

// do sends in as JSON and decodes the answer into out, unless the status is not want.
func (a *adminClient) do(ctx context.Context, method, path string, in, out any, want int) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("admin API %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, body)
	if err != nil {
		return fmt.Errorf("admin API %s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("admin API %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("admin API %s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode != want {
		e := &adminError{Method: method, Path: path, Status: resp.StatusCode}
		var eb struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(data, &eb) == nil {
			e.Code, e.Message = eb.Error.Code, eb.Error.Message
		}
		return e
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("admin API %s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// appView is the admin API's view of an application, as far as the run needs it.
type appView struct {
	ID             string `json:"id"`
	Audience       string `json:"audience"`
	ACSURL         string `json:"acs_url"`
	SSOURL         string `json:"sso_url"`
	CertificateURL string `json:"certificate_url"`
	EntityID       string `json:"entity_id"`
}

// fixture is what the run creates on the IdP — one application and its users, each with one device — and
// deletes at the end. Safe for concurrent use.
type fixture struct {
	admin *adminClient
	// Run names this run: its users are load-<Run>-<n>@<domain>.
	Run    string
	domain string
	// sign is what the application's Responses sign (its sign field).
	sign saml.Signing

	App  appView
	Base string // the IdP's base URL, as it announces it
	// Certs are the IdP's signing certificates, from its certificate URL.
	Certs []*x509.Certificate

	mu    sync.Mutex
	appOK bool
	users []string
	seq   int
}

func newFixture(admin *adminClient, domain string, sign saml.Signing) *fixture {
	return &fixture{admin: admin, Run: randomHex(3), domain: domain, sign: sign}
}

// createApp registers an Atlassian-shaped application: audience and ACS URL as Atlassian Guard's SAML set-up
// shows them (nothing needs to listen there: the Response is read out of the login page).
func (f *fixture) createApp(ctx context.Context) error {
	in := map[string]any{
		"name":              "passport-load " + f.Run,
		"url":               "https://load-" + f.Run + ".atlassian.net",
		"interface":         "saml2",
		"auth_type":         "push",
		"audience":          "https://auth.atlassian.com/saml/" + uuidish(),
		"acs_url":           "https://auth.atlassian.com/login/callback?connection=saml-" + uuidish(),
		"attribute_profile": "atlassian",
		"sign":              f.sign.String(),
	}
	if err := f.admin.do(ctx, http.MethodPost, "/api/v1/admin/apps", in, &f.App, http.StatusCreated); err != nil {
		return fmt.Errorf("create the application: %w", err)
	}
	f.mu.Lock()
	f.appOK = true
	f.mu.Unlock()
	suffix := "/saml/" + url.PathEscape(f.App.ID) + "/sso"
	if !strings.HasSuffix(f.App.SSOURL, suffix) {
		return fmt.Errorf("the IdP's SSO URL %q does not end in %s", f.App.SSOURL, suffix)
	}
	f.Base = strings.TrimSuffix(f.App.SSOURL, suffix)
	// Device proofs sign the URL as the IdP spells its base; the browsers follow the IdP's redirects there too.
	if !strings.EqualFold(f.Base, f.admin.base) {
		return fmt.Errorf("the IdP's base URL is %s (its PASSPORT_BASE_URL), not %s: pass --idp %s", f.Base, f.admin.base, f.Base)
	}
	certs, err := f.fetchCertificates(ctx)
	if err != nil {
		return err
	}
	f.Certs = certs
	return nil
}

func (f *fixture) fetchCertificates(ctx context.Context) ([]*x509.Certificate, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.App.CertificateURL, nil)
	if err != nil {
		return nil, fmt.Errorf("signing certificate: %w", err)
	}
	resp, err := f.admin.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("signing certificate: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("signing certificate: GET %s: HTTP %d %v", f.App.CertificateURL, resp.StatusCode, err)
	}
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("signing certificate: %w", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("signing certificate: %s holds no PEM certificate", f.App.CertificateURL)
	}
	return certs, nil
}

// newUser creates the run's next user and an invitation for it, and returns the email and the invitation token.
func (f *fixture) newUser(ctx context.Context) (email, token string, err error) {
	f.mu.Lock()
	f.seq++
	n := f.seq
	f.mu.Unlock()
	email = fmt.Sprintf("load-%s-%d@%s", f.Run, n, f.domain)
	user := map[string]any{"email": email, "given_name": "Load", "family_name": fmt.Sprintf("User %d", n), "display_name": fmt.Sprintf("Load User %d", n)}
	if err := f.admin.do(ctx, http.MethodPost, "/api/v1/admin/users", user, nil, http.StatusCreated); err != nil {
		return "", "", fmt.Errorf("create user: %w", err)
	}
	f.mu.Lock()
	f.users = append(f.users, email)
	f.mu.Unlock()
	var inv struct {
		Token string `json:"token"`
	}
	if err := f.admin.do(ctx, http.MethodPost, "/api/v1/admin/invitations", map[string]string{"email": email}, &inv, http.StatusCreated); err != nil {
		return "", "", fmt.Errorf("invite user: %w", err)
	}
	return email, inv.Token, nil
}

// cleanup deletes everything the run created: its users (with their devices, sessions and invitations) and its
// application. Logins still parked expire on their own.
func (f *fixture) cleanup(ctx context.Context, workers int) error {
	f.mu.Lock()
	users, appOK := f.users, f.appOK
	f.users, f.appOK = nil, false
	f.mu.Unlock()

	var mu sync.Mutex
	var errs []error
	work := make(chan string)
	var wg sync.WaitGroup
	for range min(workers, max(1, len(users))) {
		wg.Go(func() {
			for email := range work {
				err := f.admin.do(ctx, http.MethodDelete, "/api/v1/admin/users/"+url.PathEscape(email), nil, nil, http.StatusNoContent)
				var ae *adminError
				if err != nil && !(errors.As(err, &ae) && ae.Status == http.StatusNotFound) {
					mu.Lock()
					errs = append(errs, fmt.Errorf("delete user %s: %w", email, err))
					mu.Unlock()
				}
			}
		})
	}
	for _, email := range users {
		work <- email
	}
	close(work)
	wg.Wait()
	if appOK {
		err := f.admin.do(ctx, http.MethodDelete, "/api/v1/admin/apps/"+url.PathEscape(f.App.ID), nil, nil, http.StatusNoContent)
		var ae *adminError
		if err != nil && !(errors.As(err, &ae) && ae.Status == http.StatusNotFound) {
			errs = append(errs, fmt.Errorf("delete application %s: %w", f.App.ID, err))
		}
	}
	if len(errs) > 3 {
		errs = append(errs[:3], fmt.Errorf("and %d more", len(errs)-3))
	}
	if len(errs) > 0 {
		return fmt.Errorf("clean up: %w", errors.Join(errs...))
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// uuidish is a random version-4 UUID, as Atlassian puts in its entity IDs and connection names.
func uuidish() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
