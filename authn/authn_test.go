package authn_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/authn/deviceproof"
	"github.com/winkk/passport/push"
	"github.com/winkk/passport/store/storetest"
)

const base = "https://idp.example.test"

func mustService(tb testing.TB) *authn.Service {
	tb.Helper()
	return mustServiceWith(tb, authn.Config{})
}

// mustServiceWith is mustService with cfg (BaseURL and Logger are filled in).
func mustServiceWith(tb testing.TB, cfg authn.Config) *authn.Service {
	tb.Helper()
	log := slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))
	cfg.BaseURL, cfg.Logger = base, log
	svc := authn.New(storetest.Open(tb), push.LogSender{Logger: log}, push.LogMailer{Logger: log}, cfg)
	tb.Cleanup(svc.Close)
	return svc
}

func mustKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// enrollProof is the proof a phone sends with an enrollment request body.
func enrollProof(tb testing.TB, key *ecdsa.PrivateKey, body []byte) authn.ProofRequest {
	tb.Helper()
	u := base + "/api/v1/device/enroll"
	p, err := (&deviceproof.Signer{Key: key}).Sign("POST", u, body)
	if err != nil {
		tb.Fatal(err)
	}
	return authn.ProofRequest{Proof: p, Method: "POST", URL: u, Body: body}
}

func mustEnroll(tb testing.TB, svc *authn.Service, email string) authn.Device {
	tb.Helper()
	ctx := context.Background()
	_, token, err := svc.Devices.Invite(ctx, email)
	if err != nil {
		tb.Fatal(err)
	}
	d, err := svc.Devices.EnrollByInvitation(ctx, enrollProof(tb, mustKey(tb), []byte(token)), token, authn.EnrollRequest{Name: "phone"})
	if err != nil {
		tb.Fatalf("enroll: %v", err)
	}
	return d
}

func mustApp(tb testing.TB, svc *authn.Service) authn.App {
	tb.Helper()
	name, aud, acs := "Jira", "https://sp.example.test/"+rand.Text(), "https://sp.example.test/acs"
	a, err := svc.Apps.Create(context.Background(), authn.AppPatch{Name: &name, Audience: &aud, ACSURL: &acs})
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

// mustPending parks a login for email and identifies it, returning the login and the browser secret.
func mustPending(tb testing.TB, svc *authn.Service, app authn.App, email string) (authn.Login, string) {
	tb.Helper()
	ctx := context.Background()
	l, secret, err := svc.Logins.Park(ctx, authn.StartLogin{AppID: app.ID, RequestID: "_req" + rand.Text(), ClientIP: "192.0.2.1"})
	if err != nil {
		tb.Fatal(err)
	}
	l, err = svc.Logins.Identify(ctx, mustGetLogin(tb, svc, l.ID, secret), email, "client-"+rand.Text())
	if err != nil || l.State != authn.StatePending {
		tb.Fatalf("identify: %v (state %s)", err, l.State)
	}
	return l, secret
}

// race runs fn n times at once and returns how many calls returned nil.
func race(n int, fn func(i int) error) (wins int, errs []error) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			err := fn(i)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				wins++
			} else {
				errs = append(errs, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	return wins, errs
}

// Every state change that must happen once is atomic: of many concurrent attempts exactly one wins.
func TestExactlyOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("approving a login from two phones", func(t *testing.T) {
		svc := mustService(t)
		app := mustApp(t, svc)
		email := "race-" + rand.Text() + "@example.com"
		phones := []authn.Device{mustEnroll(t, svc, email), mustEnroll(t, svc, email)}
		l, secret := mustPending(t, svc, app, email)
		// Each phone sends its approval 20 times. The first to land wins; the winner's other sends are its
		// approval sent again and are told it; every send of the other phone is refused.
		var mu sync.Mutex
		told := map[string]int{}
		_, errs := race(40, func(i int) error {
			got, err := svc.Logins.Answer(ctx, phones[i%2], l.ID, authn.Decision{Approve: true, Number: l.Number})
			if err == nil {
				mu.Lock()
				told[got.AnsweredBy]++
				mu.Unlock()
			}
			return err
		})
		won, err := svc.Logins.Get(ctx, l.ID, secret)
		if err != nil {
			t.Fatal(err)
		}
		if len(told) != 1 || told[won.AnsweredBy] != 20 || won.State != authn.StateApproved {
			t.Fatalf("approved by %s; the phones were told they approved: %v (want one phone, 20 times)", won.AnsweredBy, told)
		}
		for _, err := range errs {
			if !errors.Is(err, authn.ErrChallengeClosed) {
				t.Errorf("losing answer: %v, want ErrChallengeClosed", err)
			}
		}
	})

	t.Run("using an invitation", func(t *testing.T) {
		svc := mustService(t)
		_, token, err := svc.Devices.Invite(ctx, "inv-"+rand.Text()+"@example.com")
		if err != nil {
			t.Fatal(err)
		}
		keys := make([]*ecdsa.PrivateKey, 20)
		for i := range keys {
			keys[i] = mustKey(t)
		}
		wins, errs := race(len(keys), func(i int) error {
			_, err := svc.Devices.EnrollByInvitation(ctx, enrollProof(t, keys[i], []byte(token)), token, authn.EnrollRequest{})
			return err
		})
		if wins != 1 {
			t.Fatalf("%d enrollments won, want exactly 1", wins)
		}
		for _, err := range errs {
			if !errors.Is(err, authn.ErrInvitation) {
				t.Errorf("losing enrollment: %v, want ErrInvitation", err)
			}
		}
	})

	t.Run("answering a login", func(t *testing.T) {
		svc := mustService(t)
		app := mustApp(t, svc)
		email := "resp-" + rand.Text() + "@example.com"
		d := mustEnroll(t, svc, email)
		l, secret := mustPending(t, svc, app, email)
		if _, err := svc.Logins.Answer(ctx, d, l.ID, authn.Decision{Approve: true, Number: l.Number}); err != nil {
			t.Fatal(err)
		}
		var built atomic.Int64
		var mu sync.Mutex
		seen := map[string]bool{}
		wins, errs := race(20, func(int) error {
			mine, err := svc.Logins.Get(ctx, l.ID, secret)
			if err != nil {
				return err
			}
			got, _, err := respondWith(ctx, svc, mine, app.ID, func(authn.Login, authn.User) ([]byte, error) {
				built.Add(1)
				return []byte("response-" + rand.Text()), nil
			})
			if err == nil {
				mu.Lock()
				seen[string(got.Response)] = true
				mu.Unlock()
			}
			return err
		})
		if wins != 20 || len(errs) != 0 {
			t.Fatalf("%d of 20 calls got the Response (%v)", wins, errs)
		}
		if len(seen) != 1 {
			t.Fatalf("callers saw %d different Responses, want exactly 1", len(seen))
		}
	})

	t.Run("consuming an AuthnRequest ID", func(t *testing.T) {
		svc := mustService(t)
		id := "_" + rand.Text()
		wins, _ := race(30, func(int) error { return svc.Logins.ConsumeRequestID(ctx, "app", id, time.Minute) })
		if wins != 1 {
			t.Fatalf("%d consumers won, want exactly 1", wins)
		}
	})
}

func TestLoginStates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc := mustService(t)
	app := mustApp(t, svc)

	// No account probing: an unknown address, a suspended user and a user without a phone wait with a number
	// like an enrolled user, but nothing is pushed and nothing can approve them.
	decoy := func(t *testing.T, email string) authn.Login {
		t.Helper()
		l, secret, err := svc.Logins.Park(ctx, authn.StartLogin{AppID: app.ID, Network: "192.0.2.9"})
		if err != nil {
			t.Fatal(err)
		}
		l, err = svc.Logins.Identify(ctx, mustGetLogin(t, svc, l.ID, secret), email, "192.0.2.9")
		if err != nil || l.State != authn.StatePending || l.Number < 10 || l.Number > 99 || !l.Decoy || len(l.Devices) != 0 {
			t.Fatalf("state %s number %d decoy %v devices %v err %v", l.State, l.Number, l.Decoy, l.Devices, err)
		}
		return l
	}
	t.Run("unknown email waits without a push", func(t *testing.T) {
		decoy(t, "nobody-"+rand.Text()+"@example.com")
	})
	t.Run("user without a phone waits without a push", func(t *testing.T) {
		email := "nophone-" + rand.Text() + "@example.com"
		if _, err := svc.Users.Create(ctx, authn.UserPatch{Email: &email}); err != nil {
			t.Fatal(err)
		}
		decoy(t, email)
	})
	t.Run("suspended user waits, and their phone can neither see nor approve it", func(t *testing.T) {
		email := "sus-" + rand.Text() + "@example.com"
		d := mustEnroll(t, svc, email)
		st := authn.UserSuspended
		if _, err := svc.Users.Update(ctx, email, authn.UserPatch{Status: &st}); err != nil {
			t.Fatal(err)
		}
		l := decoy(t, email)
		if ls, err := svc.Logins.Challenges(ctx, d); err != nil || len(ls) != 0 {
			t.Fatalf("the phone lists %v (%v)", ls, err)
		}
		if _, err := svc.Logins.ApproveByNumber(ctx, d, l.Number); !errors.Is(err, authn.ErrNoMatchingChallenge) {
			t.Fatalf("approve by number: %v, want ErrNoMatchingChallenge", err)
		}
		if _, err := svc.Logins.Answer(ctx, d, l.ID, authn.Decision{Approve: true, Number: l.Number}); !errors.Is(err, authn.ErrNotFound) {
			t.Fatalf("answer: %v, want ErrNotFound", err)
		}
	})

	t.Run("wrong browser secret", func(t *testing.T) {
		l, _, _ := svc.Logins.Park(ctx, authn.StartLogin{AppID: app.ID})
		if _, err := svc.Logins.Get(ctx, l.ID, "not-the-secret"); !errors.Is(err, authn.ErrForbidden) {
			t.Fatalf("got %v, want ErrForbidden", err)
		}
		if _, err := svc.Logins.Get(ctx, l.ID, ""); !errors.Is(err, authn.ErrForbidden) {
			t.Fatalf("empty secret: got %v, want ErrForbidden", err)
		}
	})

	t.Run("email submissions are rate limited per client", func(t *testing.T) {
		svc := mustServiceWith(t, authn.Config{IdentifyLimit: 10})
		l, secret, _ := svc.Logins.Park(ctx, authn.StartLogin{AppID: app.ID})
		client := "flood-" + rand.Text()
		var err error
		for range 11 {
			_, err = svc.Logins.Identify(ctx, mustGetLogin(t, svc, l.ID, secret), "not an email", client)
		}
		if !errors.Is(err, authn.ErrRateLimited) {
			t.Fatalf("11th submission: %v, want ErrRateLimited", err)
		}
	})

	t.Run("respond refuses a login that is not approved", func(t *testing.T) {
		email := "pend-" + rand.Text() + "@example.com"
		mustEnroll(t, svc, email)
		l, secret := mustPending(t, svc, app, email)
		mine, err := svc.Logins.Get(ctx, l.ID, secret)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = respondWith(ctx, svc, mine, app.ID, func(authn.Login, authn.User) ([]byte, error) {
			return []byte("x"), nil
		})
		if !errors.Is(err, authn.ErrConflict) {
			t.Fatalf("got %v, want ErrConflict", err)
		}
	})
}

func mustGetLogin(tb testing.TB, svc *authn.Service, id, secret string) authn.Login {
	tb.Helper()
	l, err := svc.Logins.Get(context.Background(), id, secret)
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// A refused enrollment (here: a key that is already enrolled) does not use up the invitation, and IDs that
// cannot be ours are not found without touching the store.
func TestEnrollmentKeepsInvitationOnFailure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc := mustService(t)
	taken := mustKey(t)
	_, first, _ := svc.Devices.Invite(ctx, "ken@example.com")
	if _, err := svc.Devices.EnrollByInvitation(ctx, enrollProof(t, taken, []byte(first)), first, authn.EnrollRequest{}); err != nil {
		t.Fatal(err)
	}
	_, token, _ := svc.Devices.Invite(ctx, "ken@example.com")
	if _, err := svc.Devices.EnrollByInvitation(ctx, enrollProof(t, taken, []byte(token)), token, authn.EnrollRequest{}); !errors.Is(err, authn.ErrConflict) {
		t.Fatalf("enrolling a key twice: %v, want ErrConflict", err)
	}
	if _, err := svc.Devices.EnrollByInvitation(ctx, enrollProof(t, mustKey(t), []byte(token)), token, authn.EnrollRequest{}); err != nil {
		t.Fatalf("the invitation was used up by the refused enrollment: %v", err)
	}
	for _, id := range []string{"", "UPPER", "../x", strings.Repeat("a", 65), "a b"} {
		if _, err := svc.Logins.Get(ctx, id, "secret"); !errors.Is(err, authn.ErrNotFound) {
			t.Errorf("GetLogin(%q): %v, want ErrNotFound", id, err)
		}
		if _, err := svc.Apps.Get(ctx, id); !errors.Is(err, authn.ErrNotFound) {
			t.Errorf("GetApp(%q): %v, want ErrNotFound", id, err)
		}
	}
}

// codeMailer keeps the last code mailed (new-device notices, sent in the background, are not codes).
type codeMailer struct {
	mu   sync.Mutex
	last string
}

func (m *codeMailer) Send(_ context.Context, _, subject, _ string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if code, ok := strings.CutPrefix(subject, "Your Passport code: "); ok {
		m.last = code
	}
	return nil
}

// TestEmailCodeGuessBurst: however many guesses at one address's code arrive at once, and from however many
// clients, no more than EmailCodeMaxWrong are compared with it; the rest are refused as locked.
func TestEmailCodeGuessBurst(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.DiscardHandler)
	mail := &codeMailer{}
	svc := authn.New(storetest.Open(t), push.LogSender{Logger: log}, mail, authn.Config{BaseURL: base, Logger: log})
	t.Cleanup(svc.Close)
	ctx := context.Background()
	const victim = "victim@example.com"
	if _, err := svc.Devices.RequestEmailCode(ctx, victim, "victim-phone"); err != nil {
		t.Fatal(err)
	}
	code := mail.last
	const n = 200
	guesses := make([]string, 0, n)
	for i := 0; len(guesses) < n-1; i++ {
		if g := fmt.Sprintf("%06d", i); g != code {
			guesses = append(guesses, g)
		}
	}
	guesses = append(guesses, code)
	keys := make([]*ecdsa.PrivateKey, n)
	for i := range keys {
		keys[i] = mustKey(t)
	}
	var compared, locked atomic.Int64
	race(n, func(i int) error {
		body := []byte(`{"email":"` + victim + `"}`)
		_, err := svc.Devices.EnrollByEmail(ctx, enrollProof(t, keys[i], body), victim, guesses[i], fmt.Sprint("client-", i), authn.EnrollRequest{Name: "guess"})
		switch {
		case err == nil, errors.Is(err, authn.ErrCodeInvalid):
			compared.Add(1)
		case errors.Is(err, authn.ErrCodeLocked):
			locked.Add(1)
		default:
			t.Errorf("guess %d: %v", i, err)
		}
		return err
	})
	if compared.Load() > authn.EmailCodeMaxWrong || compared.Load()+locked.Load() != n {
		t.Fatalf("%d guesses compared with the code, %d refused as locked; want at most %d compared", compared.Load(), locked.Load(), authn.EmailCodeMaxWrong)
	}
	body := []byte(`{"email":"` + victim + `"}`)
	if _, err := svc.Devices.EnrollByEmail(ctx, enrollProof(t, mustKey(t), body), victim, code, "victim-phone", authn.EnrollRequest{Name: "phone"}); !errors.Is(err, authn.ErrCodeLocked) {
		t.Fatalf("the right code after the burst: %v, want ErrCodeLocked", err)
	}
}

// TestEmailCodeTriesPerClient: one client cannot try codes for address after address without limit.
func TestEmailCodeTriesPerClient(t *testing.T) {
	t.Parallel()
	svc := mustService(t)
	ctx := context.Background()
	var last error
	for i := range authn.EmailClientLimit + 1 {
		email := fmt.Sprintf("user%d@example.com", i)
		body := []byte(`{"email":"` + email + `"}`)
		_, last = svc.Devices.EnrollByEmail(ctx, enrollProof(t, mustKey(t), body), email, "123456", "one-client", authn.EnrollRequest{Name: "guess"})
		if i < authn.EmailClientLimit && !errors.Is(last, authn.ErrCodeInvalid) {
			t.Fatalf("try %d: %v, want ErrCodeInvalid", i+1, last)
		}
	}
	if !errors.Is(last, authn.ErrRateLimited) {
		t.Fatalf("try %d from one client: %v, want ErrRateLimited", authn.EmailClientLimit+1, last)
	}
}

// TestRightCodeGivesItsTryBack: a right code does not count among the address's wrong tries.
func TestRightCodeGivesItsTryBack(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.DiscardHandler)
	mail := &codeMailer{}
	svc := authn.New(storetest.Open(t), push.LogSender{Logger: log}, mail, authn.Config{BaseURL: base, Logger: log})
	t.Cleanup(svc.Close)
	ctx := context.Background()
	const email = "ada@example.com"
	for i := range authn.EmailCodeMaxWrong + 1 { // more right codes than wrong tries allowed
		if _, err := svc.Devices.RequestEmailCode(ctx, email, fmt.Sprint("phone-", i)); err != nil {
			if errors.Is(err, authn.ErrRateLimited) {
				break // sends are limited too; enough right codes were used by then
			}
			t.Fatal(err)
		}
		body := []byte(`{"email":"` + email + `"}`)
		if _, err := svc.Devices.EnrollByEmail(ctx, enrollProof(t, mustKey(t), body), email, mail.last, fmt.Sprint("phone-", i), authn.EnrollRequest{Name: "phone"}); err != nil {
			t.Fatalf("right code %d: %v", i+1, err)
		}
	}
	if n, _, err := svc.Store().Count(ctx, "email-code-fail:"+email); err != nil || n != 0 {
		t.Fatalf("wrong tries counted after right codes only: %d, %v", n, err)
	}
}

// TestDeletedUserStaysDeleted: deleting a user withdraws the invitations it still had, and an invitation
// used anyway does not bring the user back.
func TestDeletedUserStaysDeleted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc := mustService(t)
	const leaver = "leaver@example.com"
	_, token, err := svc.Devices.Invite(ctx, leaver)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Users.Delete(ctx, leaver); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Devices.Invitation(ctx, token); !errors.Is(err, authn.ErrNotFound) {
		t.Fatalf("invitation after its user was deleted: %v, want ErrNotFound", err)
	}
	if _, err := svc.Devices.EnrollByInvitation(ctx, enrollProof(t, mustKey(t), []byte(token)), token, authn.EnrollRequest{}); !errors.Is(err, authn.ErrInvitation) {
		t.Fatalf("enrolling with a withdrawn invitation: %v, want ErrInvitation", err)
	}
	if _, err := svc.Users.Get(ctx, leaver); !errors.Is(err, authn.ErrNotFound) {
		t.Fatalf("the deleted user came back: %v", err)
	}
}

// TestRespondRace: of page loads that read the same approved login, the one whose Response is stored opens
// the session and gets its cookie; the others show that Response and leave no session behind.
func TestRespondRace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc := mustService(t)
	app := mustApp(t, svc)
	const email = "race@example.com"
	d := mustEnroll(t, svc, email)
	build := func(authn.Login, authn.User) ([]byte, error) {
		return []byte("response-" + rand.Text()), nil
	}
	approved := func(t *testing.T) (authn.Login, string) {
		t.Helper()
		l, secret := mustPending(t, svc, app, email)
		if _, err := svc.Logins.Answer(ctx, d, l.ID, authn.Decision{Approve: true, Number: l.Number}); err != nil {
			t.Fatal(err)
		}
		return l, secret
	}
	check := func(t *testing.T, cookies []string, responses map[string]bool) {
		t.Helper()
		n := 0
		for _, c := range cookies {
			if c != "" {
				n++
			}
		}
		sessions, err := svc.Sessions.EndUser(ctx, email)
		if n != 1 || sessions != 1 || len(responses) != 1 || err != nil {
			t.Fatalf("%d cookies, %d sessions, %d different Responses (%v); want 1, 1, 1", n, sessions, len(responses), err)
		}
	}
	t.Run("one after the other, from the same read", func(t *testing.T) {
		l, secret := approved(t)
		first, second := mustGetLogin(t, svc, l.ID, secret), mustGetLogin(t, svc, l.ID, secret)
		responses := map[string]bool{}
		var cookies []string
		for _, read := range []authn.Login{first, second} {
			got, cookie, err := respondWith(ctx, svc, read, app.ID, build)
			if err != nil {
				t.Fatal(err)
			}
			cookies, responses[string(got.Response)] = append(cookies, cookie), true
		}
		check(t, cookies, responses)
	})
	t.Run("at once", func(t *testing.T) {
		l, secret := approved(t)
		read := mustGetLogin(t, svc, l.ID, secret)
		var mu sync.Mutex
		responses := map[string]bool{}
		var cookies []string
		race(10, func(int) error {
			got, cookie, err := respondWith(ctx, svc, read, app.ID, build)
			mu.Lock()
			defer mu.Unlock()
			cookies, responses[string(got.Response)] = append(cookies, cookie), true
			return err
		})
		check(t, cookies, responses)
	})
}

// TestRemovedPhoneOpensNoSession: a login approved by a phone removed before the browser collects the
// Response does not open a session.
func TestRemovedPhoneOpensNoSession(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc := mustService(t)
	app := mustApp(t, svc)
	const email = "lost@example.com"
	d := mustEnroll(t, svc, email)
	l, secret := mustPending(t, svc, app, email)
	if _, err := svc.Logins.Answer(ctx, d, l.ID, authn.Decision{Approve: true, Number: l.Number}); err != nil {
		t.Fatal(err)
	}
	if err := svc.Devices.Remove(ctx, email, d.ID); err != nil {
		t.Fatal(err)
	}
	_, cookie, err := respondWith(ctx, svc, mustGetLogin(t, svc, l.ID, secret), app.ID, func(authn.Login, authn.User) ([]byte, error) {
		return []byte("response"), nil
	})
	if !errors.Is(err, authn.ErrForbidden) || cookie != "" {
		t.Fatalf("Respond after the approving phone was removed: cookie %q, %v; want ErrForbidden", cookie, err)
	}
	if n, _ := svc.Sessions.EndUser(ctx, email); n != 0 {
		t.Fatalf("%d sessions opened", n)
	}

	t.Run("removed while the Response is being signed", func(t *testing.T) {
		d := mustEnroll(t, svc, email)
		l, secret := mustPending(t, svc, app, email)
		if _, err := svc.Logins.Answer(ctx, d, l.ID, authn.Decision{Approve: true, Number: l.Number}); err != nil {
			t.Fatal(err)
		}
		_, cookie, err := respondWith(ctx, svc, mustGetLogin(t, svc, l.ID, secret), app.ID, func(authn.Login, authn.User) ([]byte, error) {
			if err := svc.Devices.Remove(ctx, email, d.ID); err != nil { // the admin acts while we sign
				return nil, err
			}
			return []byte("response"), nil
		})
		if !errors.Is(err, authn.ErrForbidden) || cookie != "" {
			t.Fatalf("Respond while the approving phone was removed: cookie %q, %v; want ErrForbidden", cookie, err)
		}
		if n, _ := svc.Sessions.EndUser(ctx, email); n != 0 {
			t.Fatalf("%d sessions opened by a removed phone's approval", n)
		}
	})
}

// TestDeleteUserRacesInvitation: an admin deletes a user while its phone uses the invitation; whichever
// comes first, the user and any phone are gone afterwards.
func TestDeleteUserRacesInvitation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc := mustService(t)
	for i := range 150 {
		email := fmt.Sprintf("del%d@example.com", i)
		_, token, err := svc.Devices.Invite(ctx, email)
		if err != nil {
			t.Fatal(err)
		}
		pr := enrollProof(t, mustKey(t), []byte(token))
		race(2, func(j int) error {
			if j == 0 {
				time.Sleep(time.Duration(i%30) * 50 * time.Microsecond)
				return svc.Users.Delete(ctx, email)
			}
			_, err := svc.Devices.EnrollByInvitation(ctx, pr, token, authn.EnrollRequest{Name: "phone"})
			return err
		})
		if _, err := svc.Users.Get(ctx, email); !errors.Is(err, authn.ErrNotFound) {
			t.Fatalf("race %d: the deleted user exists afterwards (%v)", i, err)
		}
		if ds, err := svc.Devices.List(ctx, email); err != nil || len(ds) != 0 {
			t.Fatalf("race %d: %d devices left for the deleted user (%v)", i, len(ds), err)
		}
	}
}

// TestApprovalPrefetch: the sign-ins an approval by number reads beside its proof's claim (PrefetchNumber,
// ProofRequest.Prefetch) count only for the user of the device whose proof was claimed and for the number
// they were read for; any other approval reads its own. A replayed proof is refused, prefetch or not.
func TestApprovalPrefetch(t *testing.T) {
	svc := mustService(t)
	ctx := context.Background()
	app := mustApp(t, svc)
	enroll := func(email string) (authn.Device, *deviceproof.Signer) {
		_, token, err := svc.Devices.Invite(ctx, email)
		if err != nil {
			t.Fatal(err)
		}
		key := mustKey(t)
		d, err := svc.Devices.EnrollByInvitation(ctx, enrollProof(t, key, []byte(token)), token, authn.EnrollRequest{Name: "phone"})
		if err != nil {
			t.Fatal(err)
		}
		return d, &deviceproof.Signer{Key: key, KeyID: d.ID}
	}
	_, adaSigner := enroll("ada@example.com")
	ben, _ := enroll("ben@example.com")
	u := base + "/api/v1/device/challenges/approve"
	// authenticate checks a fresh proof of Ada's phone with p as its prefetch.
	authenticate := func(p authn.Prefetch) (authn.Device, error) {
		t.Helper()
		body := []byte(`{"number":10}`) // the prefetch is the caller's; the body is only signed here
		proof, err := adaSigner.Sign("POST", u, body)
		if err != nil {
			t.Fatal(err)
		}
		return svc.Devices.Authenticate(ctx, authn.ProofRequest{Proof: proof, Method: "POST", URL: u, Body: body, Prefetch: p})
	}

	// Read for Ben's number by Ada's proof: Ben's approval of that number reads his own sign-ins.
	lb, _ := mustPending(t, svc, app, "ben@example.com")
	p := svc.Logins.PrefetchNumber(lb.Number)
	if _, err := authenticate(p); err != nil {
		t.Fatal(err)
	}
	if l, err := svc.Logins.ApproveSigned(ctx, ben, authn.Decision{Number: lb.Number, Prefetched: p}); err != nil || l.ID != lb.ID {
		t.Errorf("Ben's approval with Ada's prefetch: %v, %s; want his sign-in %s approved", err, l.ID, lb.ID)
	}

	// Read for one of Ada's numbers: her approval of another number reads that number's sign-ins.
	la, _ := mustPending(t, svc, app, "ada@example.com")
	la2, _ := mustPending(t, svc, app, "ada@example.com") // numbers differ among a user's open sign-ins
	p = svc.Logins.PrefetchNumber(la.Number)
	d, err := authenticate(p)
	if err != nil {
		t.Fatal(err)
	}
	if l, err := svc.Logins.ApproveSigned(ctx, d, authn.Decision{Number: la2.Number, Prefetched: p}); err != nil || l.ID != la2.ID {
		t.Errorf("approval of %d with a prefetch of %d: %v, %s; want sign-in %s approved", la2.Number, la.Number, err, l.ID, la2.ID)
	}

	// Read for the number approved: used, and the sign-in showing it approved.
	p = svc.Logins.PrefetchNumber(la.Number)
	if d, err = authenticate(p); err != nil {
		t.Fatal(err)
	}
	if l, err := svc.Logins.ApproveSigned(ctx, d, authn.Decision{Number: la.Number, Prefetched: p}); err != nil || l.ID != la.ID || l.State != authn.StateApproved {
		t.Errorf("approval with its own prefetch: %v, %s %s; want sign-in %s approved", err, l.ID, l.State, la.ID)
	}
	if svc.Logins.PrefetchNumber(9) != nil || svc.Logins.PrefetchNumber(100) != nil {
		t.Error("a prefetch of a number no browser shows, want none")
	}

	// A replayed proof is refused before its prefetch could count.
	body := []byte(`{"number":10}`)
	proof, err := adaSigner.Sign("POST", u, body)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []error{nil, authn.ErrProofReplayed} {
		_, err := svc.Devices.Authenticate(ctx, authn.ProofRequest{Proof: proof, Method: "POST", URL: u, Body: body, Prefetch: svc.Logins.PrefetchNumber(la.Number)})
		if (want == nil && err != nil) || (want != nil && !errors.Is(err, want)) {
			t.Errorf("use %d of one proof: %v, want %v", i+1, err, want)
		}
	}
}

// TestIdentifyPrefetchNetwork: the email step's reads made beside the login's (GetWith, IdentifyPrefetched)
// are for the client's network; a login parked from another network is judged by its own network's pause,
// read again, as Identify judges it.
func TestIdentifyPrefetchNetwork(t *testing.T) {
	svc := mustService(t)
	ctx := context.Background()
	app := mustApp(t, svc)
	email := "ada@example.com"
	d := mustEnroll(t, svc, email)
	park := func(net string) (authn.Login, string) {
		t.Helper()
		l, secret, err := svc.Logins.Park(ctx, authn.StartLogin{AppID: app.ID, RequestID: "_req" + rand.Text(), ClientIP: "192.0.2.1", Network: net})
		if err != nil {
			t.Fatal(err)
		}
		return l, secret
	}
	identify := func(net, client string) authn.Login {
		t.Helper()
		l, secret := park(net)
		pre := svc.Logins.PrefetchIdentify(email, client)
		l, err := svc.Logins.GetWith(ctx, l.ID, secret, pre)
		if err != nil {
			t.Fatal(err)
		}
		if l, err = svc.Logins.IdentifyPrefetched(ctx, l, pre); err != nil {
			t.Fatal(err)
		}
		return l
	}

	// Ada reports a sign-in from network A: pushes to her from A pause.
	l := identify("net-a", "net-a")
	if l.State != authn.StatePending {
		t.Fatalf("first sign-in: %s, want pending", l.State)
	}
	if _, err := svc.Logins.Answer(ctx, d, l.ID, authn.Decision{Report: true}); err != nil {
		t.Fatal(err)
	}
	if l := identify("net-a", "net-b"); l.State != authn.StatePaused {
		t.Errorf("sign-in parked from A, email from B: %s, want paused (A's pause)", l.State)
	}
	if l := identify("net-b", "net-a"); l.State != authn.StatePending {
		t.Errorf("sign-in parked from B, email from A: %s, want pending (B is not paused)", l.State)
	}
	if l := identify("net-a", "net-a"); l.State != authn.StatePaused {
		t.Errorf("sign-in from A: %s, want paused", l.State)
	}

	// Another browser is refused as Get refuses it, whatever was read beside.
	l, _ = park("net-c")
	if _, err := svc.Logins.GetWith(ctx, l.ID, "not its secret", svc.Logins.PrefetchIdentify(email, "net-c")); !errors.Is(err, authn.ErrForbidden) {
		t.Errorf("another browser: %v, want forbidden", err)
	}
}

// TestIdentifyPrefetchCounts: an email posted with the login's read (GetWith) counts against the client's
// limit even when the browser is then refused, as a submission the server received.
func TestIdentifyPrefetchCounts(t *testing.T) {
	svc := mustServiceWith(t, authn.Config{IdentifyLimit: 3})
	ctx := context.Background()
	app := mustApp(t, svc)
	l, secret, err := svc.Logins.Park(ctx, authn.StartLogin{AppID: app.ID})
	if err != nil {
		t.Fatal(err)
	}
	client := "flood-" + rand.Text()
	for i := range 3 {
		if _, err := svc.Logins.GetWith(ctx, l.ID, "not its secret", svc.Logins.PrefetchIdentify("ada@example.com", client)); !errors.Is(err, authn.ErrForbidden) {
			t.Fatalf("post %d from another browser: %v, want forbidden", i+1, err)
		}
	}
	pre := svc.Logins.PrefetchIdentify("ada@example.com", client)
	mine, err := svc.Logins.GetWith(ctx, l.ID, secret, pre)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Logins.IdentifyPrefetched(ctx, mine, pre); !errors.Is(err, authn.ErrRateLimited) {
		t.Errorf("fourth post, from the login's browser: %v, want rate limited", err)
	}
}

// TestRespondPhoneRemoved: a login whose approving phone was removed before its Response is refused and keeps
// no session, whether the session's write and the phone's read share a round trip (one server) or not (the
// Cluster layout, in the suite's spread run); a login whose phone stays gets its session.
func TestRespondPhoneRemoved(t *testing.T) {
	var mu sync.Mutex
	var sessionChanges []string // op and id of each session change reported
	svc := mustServiceWith(t, authn.Config{OnChange: func(_ context.Context, c authn.Change) {
		if c.Table == authn.TableSession {
			mu.Lock()
			sessionChanges = append(sessionChanges, c.Op+" "+c.ID)
			mu.Unlock()
		}
	}})
	ctx := context.Background()
	app := mustApp(t, svc)
	build := func(authn.Login, authn.User) ([]byte, error) {
		return []byte("<Response/>"), nil
	}
	approved := func(email string) (authn.Login, authn.Device) {
		t.Helper()
		d := mustEnroll(t, svc, email)
		l, secret := mustPending(t, svc, app, email)
		if _, err := svc.Logins.ApproveByNumber(ctx, d, l.Number); err != nil {
			t.Fatal(err)
		}
		return mustGetLogin(t, svc, l.ID, secret), d
	}

	l, d := approved("removed-" + rand.Text() + "@example.com")
	if err := svc.Devices.Remove(ctx, d.Email, d.ID); err != nil {
		t.Fatal(err)
	}
	if _, cookie, err := respondWith(ctx, svc, l, app.ID, build); !errors.Is(err, authn.ErrForbidden) || cookie != "" {
		t.Errorf("Response after the phone's removal: %v, cookie %q; want forbidden and none", err, cookie)
	}
	if n, err := svc.Sessions.EndUser(ctx, d.Email); err != nil || n != 0 {
		t.Errorf("sessions left for the removed phone's user: %d (%v), want none", n, err)
	}

	l, d = approved("kept-" + rand.Text() + "@example.com")
	got, cookie, err := respondWith(ctx, svc, l, app.ID, build)
	if err != nil || got.State != authn.StateAnswered || cookie == "" {
		t.Fatalf("Response: %v, state %s, cookie %q", err, got.State, cookie)
	}
	if sess, err := svc.Sessions.FromCookie(ctx, cookie); err != nil || sess.ID != got.SessionID || sess.Email != d.Email {
		t.Errorf("the Response's session: %+v (%v), want session %s of %s", sess, err, got.SessionID, d.Email)
	}
	// Each session written was reported once, and the removed phone's deleted again.
	mu.Lock()
	defer mu.Unlock()
	if len(sessionChanges) != 3 || !strings.HasPrefix(sessionChanges[0], "create ") ||
		sessionChanges[1] != "delete "+strings.TrimPrefix(sessionChanges[0], "create ") || sessionChanges[2] != "create "+got.SessionID {
		t.Errorf("session changes reported: %q; want the removed phone's created and deleted, then %s created", sessionChanges, got.SessionID)
	}
}

// respondWith is Logins.Respond for a login of application appID, whose Response build makes.
func respondWith(ctx context.Context, svc *authn.Service, l authn.Login, appID string,
	build func(authn.Login, authn.User) ([]byte, error)) (authn.Login, string, error) {
	return svc.Logins.Respond(ctx, l, func(authn.Login) (authn.SessionApp, error) { return authn.SessionApp{AppID: appID}, nil },
		func(l authn.Login, u authn.User, _ authn.SessionApp) ([]byte, error) { return build(l, u) })
}
