// Package deviceapitest is an in-memory fake of Passport's device API on an
// httptest server, for testing device clients (deviceapi.Client,
// passport-device). It checks every Device-Proof with package deviceproof the
// way the real server must (signature, typ, htm, htu, bsh, iat, one-time jti,
// kid of a live device or jwk on enrollment) and keeps just enough state —
// invitations, email codes, devices, challenges — to answer every operation of
// api/openapi.yaml. It is not the server: rate limits, pushes and logins are
// not modelled.
package deviceapitest

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/winkk/passport/api/deviceapi"
	"github.com/winkk/passport/authn/deviceproof"
)

// Call records one request the fake answered.
type Call struct {
	Operation string              // operationId, e.g. "answerChallenge"
	Method    string              // HTTP method
	Path      string              // escaped request path
	Query     string              // raw query
	Body      []byte              // request body
	Status    int                 // status answered
	KeyID     string              // proof kid ("" for jwk or no proof)
	JWK       bool                // the proof embedded a jwk
	Claims    *deviceproof.Claims // verified proof claims; nil when there was no valid proof
}

// Fake is the fake server. Its methods are safe for concurrent use.
type Fake struct {
	// URL is the base URL (no trailing slash); every htu must start with it.
	URL string

	srv        *httptest.Server
	mu         sync.Mutex
	now        func() time.Time
	invites    map[string]string // token -> email
	codes      map[string]string // email -> current code
	devices    map[string]*device
	order      []string // device IDs in creation order
	challenges map[string]*challenge
	corder     []string
	jtis       map[string]bool
	calls      []Call
	changed    chan struct{} // closed and replaced when a challenge is added
	waiting    chan struct{} // receives once per waitForChallenge that starts blocking
	missed     chan struct{} // receives once per approveByNumber that matched no challenge
	seq        int
}

type device struct {
	d       deviceapi.Device
	key     *ecdsa.PublicKey
	fcm     string
	removed bool
}

type challenge struct {
	c      deviceapi.Challenge
	number int
	report bool
}

// NewServer starts a fake on loopback and closes it when tb ends.
func NewServer(tb testing.TB) *Fake {
	tb.Helper()
	f := &Fake{
		now:        time.Now,
		invites:    map[string]string{},
		codes:      map[string]string{},
		devices:    map[string]*device{},
		challenges: map[string]*challenge{},
		jtis:       map[string]bool{},
		changed:    make(chan struct{}),
		waiting:    make(chan struct{}, 16),
		missed:     make(chan struct{}, 16),
	}
	f.srv = httptest.NewServer(f.routes())
	f.URL = f.srv.URL
	tb.Cleanup(f.srv.Close)
	return f
}

// Client returns the HTTP client to reach the fake with.
func (f *Fake) Client() *http.Client { return f.srv.Client() }

// AddInvitation registers a one-time invitation token for email.
func (f *Fake) AddInvitation(token, email string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.invites[token] = email
}

// EmailCode returns the code last "mailed" to email, or "".
func (f *Fake) EmailCode(email string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.codes[email]
}

// AddChallenge parks a pending challenge for email, answerable with number,
// and wakes any waitForChallenge of that user.
func (f *Fake) AddChallenge(email string, number int) deviceapi.Challenge {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	now := f.now().UTC().Truncate(time.Second)
	c := &challenge{number: number, c: deviceapi.Challenge{
		ID: fmt.Sprintf("chl_%d", f.seq), AppName: "Jira", AppURL: "https://example.atlassian.net",
		Email: email, Browser: "Firefox 140", OS: "Linux", IP: "192.0.2.7", Location: "Amsterdam, NL",
		CreatedAt: now, ExpiresAt: now.Add(5 * time.Minute), State: deviceapi.StatePending,
	}}
	f.challenges[c.c.ID] = c
	f.corder = append(f.corder, c.c.ID)
	close(f.changed)
	f.changed = make(chan struct{})
	return c.c
}

// Challenge returns a challenge's current state and whether the deny was a
// "this wasn't me" report.
func (f *Fake) Challenge(id string) (c deviceapi.Challenge, reported, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch, ok := f.challenges[id]
	if !ok {
		return deviceapi.Challenge{}, false, false
	}
	return ch.c, ch.report, true
}

// Device returns a device as the server holds it, with its FCM token.
func (f *Fake) Device(id string) (d deviceapi.Device, fcmToken string, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	dv, ok := f.devices[id]
	if !ok || dv.removed {
		return deviceapi.Device{}, "", false
	}
	return dv.d, dv.fcm, true
}

// Calls returns every request answered so far.
func (f *Fake) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// Waiting receives a value each time a waitForChallenge call starts blocking
// (no challenge was pending), so a test can add one without sleeping.
func (f *Fake) Waiting() <-chan struct{} { return f.waiting }

type handler func(w http.ResponseWriter, r *http.Request, call *Call) (status int, body any)

func (f *Fake) routes() http.Handler {
	mux := http.NewServeMux()
	route := func(pattern, op string, proof int, h handler) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			call := Call{Operation: op, Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery}
			status, body := f.serve(w, r, &call, proof, h)
			call.Status = status
			f.mu.Lock()
			f.calls = append(f.calls, call)
			f.mu.Unlock()
			if status == http.StatusNoContent {
				w.WriteHeader(status)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(body)
		})
	}
	const (
		none = iota
		jwk
		kid
	)
	p := deviceapi.BasePath
	route("POST "+p+"/enroll", "enrollByInvitation", jwk, f.enrollByInvitation)
	route("POST "+p+"/email-codes", "requestEmailCode", none, f.requestEmailCode)
	route("POST "+p+"/enroll/email", "enrollByEmail", jwk, f.enrollByEmail)
	route("GET "+p+"/devices", "listDevices", kid, f.listDevices)
	route("PATCH "+p+"/devices/{deviceID}", "renameDevice", kid, f.renameDevice)
	route("DELETE "+p+"/devices/{deviceID}", "removeDevice", kid, f.removeDevice)
	route("PUT "+p+"/push-token", "updatePushToken", kid, f.updatePushToken)
	route("GET "+p+"/challenges", "listChallenges", kid, f.listChallenges)
	route("GET "+p+"/challenges/wait", "waitForChallenge", kid, f.waitForChallenge)
	route("GET "+p+"/challenges/{challengeID}", "getChallenge", kid, f.getChallenge)
	route("POST "+p+"/challenges/approve", "approveByNumber", kid, f.approveByNumber)
	route("POST "+p+"/challenges/{challengeID}/answer", "answerChallenge", kid, f.answerChallenge)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_ = json.NewEncoder(w).Encode(apiErr(deviceapi.CodeNotFound, "no such route"))
	})
	return mux
}

func apiErr(code, msg string) deviceapi.ErrorBody {
	return deviceapi.ErrorBody{Error: deviceapi.ErrorDetail{Code: code, Message: msg}}
}

func fail(code, msg string) (int, any) { return deviceapi.HTTPStatus(code), apiErr(code, msg) }

// serve reads the body, checks the proof and runs h.
func (f *Fake) serve(w http.ResponseWriter, r *http.Request, call *Call, proof int, h handler) (int, any) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		return fail(deviceapi.CodeInvalidRequest, "unreadable body")
	}
	call.Body = body
	if proof != 0 {
		u, err := deviceproof.Parse(r.Header.Get(deviceproof.Header))
		if err != nil {
			return fail(deviceapi.CodeInvalidProof, "invalid device proof")
		}
		call.KeyID, call.JWK = u.KeyID, u.JWK != nil
		var key *ecdsa.PublicKey
		switch {
		case proof == 1 && u.JWK != nil:
			key = u.JWK
		case proof == 2 && u.KeyID != "":
			f.mu.Lock()
			d, ok := f.devices[u.KeyID]
			f.mu.Unlock()
			if !ok {
				return fail(deviceapi.CodeUnknownDevice, "unknown device")
			}
			if d.removed {
				return fail(deviceapi.CodeDeviceRevoked, "device removed")
			}
			key = d.key
		default:
			return fail(deviceapi.CodeInvalidProof, "invalid device proof")
		}
		claims, err := u.Verify(key, deviceproof.Expect{
			Method: r.Method, URL: f.URL + r.URL.EscapedPath(), Body: body, Now: f.now(),
		})
		if err != nil {
			return fail(deviceapi.CodeInvalidProof, "invalid device proof")
		}
		f.mu.Lock()
		replayed := f.jtis[claims.ID]
		f.jtis[claims.ID] = true
		f.mu.Unlock()
		if replayed {
			return fail(deviceapi.CodeProofReplayed, "proof already used")
		}
		call.Claims = claims
	}
	return h(w, r, call)
}

func decode(body []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}

func randomID(prefix string) string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func (f *Fake) enroll(email, name, fcm, platform string, key *ecdsa.PublicKey) (int, any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now().UTC().Truncate(time.Second)
	d := &device{key: key, fcm: fcm, d: deviceapi.Device{
		ID: randomID("dev_"), Name: name, Email: email, Platform: platform, CreatedAt: now,
		PushStatus: deviceapi.PushNone, Current: true,
	}}
	if fcm != "" {
		d.d.PushStatus = deviceapi.PushOK
		d.d.PushTokenUpdatedAt = &now
	}
	f.devices[d.d.ID] = d
	f.order = append(f.order, d.d.ID)
	return http.StatusCreated, deviceapi.EnrollResponse{Device: d.d}
}

func (f *Fake) enrollByInvitation(_ http.ResponseWriter, r *http.Request, call *Call) (int, any) {
	var req deviceapi.EnrollByInvitationRequest
	if err := decode(call.Body, &req); err != nil || req.Token == "" || req.Name == "" {
		return fail(deviceapi.CodeInvalidRequest, "token and name are required")
	}
	f.mu.Lock()
	email, ok := f.invites[req.Token]
	delete(f.invites, req.Token)
	f.mu.Unlock()
	if !ok {
		return fail(deviceapi.CodeInvitationInvalid, "invitation unknown, used or expired")
	}
	u, _ := deviceproof.Parse(r.Header.Get(deviceproof.Header))
	return f.enroll(email, req.Name, req.FCMToken, req.Platform, u.JWK)
}

func (f *Fake) requestEmailCode(_ http.ResponseWriter, _ *http.Request, call *Call) (int, any) {
	var req deviceapi.RequestEmailCodeRequest
	if err := decode(call.Body, &req); err != nil || !strings.Contains(req.Email, "@") {
		return fail(deviceapi.CodeInvalidRequest, "a valid email is required")
	}
	if strings.HasSuffix(req.Email, "@blocked.example") {
		return fail(deviceapi.CodeEmailNotAllowed, "this email may not enroll")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.codes[req.Email] = fmt.Sprintf("%06d", mrand.IntN(1000000))
	return http.StatusAccepted, deviceapi.RequestEmailCodeResponse{ExpiresAt: f.now().UTC().Truncate(time.Second).Add(10 * time.Minute)}
}

func (f *Fake) enrollByEmail(_ http.ResponseWriter, r *http.Request, call *Call) (int, any) {
	var req deviceapi.EnrollByEmailRequest
	if err := decode(call.Body, &req); err != nil || req.Email == "" || req.Code == "" || req.Name == "" {
		return fail(deviceapi.CodeInvalidRequest, "email, code and name are required")
	}
	f.mu.Lock()
	code, ok := f.codes[req.Email]
	if ok && code == req.Code {
		delete(f.codes, req.Email)
	}
	f.mu.Unlock()
	if !ok || code != req.Code {
		return fail(deviceapi.CodeCodeInvalid, "wrong or expired code")
	}
	u, _ := deviceproof.Parse(r.Header.Get(deviceproof.Header))
	return f.enroll(req.Email, req.Name, req.FCMToken, req.Platform, u.JWK)
}

// caller returns the calling device (locked by the caller of caller).
func (f *Fake) caller(call *Call) *device { return f.devices[call.KeyID] }

func (f *Fake) view(d *device, call *Call) deviceapi.Device {
	out := d.d
	out.Current = d.d.ID == call.KeyID
	return out
}

func (f *Fake) listDevices(_ http.ResponseWriter, _ *http.Request, call *Call) (int, any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	me := f.caller(call)
	out := deviceapi.DeviceList{Devices: []deviceapi.Device{}}
	for _, id := range f.order {
		if d := f.devices[id]; !d.removed && d.d.Email == me.d.Email {
			out.Devices = append(out.Devices, f.view(d, call))
		}
	}
	return http.StatusOK, out
}

// sameUserDevice finds a live device of the caller's user (locked).
func (f *Fake) sameUserDevice(call *Call, id string) *device {
	d, ok := f.devices[id]
	if !ok || d.removed || d.d.Email != f.caller(call).d.Email {
		return nil
	}
	return d
}

func (f *Fake) renameDevice(_ http.ResponseWriter, r *http.Request, call *Call) (int, any) {
	var req deviceapi.RenameDeviceRequest
	if err := decode(call.Body, &req); err != nil || strings.TrimSpace(req.Name) == "" {
		return fail(deviceapi.CodeInvalidRequest, "name is required")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.sameUserDevice(call, r.PathValue("deviceID"))
	if d == nil {
		return fail(deviceapi.CodeNotFound, "no such device")
	}
	d.d.Name = req.Name
	return http.StatusOK, f.view(d, call)
}

func (f *Fake) removeDevice(_ http.ResponseWriter, r *http.Request, call *Call) (int, any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.sameUserDevice(call, r.PathValue("deviceID"))
	if d == nil {
		return fail(deviceapi.CodeNotFound, "no such device")
	}
	d.removed = true
	return http.StatusNoContent, nil
}

func (f *Fake) updatePushToken(_ http.ResponseWriter, _ *http.Request, call *Call) (int, any) {
	var req deviceapi.UpdatePushTokenRequest
	if err := decode(call.Body, &req); err != nil {
		return fail(deviceapi.CodeInvalidRequest, "fcm_token is required")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.caller(call)
	now := f.now().UTC().Truncate(time.Second)
	d.fcm = req.FCMToken
	d.d.PushTokenUpdatedAt = &now
	d.d.PushStatus = deviceapi.PushOK
	if req.FCMToken == "" {
		d.d.PushStatus = deviceapi.PushNone
	}
	return http.StatusOK, f.view(d, call)
}

// pending lists the caller's user's pending challenges (locked).
func (f *Fake) pending(call *Call) []deviceapi.Challenge {
	email := f.caller(call).d.Email
	now := f.now()
	out := []deviceapi.Challenge{}
	for _, id := range f.corder {
		c := f.challenges[id]
		if c.c.Email == email && c.c.State == deviceapi.StatePending && now.Before(c.c.ExpiresAt) {
			out = append(out, c.c)
		}
	}
	return out
}

func (f *Fake) listChallenges(_ http.ResponseWriter, _ *http.Request, call *Call) (int, any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return http.StatusOK, deviceapi.ChallengeList{Challenges: f.pending(call)}
}

func (f *Fake) waitForChallenge(_ http.ResponseWriter, r *http.Request, call *Call) (int, any) {
	timeout := deviceapi.DefaultWait
	if s := r.URL.Query().Get("timeout"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return fail(deviceapi.CodeInvalidRequest, "timeout must be a duration such as 25s")
		}
		timeout = min(d, deviceapi.MaxWait)
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	signalled := false
	for {
		f.mu.Lock()
		p := f.pending(call)
		changed := f.changed
		f.mu.Unlock()
		if len(p) > 0 {
			return http.StatusOK, p[0]
		}
		if !signalled {
			signalled = true
			select {
			case f.waiting <- struct{}{}:
			default:
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return http.StatusNoContent, nil
		}
	}
}

func (f *Fake) getChallenge(_ http.ResponseWriter, r *http.Request, call *Call) (int, any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.challenges[r.PathValue("challengeID")]
	if !ok || c.c.Email != f.caller(call).d.Email {
		return fail(deviceapi.CodeChallengeNotFound, "no such challenge")
	}
	return http.StatusOK, c.c
}

// Missed receives a value each time an approveByNumber call finds no pending
// challenge showing its number (buffered; extra values are dropped).
func (f *Fake) Missed() <-chan struct{} { return f.missed }

func (f *Fake) approveByNumber(_ http.ResponseWriter, _ *http.Request, call *Call) (int, any) {
	var req deviceapi.ApproveByNumberRequest
	if err := decode(call.Body, &req); err != nil || req.Number < 10 || req.Number > 99 {
		return fail(deviceapi.CodeInvalidRequest, "number must be the two-digit number shown in the browser")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	email := f.caller(call).d.Email
	for _, id := range f.corder {
		c := f.challenges[id]
		if c.c.Email == email && c.number == req.Number && c.c.State == deviceapi.StatePending && f.now().Before(c.c.ExpiresAt) {
			c.c.State = deviceapi.StateApproved
			return http.StatusOK, deviceapi.ApproveByNumberResponse{Challenge: c.c, State: c.c.State}
		}
	}
	select {
	case f.missed <- struct{}{}:
	default:
	}
	return fail(deviceapi.CodeNoMatchingChallenge, "no open sign-in request of this account shows this number")
}

func (f *Fake) answerChallenge(_ http.ResponseWriter, r *http.Request, call *Call) (int, any) {
	var req deviceapi.AnswerRequest
	if err := decode(call.Body, &req); err != nil ||
		(req.Decision != deviceapi.DecisionApprove && req.Decision != deviceapi.DecisionDeny) ||
		(req.Decision == deviceapi.DecisionApprove && (req.Number == 0 || req.Report)) {
		return fail(deviceapi.CodeInvalidRequest, "decision must be approve (with number) or deny")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.challenges[r.PathValue("challengeID")]
	if !ok || c.c.Email != f.caller(call).d.Email {
		return fail(deviceapi.CodeChallengeNotFound, "no such challenge")
	}
	if c.c.State != deviceapi.StatePending || !f.now().Before(c.c.ExpiresAt) {
		return fail(deviceapi.CodeChallengeClosed, "challenge already answered or expired")
	}
	if req.Decision == deviceapi.DecisionDeny {
		c.c.State, c.report = deviceapi.StateDenied, req.Report
		return http.StatusOK, deviceapi.AnswerResponse{State: c.c.State}
	}
	if req.Number != c.number {
		c.c.State = deviceapi.StateDenied
		return fail(deviceapi.CodeNumberMismatch, "the number does not match; the login was denied")
	}
	c.c.State = deviceapi.StateApproved
	return http.StatusOK, deviceapi.AnswerResponse{State: c.c.State}
}
