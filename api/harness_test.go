package api_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	saml2 "github.com/russellhaering/gosaml2"
	dsig "github.com/russellhaering/goxmldsig"
	"golang.org/x/net/html"

	"github.com/winkk/passport/api"
	"github.com/winkk/passport/api/apitest"
	"github.com/winkk/passport/api/deviceapi"
	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/authn/deviceproof"
	"github.com/winkk/passport/push/fcmtest"
	"github.com/winkk/passport/push/smtptest"
)

// env is a whole Passport server in-process (see apitest) plus the test's helpers around it.
type env struct {
	t     *testing.T
	URL   string
	svc   *authn.Service
	srv   *api.Server
	fcm   *fcmtest.Server
	mails *smtptest.Server
	clock *apitest.Clock
	key   *authn.SigningKey
	logs  *apitest.Logs
	// tokens numbers the FCM tokens of enrolled phones.
	tokens atomic.Int64
}

type envOption = apitest.Option

const adminToken = apitest.AdminToken

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	return envOf(t, apitest.Start(t, opts...))
}

func envOf(t *testing.T, s *apitest.Server) *env {
	return &env{t: t, URL: s.URL, svc: s.Svc, srv: s.API, fcm: s.FCM, mails: s.Mails, clock: s.Clock, key: s.Key, logs: s.Logs}
}

// do sends a JSON request and decodes the JSON answer into out, failing unless the status is want.
func (e *env) do(method, path, token string, body any, want int, out any) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			e.t.Fatalf("%s %s: decode %s: %v", method, path, data, err)
		}
	}
}

type appView struct {
	ID             string `json:"id"`
	Name           string `json:"name"`
	Audience       string `json:"audience"`
	ACSURL         string `json:"acs_url"`
	SSOURL         string `json:"sso_url"`
	MetadataURL    string `json:"metadata_url"`
	CertificateURL string `json:"certificate_url"`
	EntityID       string `json:"entity_id"`
}

// newApp registers an app the way the setup guide does: blank audience and ACS URL first, then filled in.
func (e *env) newApp(name, audience, acs string) appView {
	e.t.Helper()
	var a appView
	e.do("POST", "/api/v1/admin/apps", adminToken, map[string]any{"name": name, "url": "https://example.atlassian.net", "interface": "saml2", "auth_type": "push", "audience": "", "acs_url": ""}, http.StatusCreated, &a)
	e.do("PATCH", "/api/v1/admin/apps/"+a.ID, adminToken, map[string]any{"audience": audience, "acs_url": acs}, http.StatusOK, &a)
	return a
}

// phone is an enrolled device driven through the device API client, as the app (or passport-device) does.
type phone struct {
	*deviceapi.Client
	ID       string
	Email    string
	FCMToken string
	// Offline is the offline-code secret the enrollment answer gave (nil when offline codes are off).
	Offline *deviceapi.OfflineCode
}

func (e *env) newKey() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		e.t.Fatal(err)
	}
	return k
}

// invite makes an invitation for email and returns its token.
func (e *env) invite(email string) string {
	e.t.Helper()
	var inv struct {
		Token     string `json:"token"`
		EnrollURL string `json:"enroll_url"`
		QRURL     string `json:"qr_url"`
	}
	e.do("POST", "/api/v1/admin/invitations", adminToken, map[string]string{"email": email}, http.StatusCreated, &inv)
	return inv.Token
}

// enroll invites email and enrolls a new phone for it with an FCM token.
func (e *env) enroll(email string) *phone {
	e.t.Helper()
	c := &deviceapi.Client{BaseURL: e.URL, Signer: &deviceproof.Signer{Key: e.newKey(), Clock: e.clock.Now}}
	fcmToken := fmt.Sprintf("fcm-token-%d", e.tokens.Add(1))
	res, err := c.EnrollByInvitation(context.Background(), deviceapi.EnrollByInvitationRequest{Token: e.invite(email), Name: "Test phone", FCMToken: fcmToken, Platform: "android"})
	if err != nil {
		e.t.Fatalf("enroll %s: %v", email, err)
	}
	c.Signer.KeyID = res.Device.ID
	return &phone{Client: c, ID: res.Device.ID, Email: email, FCMToken: fcmToken, Offline: res.OfflineCode}
}

// sp is an independent SAML SP (gosaml2) configured for app.
func (e *env) sp(a appView) *saml2.SAMLServiceProvider {
	e.t.Helper()
	block, _ := pem.Decode(e.key.CertificatePEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		e.t.Fatal(err)
	}
	return &saml2.SAMLServiceProvider{
		IdentityProviderSSOURL:      a.SSOURL,
		IdentityProviderIssuer:      a.EntityID,
		ServiceProviderIssuer:       a.Audience,
		AssertionConsumerServiceURL: a.ACSURL,
		AudienceURI:                 a.Audience,
		IDPCertificateStore:         &dsig.MemoryX509CertificateStore{Roots: []*x509.Certificate{cert}},
		Clock:                       dsig.NewFakeClockAt(e.clock.Now()),
	}
}

// browser is a person's browser: a cookie jar, no redirects followed past our pages automatically.
type browser struct {
	t *testing.T
	c *http.Client
	// requestID is the ID of the last AuthnRequest startLogin sent.
	requestID string
}

func newBrowser(t *testing.T) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, c: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
}

// page is a fetched HTML page.
type page struct {
	Status int
	URL    string
	Header http.Header
	Body   string
	doc    *html.Node
}

func (b *browser) get(u string) *page {
	b.t.Helper()
	resp, err := b.c.Get(u)
	if err != nil {
		b.t.Fatalf("GET %s: %v", u, err)
	}
	return b.read(resp)
}

func (b *browser) postForm(u string, v url.Values) *page {
	b.t.Helper()
	resp, err := b.c.PostForm(u, v)
	if err != nil {
		b.t.Fatalf("POST %s: %v", u, err)
	}
	return b.read(resp)
}

func (b *browser) read(resp *http.Response) *page {
	b.t.Helper()
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	p := &page{Status: resp.StatusCode, URL: resp.Request.URL.String(), Header: resp.Header, Body: string(data)}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		if p.doc, err = html.Parse(bytes.NewReader(data)); err != nil {
			b.t.Fatalf("parse page: %v", err)
		}
		checkStrictPage(b.t, p)
	}
	return p
}

// find returns the first element for which match is true.
func (p *page) find(match func(*html.Node) bool) *html.Node {
	var walk func(*html.Node) *html.Node
	walk = func(n *html.Node) *html.Node {
		if n.Type == html.ElementNode && match(n) {
			return n
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			if f := walk(c); f != nil {
				return f
			}
		}
		return nil
	}
	if p.doc == nil {
		return nil
	}
	return walk(p.doc)
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func text(n *html.Node) string {
	var sb strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			sb.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.TrimSpace(sb.String())
}

// testID returns the text of the element with data-testid=id, or "" when there is none.
func (p *page) testID(id string) (string, bool) {
	n := p.find(func(n *html.Node) bool { return attr(n, "data-testid") == id })
	if n == nil {
		return "", false
	}
	return text(n), true
}

// form returns the action and the input values of the page's first form that posts.
func (p *page) form() (string, url.Values, bool) {
	f := p.find(func(n *html.Node) bool { return n.Data == "form" && strings.EqualFold(attr(n, "method"), "post") })
	if f == nil {
		return "", nil, false
	}
	v := url.Values{}
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "input" && attr(n, "name") != "" {
			v.Add(attr(n, "name"), attr(n, "value"))
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(f)
	return attr(f, "action"), v, true
}

func (p *page) number(t *testing.T) int {
	t.Helper()
	s, ok := p.testID("match-number")
	if !ok {
		t.Fatalf("no match-number on the page (status %d):\n%s", p.Status, p.Body)
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 10 || n > 99 {
		t.Fatalf("match-number %q is not a two-digit number", s)
	}
	return n
}

// startLogin sends the SP's AuthnRequest (HTTP-Redirect) and follows to the identify step.
func (b *browser) startLogin(sp *saml2.SAMLServiceProvider, relayState string) *page {
	b.t.Helper()
	doc, err := sp.BuildAuthRequestDocument()
	if err != nil {
		b.t.Fatalf("build AuthnRequest: %v", err)
	}
	u, err := sp.BuildAuthURLFromDocument(relayState, doc)
	if err != nil {
		b.t.Fatalf("build AuthnRequest: %v", err)
	}
	b.requestID = doc.Root().SelectAttrValue("ID", "")
	p := b.get(u)
	if p.Status != http.StatusOK || !strings.Contains(p.URL, "/login/") {
		b.t.Fatalf("SSO did not land on the login page: %d %s\n%s", p.Status, p.URL, p.Body)
	}
	return p
}

// jiraLogin is where many tests start: a server with the Jira application and the employee's enrolled
// phone, and a browser whose login as the employee waits for that phone (waiting shows the number).
func jiraLogin(t *testing.T) (e *env, ph *phone, b *browser, waiting *page) {
	t.Helper()
	e = newEnv(t)
	_, ph, b, waiting = e.jiraLogin(t)
	return e, ph, b, waiting
}

// jiraLogin is jiraLogin on e's server, returning the application too.
func (e *env) jiraLogin(t *testing.T) (jira appView, ph *phone, b *browser, waiting *page) {
	t.Helper()
	jira = e.newApp("Jira", atlassianAudience, acsURL)
	ph = e.enroll(employee)
	b = newBrowser(t)
	waiting = b.identify(b.startLogin(e.sp(jira), ""), employee)
	return jira, ph, b, waiting
}

// identify submits email on the identify step and returns the waiting page.
func (b *browser) identify(p *page, email string) *page {
	b.t.Helper()
	action, _, ok := p.form()
	if !ok {
		b.t.Fatalf("no identify form:\n%s", p.Body)
	}
	target, err := url.Parse(p.URL)
	if err != nil {
		b.t.Fatal(err)
	}
	ref, _ := url.Parse(action)
	return b.postForm(target.ResolveReference(ref).String(), url.Values{"email": {email}})
}

// waitChallenge waits for the phone's next pending challenge.
func (ph *phone) waitChallenge(t *testing.T) *deviceapi.Challenge {
	t.Helper()
	ch, err := ph.WaitForChallenge(context.Background(), 10*time.Second)
	if err != nil {
		t.Fatalf("wait for challenge: %v", err)
	}
	return ch
}

func apiCode(err error) string {
	var ae *deviceapi.APIError
	if errors.As(err, &ae) {
		return fmt.Sprintf("%d %s", ae.Status, ae.Code)
	}
	if err == nil {
		return "ok"
	}
	return err.Error()
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func newECKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func mustJSON(tb testing.TB, rec *httptest.ResponseRecorder, v any) {
	tb.Helper()
	if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
		tb.Fatalf("decode %s: %v", rec.Body.String(), err)
	}
}

type htmlNode = html.Node

func httptestRequest(t *testing.T, u string) *http.Request {
	t.Helper()
	r, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// settledPushes waits until the fake FCM has received n pushes (they are sent in the background) and returns
// the count, failing when more or fewer arrive.
func (e *env) settledPushes(t *testing.T, n int) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for e.fcm.Attempts() < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := e.fcm.Attempts(); got != n {
		t.Fatalf("%d pushes reached FCM, want %d", got, n)
	}
	return n
}
