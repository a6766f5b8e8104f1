package api_test

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/winkk/passport/api"
	"github.com/winkk/passport/api/apitest"
	"github.com/winkk/passport/api/deviceapi"
	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/authn/audit"
	"github.com/winkk/passport/authn/deviceproof"
	"github.com/winkk/passport/push"
	"github.com/winkk/passport/push/fcmtest"
	"github.com/winkk/passport/store"
	"github.com/winkk/passport/store/storetest"
)

// benchServer is the server driven in-process through ServeHTTP: the server-side path without a network
// client, against the real Redis.
type benchServer struct {
	st    *store.Store
	srv   *api.Server
	base  string
	app   authn.App
	fcm   *fcmtest.Server
	audit *audit.Log
	svc   *authn.Service
	// users sign in in turn (login), each on its phone.
	users []benchUser
	turn  int
}

// benchUser is a user of the bench server with one enrolled phone.
type benchUser struct {
	email string
	phone *deviceproof.Signer
}

func newBenchServer(tb testing.TB, st *store.Store) *benchServer {
	return newBenchServerAudit(tb, st, audit.Config{})
}

// newBenchServerAudit is newBenchServer with the audit log configured by ac.
func newBenchServerAudit(tb testing.TB, st *store.Store, ac audit.Config) *benchServer {
	tb.Helper()
	ctx := context.Background()
	fake := fcmtest.New(tb)
	pusher, err := push.NewFCM(ctx, push.FCMConfig{CredentialsFile: fake.CredentialsFile(tb), Endpoint: fake.Endpoint()})
	if err != nil {
		tb.Fatal(err)
	}
	const base = "https://idp.example.test"
	log := slog.New(slog.DiscardHandler)
	ac.Logger = log
	auditLog := audit.New(st, ac)
	tb.Cleanup(auditLog.Close)
	svc := authn.New(st, pusher, push.LogMailer{Logger: log}, authn.Config{BaseURL: base, Logger: log, OnChange: auditLog.OnChange,
		IdentifyLimit: 1 << 40, Limits: authn.Limits{PushesPerHour: 1 << 40, PushesPerHourPerUser: 1 << 40, MaxPending: 1 << 20, ParksPerMinute: 1 << 40}})
	tb.Cleanup(svc.Close)
	ring, err := svc.Keys.Ring(ctx, "Winkk Passport IdP")
	if err != nil {
		tb.Fatal(err)
	}
	srv, err := api.New(ctx, api.Config{BaseURL: base, EntityID: "Winkk Passport IdP", AdminToken: adminToken, Logger: log, Audit: auditLog}, svc, ring)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(srv.Closing)
	name, aud, acs := "Jira", atlassianAudience, "https://auth.atlassian.com/login/callback?connection=saml-bench"
	app, err := svc.Apps.Create(ctx, authn.AppPatch{Name: &name, Audience: &aud, ACSURL: &acs})
	if err != nil {
		tb.Fatal(err)
	}
	bs := &benchServer{st: st, srv: srv, base: base, app: app, fcm: fake, audit: auditLog, svc: svc}
	bs.enroll(tb, employee)
	return bs
}

// enroll adds a user with one phone, enrolled by invitation, to those that sign in in turn.
func (bs *benchServer) enroll(tb testing.TB, email string) {
	_, token, err := bs.svc.Devices.Invite(context.Background(), email)
	if err != nil {
		tb.Fatal(err)
	}
	phone := &deviceproof.Signer{Key: newECKey(tb)}
	body := fmt.Sprintf(`{"token":%q,"name":"bench","fcm_token":"bench-token"}`, token)
	rec := bs.do(tb, "POST", "/api/v1/device/enroll", body, "", bs.proof(tb, phone, "POST", "/api/v1/device/enroll", body))
	var enrolled deviceapi.EnrollResponse
	mustJSON(tb, rec, &enrolled)
	phone.KeyID = enrolled.Device.ID
	bs.users = append(bs.users, benchUser{email: email, phone: phone})
}

// enrollUsers has n users sign in in turn. One user's logins in quick succession cost more than a login does:
// a number the phone approved stays taken for a minute, and a draw that meets it draws again.
func (bs *benchServer) enrollUsers(tb testing.TB, n int) {
	for i := len(bs.users); i < n; i++ {
		bs.enroll(tb, fmt.Sprintf("bench-%d@example.com", i))
	}
}

func (bs *benchServer) proof(tb testing.TB, phone *deviceproof.Signer, method, path, body string) string {
	p, err := phone.Sign(method, bs.base+path, []byte(body))
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func (bs *benchServer) do(tb testing.TB, method, path, body, cookie, proof string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, bs.base+path, strings.NewReader(body))
	req.RemoteAddr = "192.0.2.10:5000"
	if strings.HasPrefix(body, "{") {
		req.Header.Set("Content-Type", "application/json")
	} else if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	if proof != "" {
		req.Header.Set(deviceproof.Header, proof)
	}
	rec := httptest.NewRecorder()
	bs.srv.ServeHTTP(rec, req)
	if rec.Code >= 400 {
		tb.Fatalf("%s %s: %d %s", method, path, rec.Code, rec.Body.String())
	}
	return rec
}

// authnRequest is what Atlassian's SP sends by HTTP-Redirect: a deflated, base64 AuthnRequest.
func (bs *benchServer) authnRequest(tb testing.TB, i int) string {
	xml := fmt.Sprintf(`<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_bench%d_%s" Version="2.0" IssueInstant="%s" Destination="%s/saml/%s/sso" AssertionConsumerServiceURL="%s" ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"><saml:Issuer>%s</saml:Issuer><samlp:NameIDPolicy Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress" AllowCreate="true"/></samlp:AuthnRequest>`,
		i, rand.Text(), time.Now().UTC().Format("2006-01-02T15:04:05Z"), bs.base, bs.app.ID, xmlEscape(bs.app.ACSURL), bs.app.Audience)
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, flate.DefaultCompression)
	io.WriteString(w, xml)
	w.Close()
	return "/saml/" + bs.app.ID + "/sso?" + url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString(buf.Bytes())}, "RelayState": {"https://acme.atlassian.net/"}}.Encode()
}

func xmlEscape(s string) string { return strings.ReplaceAll(s, "&", "&amp;") }

// login runs one whole login server-side: request in, parked, identified and pushed (the fake FCM received
// it), approved by the device, Response out.
func (bs *benchServer) login(tb testing.TB, ssoPath string) {
	rec := bs.do(tb, "GET", ssoPath, "", "", "")
	loc := rec.Header().Get("Location")
	cookie := strings.SplitN(rec.Header().Get("Set-Cookie"), ";", 2)[0]
	path := strings.TrimPrefix(loc, bs.base)
	id := strings.TrimPrefix(path, "/login/")
	u := bs.users[bs.turn%len(bs.users)]
	bs.turn++
	page := bs.do(tb, "POST", path, "email="+url.QueryEscape(u.email), cookie, "").Body.String() // answers with the number
	i := strings.Index(page, `data-testid="match-number">`)
	if i < 0 {
		tb.Fatalf("the email's answer shows no number:\n%s", page)
	}
	number := page[i+len(`data-testid="match-number">`) : i+len(`data-testid="match-number">`)+2]
	<-bs.fcm.Sent
	const approvePath = "/api/v1/device/challenges/approve"
	body := `{"number":` + number + `}`
	if rec := bs.do(tb, "POST", approvePath, body, "", bs.proof(tb, u.phone, "POST", approvePath, body)); !strings.Contains(rec.Body.String(), id) {
		tb.Fatalf("approved another sign-in than %s: %s", id, rec.Body.String())
	}
	final := bs.do(tb, "GET", path, "", cookie, "").Body.String()
	if !strings.Contains(final, `name="SAMLResponse"`) {
		tb.Fatalf("no Response:\n%s", final)
	}
}

// BenchmarkLogin is the whole server-side path of one login against real Redis and the real FCM SDK (fake
// FCM on loopback). Compare with BenchmarkTwoRSASignatures, the floor any signed Response costs.
func BenchmarkLogin(b *testing.B) {
	bs := newBenchServer(b, storetest.OpenRedis(b))
	bs.enrollUsers(b, min(b.N, 3000))
	reqs := make([]string, b.N)
	for i := range reqs {
		reqs[i] = bs.authnRequest(b, i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	before := bs.st.Stats().RoundTrips
	for i := range b.N {
		bs.login(b, reqs[i])
	}
	b.ReportMetric(float64(bs.st.Stats().RoundTrips-before)/float64(b.N), "rtt/op")
}

// loginRoundTrips is what one login may cost in store round trips once scripts are loaded and connections
// open: the login admitted (its client counted, the request claimed) and parked in one script (1); the email
// submitted — the login read in one batch with the limit and the user's reads, the move to pending with the
// hourly push counts of the network and the user (2), whose answer is the waiting page; the phone's
// approval — device, proof id claimed with the sign-ins that show the number read beside it (one batch), the
// compare-and-swap (3); the Response — login read, the session written and the approving phone and the user
// read now that the session exists (one batch, in order), the move to answered, which requires the phone's
// record (3).
const loginRoundTrips = 9

// spreadExtra is what a login costs more, in commands, where logins and sessions are spread over a Redis
// Cluster's masters (store.NewSpreadTable): the email step adds the login to the user's indexes before moving
// it, the answer leaves them after (and leaves the login in its number index for a minute), the session joins
// the user's index before it is written (one script each), and the approval by number reads the login once
// the index named it. Each is a round trip of its own, and four more, since one script reaches one slot
// there: the admission (count and claim, one batch of two commands) and the parked login's create are apart;
// the hourly push counts (one script) are hit before the move to pending; the session's write and the reads
// after it cannot share a batch, which a Cluster runs in no particular order; and the user is read apart,
// before the Response is signed, since the move to answered cannot require the phone's record there.
const (
	spreadExtra         = 4
	spreadExtraCommands = spreadExtra + 3
	spreadExtraTrips    = spreadExtra + 4
)

// loginBudget is what a login on st may cost: round trips and commands.
func loginBudget(st *store.Store) (roundTrips, commands int64) {
	if st.Spread() {
		return loginRoundTrips + spreadExtraTrips, loginCommands + spreadExtraCommands
	}
	return loginRoundTrips, loginCommands
}

// TestLoginRoundTrips pins loginRoundTrips: a login costs no more round trips than that, whichever store
// runs the test.
func TestLoginRoundTrips(t *testing.T) {
	st := storetest.Open(t)
	bs := newBenchServer(t, st)
	bs.enrollUsers(t, 4)
	bs.login(t, bs.authnRequest(t, 0)) // loads the scripts, opens the connections
	bs.audit.Close()                   // and records the set-up's events
	trips, commands := loginBudget(st)
	for i := 1; i <= 3; i++ {
		before := st.Stats()
		bs.login(t, bs.authnRequest(t, i))
		after := st.Stats()
		if n := after.RoundTrips - before.RoundTrips; n > trips {
			t.Errorf("login %d took %d round trips to the store, want at most %d", i, n, trips)
		}
		cmds := after.Commands - before.Commands
		t.Logf("login %d: %d round trips, %d commands (spread: %v)", i, after.RoundTrips-before.RoundTrips, cmds, st.Spread())
		if cmds > commands {
			t.Errorf("login %d sent %d commands to the store, want at most %d", i, cmds, commands)
		}
	}
}

// TestDeviceRequestRoundTrips: a request from a phone not seen for over a minute, as an employee's phone
// usually is when it approves a login, costs the store three round trips before its handler runs: the
// device read, its proof's one-time id claimed, and the last-seen time written from the device as read (a
// compare-and-swap, not a read and a write). Listing the phone's devices adds one.
func TestDeviceRequestRoundTrips(t *testing.T) {
	st := storetest.Open(t)
	// The audit log writes its events in round trips of its own, one per FlushEvery whatever the requests do:
	// here not before the test ends, so that the count is the request's alone.
	e := envOf(t, apitest.StartWith(t, st, apitest.Options{Audit: func(c *audit.Config) { c.FlushEvery = time.Hour }}))
	ph := e.enroll(employee)
	ctx := context.Background()
	if _, err := ph.ListDevices(ctx); err != nil { // loads the scripts, opens the connections
		t.Fatal(err)
	}
	for i := range 3 {
		e.clock.Advance(2 * time.Minute) // the last-seen time is written at most once a minute
		before, from := st.Stats().RoundTrips, e.clock.Now()
		list, err := ph.ListDevices(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n := st.Stats().RoundTrips - before; n > 4 {
			t.Errorf("request %d of a phone not seen for 2 minutes took %d round trips to the store, want at most 4", i, n)
		}
		if to := e.clock.Now(); len(list.Devices) != 1 || list.Devices[0].LastSeenAt == nil ||
			list.Devices[0].LastSeenAt.Before(from) || list.Devices[0].LastSeenAt.After(to) {
			t.Errorf("request %d: devices %+v, want this phone seen during the request (%v to %v)", i, list.Devices, from, to)
		}
	}
}

// loginCommands is what one login may send to the store in commands (a script is one; the round trips above
// carry them, batches several each).
const loginCommands = 17

// TestAuditRoundTrips: recording a login's events adds no round trip to the login itself: they are written
// by the audit log's own writer, many in one round trip. How many round trips that writer makes depends on
// time, not on logins: at most one per FlushEvery (20 ms by default), fewer than one per login as soon as
// logins come faster than that. Here the interval is longer than the test, so the count is exact: the
// logins' own round trips, and one write of all their events at Close.
func TestAuditRoundTrips(t *testing.T) {
	st2 := storetest.Open(t)
	bs := newBenchServerAudit(t, st2, audit.Config{FlushEvery: time.Hour})
	bs.enrollUsers(t, 21)
	bs.login(t, bs.authnRequest(t, 0)) // loads the scripts, opens the connections (its events count below)
	const n = 20
	before := st2.Stats().RoundTrips
	for i := 1; i <= n; i++ {
		bs.login(t, bs.authnRequest(t, i))
	}
	bs.audit.Close() // writes what is still queued
	perLogin := float64(st2.Stats().RoundTrips-before) / n
	trips, _ := loginBudget(st2)
	t.Logf("%.2f round trips per login with its events recorded (the login itself: at most %d)", perLogin, trips)
	if perLogin > float64(trips)+1.0/n {
		t.Errorf("%.2f round trips per login with the audit log, want at most %d and one write of all events", perLogin, trips)
	}
}

// BenchmarkTwoRSASignatures is the baseline: the two RSA-2048 PKCS#1 v1.5 SHA-256 signatures every Response
// carries (assertion and response).
func BenchmarkTwoRSASignatures(b *testing.B) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	digest := sha256.Sum256([]byte("signed info"))
	b.ReportAllocs()
	for b.Loop() {
		for range 2 {
			if _, err := rsa.SignPKCS1v15(nil, k, crypto.SHA256, digest[:]); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkStoreFloor is what a login cannot do without, measured in the same run: the two RSA signatures
// and loginRoundTrips bare round trips to the same Redis (a GET of a missing key each). BenchmarkLogin
// above this floor is the HTTP, SAML, JSON, push and proof work.
func BenchmarkStoreFloor(b *testing.B) {
	st := storetest.OpenRedis(b)
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	digest := sha256.Sum256([]byte("signed info"))
	ctx := context.Background()
	for b.Loop() {
		for range loginRoundTrips {
			if _, err := st.GetValue(ctx, "floor"); !errors.Is(err, store.ErrNotFound) {
				b.Fatal(err)
			}
		}
		for range 2 {
			if _, err := rsa.SignPKCS1v15(nil, k, crypto.SHA256, digest[:]); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkDeviceProof is the phone's share inside BenchmarkLogin (it signs its answer), for subtraction.
func BenchmarkDeviceProof(b *testing.B) {
	s := &deviceproof.Signer{Key: newECKey(b), KeyID: "dev"}
	for b.Loop() {
		if _, err := s.Sign("POST", "https://idp.example.test/api/v1/device/challenges/x/answer", []byte(`{"decision":"approve","number":42}`)); err != nil {
			b.Fatal(err)
		}
	}
}
