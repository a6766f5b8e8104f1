package api_test

import (
	"context"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/winkk/passport/api/deviceapi"
	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/authn/deviceproof"
	"github.com/winkk/passport/push/fcmtest"
	"github.com/winkk/passport/push/smtptest"
)

func (e *env) nextMail(t *testing.T) smtptest.Mail {
	t.Helper()
	select {
	case m := <-e.mails.Mails:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no mail arrived")
	}
	return smtptest.Mail{}
}

var codeRE = regexp.MustCompile(`\b(\d{6})\b`)

func (e *env) newDeviceClient() *deviceapi.Client {
	return &deviceapi.Client{BaseURL: e.URL, Signer: &deviceproof.Signer{Key: e.newKey(), Clock: e.clock.Now}}
}

// drainMails drops the mails sent so far (new-device notices).
func (e *env) drainMails() {
	for {
		select {
		case <-e.mails.Mails:
		default:
			return
		}
	}
}

func TestEnrollByEmail(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *authn.Config) { c.AllowedDomains = []string{"example.com"} })
	ctx := context.Background()
	var addr string
	request := func() string {
		t.Helper()
		c := e.newDeviceClient()
		if _, err := c.RequestEmailCode(ctx, deviceapi.RequestEmailCodeRequest{Email: addr}); err != nil {
			t.Fatalf("request code: %v", err)
		}
		m := e.nextMail(t)
		for !strings.Contains(m.Subject, "code") { // skip new-device notices still on their way
			m = e.nextMail(t)
		}
		code := codeRE.FindString(m.Body)
		if m.To != addr || code == "" {
			t.Fatalf("mail to %s without a code: %q", m.To, m.Body)
		}
		return code
	}

	t.Run("allowed domains", func(t *testing.T) {
		_, err := e.newDeviceClient().RequestEmailCode(ctx, deviceapi.RequestEmailCodeRequest{Email: "eve@evil.example"})
		if apiCode(err) != "403 email_not_allowed" {
			t.Errorf("got %s", apiCode(err))
		}
	})

	t.Run("a new code voids the previous one", func(t *testing.T) {
		addr = "linus@example.com"
		old := request()
		fresh := request()
		if old == fresh {
			t.Skip("the two random codes collided")
		}
		if _, err := e.newDeviceClient().EnrollByEmail(ctx, deviceapi.EnrollByEmailRequest{Email: addr, Code: old}); apiCode(err) != "400 code_invalid" {
			t.Errorf("old code: %s, want 400 code_invalid", apiCode(err))
		}
		c := e.newDeviceClient()
		res, err := c.EnrollByEmail(ctx, deviceapi.EnrollByEmailRequest{Email: addr, Code: fresh, Name: "Pixel"})
		if err != nil {
			t.Fatalf("fresh code: %v", err)
		}
		notice := e.nextMail(t)
		if notice.To != addr || !strings.Contains(notice.Body, "Pixel") {
			t.Errorf("no new-device notice: %+v", notice)
		}
		if _, err := e.newDeviceClient().EnrollByEmail(ctx, deviceapi.EnrollByEmailRequest{Email: addr, Code: fresh}); apiCode(err) != "400 code_invalid" {
			t.Errorf("code reused: %s, want 400 code_invalid", apiCode(err))
		}
		if res.Device.Email != addr {
			t.Errorf("device %+v", res.Device)
		}
	})

	t.Run("one code, racing phones: one wins", func(t *testing.T) {
		addr = "ken@example.com"
		code := request()
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := e.newDeviceClient().EnrollByEmail(ctx, deviceapi.EnrollByEmailRequest{Email: addr, Code: code}); err == nil {
					mu.Lock()
					wins++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if wins != 1 {
			t.Errorf("%d enrollments with one code, want 1", wins)
		}
		if m := e.nextMail(t); !strings.Contains(m.Subject, "New device") || m.To != addr {
			t.Errorf("expected the one new-device notice, got %+v", m)
		}
	})

	t.Run("a code expires after ten minutes", func(t *testing.T) {
		addr = "barbara@example.com"
		code := request()
		e.clock.Advance(authn.EmailCodeTTL + time.Second)
		defer e.clock.Advance(-authn.EmailCodeTTL - time.Second)
		if _, err := e.newDeviceClient().EnrollByEmail(ctx, deviceapi.EnrollByEmailRequest{Email: addr, Code: code}); apiCode(err) != "400 code_invalid" {
			t.Errorf("expired code: %s, want 400 code_invalid", apiCode(err))
		}
	})

	t.Run("sends are limited per address", func(t *testing.T) {
		addr = "frances@example.com"
		for range authn.EmailCodeSendLimit {
			request()
		}
		if _, err := e.newDeviceClient().RequestEmailCode(ctx, deviceapi.RequestEmailCodeRequest{Email: addr}); apiCode(err) != "429 rate_limited" {
			t.Errorf("one code too many: %s, want 429 rate_limited", apiCode(err))
		}
	})

	t.Run("five wrong tries lock the address", func(t *testing.T) {
		addr = "dennis@example.com"
		code := request()
		wrong := "000000"
		if code == wrong {
			wrong = "111111"
		}
		var last error
		for range 5 {
			_, last = e.newDeviceClient().EnrollByEmail(ctx, deviceapi.EnrollByEmailRequest{Email: addr, Code: wrong})
		}
		if apiCode(last) != "429 code_locked" {
			t.Errorf("fifth wrong code: %s, want 429 code_locked", apiCode(last))
		}
		if _, err := e.newDeviceClient().EnrollByEmail(ctx, deviceapi.EnrollByEmailRequest{Email: addr, Code: code}); apiCode(err) != "429 code_locked" {
			t.Errorf("right code after lock: %s, want 429 code_locked", apiCode(err))
		}
		if _, err := e.newDeviceClient().RequestEmailCode(ctx, deviceapi.RequestEmailCodeRequest{Email: addr}); apiCode(err) != "429 code_locked" {
			t.Errorf("new code while locked: %s, want 429 code_locked", apiCode(err))
		}
	})
}

func TestManyDevices(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.newApp("Jira", atlassianAudience, acsURL)
	ctx := context.Background()
	first := e.enroll(employee)
	second := e.enroll(employee)
	e.drainMails()

	t.Run("a login pushes to every device and the first answer wins", func(t *testing.T) {
		before := e.fcm.Attempts()
		b, waiting, ch := loginTo(t, e, app, first)
		deadline := time.Now().Add(10 * time.Second)
		for e.fcm.Attempts() < before+2 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		tokens := map[string]bool{}
		for _, m := range e.fcm.Received()[before:] {
			tokens[m.Message.Token] = true
		}
		if !tokens[first.FCMToken] || !tokens[second.FCMToken] {
			t.Errorf("pushed to %v, want both phones", tokens)
		}
		if _, err := second.AnswerChallenge(ctx, ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionApprove, Number: waiting.number(t)}); err != nil {
			t.Fatal(err)
		}
		if _, err := first.AnswerChallenge(ctx, ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionApprove, Number: waiting.number(t)}); apiCode(err) != "409 challenge_closed" {
			t.Errorf("second phone: %s, want 409 challenge_closed", apiCode(err))
		}
		if got, err := first.GetChallenge(ctx, ch.ID); err != nil || got.State != deviceapi.StateApproved {
			t.Errorf("first phone sees %+v (%v)", got, err)
		}
		samlForm(t, b.get(waiting.URL), acsURL)
	})

	t.Run("list, rename, remove own devices", func(t *testing.T) {
		list, err := first.ListDevices(ctx)
		if err != nil || len(list.Devices) != 2 {
			t.Fatalf("list: %+v %v", list, err)
		}
		current := 0
		for _, d := range list.Devices {
			if d.Current {
				current++
			}
		}
		if current != 1 {
			t.Errorf("%d devices marked current", current)
		}
		d, err := first.RenameDevice(ctx, second.ID, deviceapi.RenameDeviceRequest{Name: "Old iPhone"})
		if err != nil || d.Name != "Old iPhone" {
			t.Errorf("rename: %+v %v", d, err)
		}
		if _, err := first.RenameDevice(ctx, second.ID, deviceapi.RenameDeviceRequest{Name: ""}); apiCode(err) != "400 invalid_request" {
			t.Errorf("empty name: %s", apiCode(err))
		}
		other := e.enroll("someone@example.com")
		if err := first.RemoveDevice(ctx, other.ID); apiCode(err) != "404 not_found" {
			t.Errorf("removing another user's device: %s, want 404", apiCode(err))
		}
		if err := first.RemoveDevice(ctx, second.ID); err != nil {
			t.Fatalf("remove: %v", err)
		}
		if _, err := second.ListChallenges(ctx); apiCode(err) != "401 unknown_device" {
			t.Errorf("removed device: %s, want 401 unknown_device", apiCode(err))
		}
	})

	t.Run("push token update", func(t *testing.T) {
		d, err := first.UpdatePushToken(ctx, deviceapi.UpdatePushTokenRequest{FCMToken: "fresh-token"})
		if err != nil || d.PushStatus != deviceapi.PushOK || d.PushTokenUpdatedAt == nil {
			t.Fatalf("update: %+v %v", d, err)
		}
		first.FCMToken = "fresh-token"
	})

	t.Run("a dead token is marked and the device pulls", func(t *testing.T) {
		e.fcm.Script(fcmtest.Sequence(fcmtest.Fail(404, fcmtest.BodyUnregistered)))
		defer e.fcm.Script(fcmtest.Sequence(fcmtest.OK))
		_, _, ch := loginTo(t, e, app, first)
		deadline := time.Now().Add(10 * time.Second)
		for {
			list, err := first.ListDevices(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if list.Devices[0].PushStatus == deviceapi.PushDead {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the device was not marked dead: %+v", list.Devices[0])
			}
			time.Sleep(10 * time.Millisecond)
		}
		// The device still learns of its challenge by pulling.
		pending, err := first.ListChallenges(ctx)
		if err != nil || len(pending.Challenges) == 0 || pending.Challenges[len(pending.Challenges)-1].ID != ch.ID {
			t.Errorf("pull: %+v %v", pending, err)
		}
		_, _ = first.AnswerChallenge(ctx, ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionDeny})
	})
}

// TestLongPoll: an open app learns of a new challenge as soon as it is parked, without a push.
func TestLongPoll(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.newApp("Jira", atlassianAudience, acsURL)
	ph := e.enroll(employee)
	got := make(chan *deviceapi.Challenge, 1)
	errc := make(chan error, 1)
	go func() {
		ch, err := ph.WaitForChallenge(context.Background(), 30*time.Second)
		if err != nil {
			errc <- err
			return
		}
		got <- ch
	}()
	// Wait until the long-poll is parked on the server, then start the login.
	for e.srv.Waiting() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	b := newBrowser(t)
	b.identify(b.startLogin(e.sp(app), ""), employee)
	start := time.Now()
	select {
	case ch := <-got:
		t.Logf("the waiting phone learned of the challenge %s after %s", ch.ID, time.Since(start))
		if ch.State != deviceapi.StatePending || ch.AppName != "Jira" {
			t.Errorf("challenge %+v", ch)
		}
	case err := <-errc:
		t.Fatal(err)
	case <-time.After(20 * time.Second):
		t.Fatal("the long-poll did not answer")
	}
	// With nothing pending the wait ends with 204 at its timeout.
	_, _ = ph.AnswerChallenge(context.Background(), mustLastChallenge(t, ph).ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionDeny})
	if _, err := ph.WaitForChallenge(context.Background(), time.Second); err != deviceapi.ErrNoChallenge {
		t.Errorf("empty wait: %v, want ErrNoChallenge", err)
	}
	if st, code, _ := e.callDevice(ph, "GET", "/api/v1/device/challenges/wait?timeout=forever"); st != 400 || code != "invalid_request" {
		t.Errorf("bad timeout: %d %s", st, code)
	}
}

func mustLastChallenge(t *testing.T, ph *phone) deviceapi.Challenge {
	t.Helper()
	list, err := ph.ListChallenges(context.Background())
	if err != nil || len(list.Challenges) == 0 {
		t.Fatalf("no pending challenge: %v", err)
	}
	return list.Challenges[len(list.Challenges)-1]
}

// callDevice sends a signed device call without the client's checks.
func (e *env) callDevice(ph *phone, method, path string) (int, string, []byte) {
	e.t.Helper()
	proof, err := ph.Signer.Sign(method, e.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req, _ := http.NewRequest(method, e.URL+path, nil)
	req.Header.Set(deviceproof.Header, proof)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var eb deviceapi.ErrorBody
	data := make([]byte, 4096)
	n, _ := resp.Body.Read(data)
	_ = jsonUnmarshal(data[:n], &eb)
	return resp.StatusCode, eb.Error.Code, data[:n]
}

func TestPushBombing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// paused checks that a new login for email is refused with the pause page and sends nothing. pushed is
	// how many pushes the test's earlier logins made: they are sent in the background, so wait for them first.
	paused := func(t *testing.T, e *env, app appView, email, why string, pushed int) {
		t.Helper()
		before := e.settledPushes(t, pushed)
		b := newBrowser(t)
		p := b.identify(b.startLogin(e.sp(app), ""), email)
		msg, ok := p.testID("login-paused")
		if !ok {
			t.Fatalf("no login-paused on the page:\n%s", p.Body)
		}
		if !strings.Contains(msg, why) || !strings.Contains(msg, "until") {
			t.Errorf("login-paused %q does not say %q and until when", msg, why)
		}
		if _, form, ok := p.form(); !ok || form.Get("SAMLResponse") == "" {
			t.Error("the paused page does not hand the SP an error Response")
		}
		if e.fcm.Attempts() != before {
			t.Error("a push was sent while pushes are paused")
		}
	}

	t.Run("this wasn't me pauses pushes", func(t *testing.T) {
		e := newEnv(t)
		app := e.newApp("Jira", atlassianAudience, acsURL)
		ph := e.enroll(employee)
		b, waiting, ch := loginTo(t, e, app, ph)
		if _, err := ph.AnswerChallenge(ctx, ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionDeny, Report: true}); err != nil {
			t.Fatal(err)
		}
		wantFailurePage(t, e, b.get(waiting.URL), e.sp(app), "reported", "RequestDenied")
		if !strings.Contains(e.logs.String(), "did not start") {
			t.Error("the report is not in the log for admins")
		}
		paused(t, e, app, employee, "this wasn't me", 1)
	})

	t.Run("several denials start a cool-down", func(t *testing.T) {
		e := newEnv(t)
		app := e.newApp("Jira", atlassianAudience, acsURL)
		ph := e.enroll(employee)
		for range 3 {
			_, _, ch := loginTo(t, e, app, ph)
			if _, err := ph.AnswerChallenge(ctx, ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionDeny}); err != nil {
				t.Fatal(err)
			}
		}
		paused(t, e, app, employee, "denied or not answered", 3)
	})

	t.Run("ignored pushes count too", func(t *testing.T) {
		e := newEnv(t)
		app := e.newApp("Jira", atlassianAudience, acsURL)
		ph := e.enroll(employee)
		for range 3 {
			loginTo(t, e, app, ph)
			e.clock.Advance(e.svc.Logins.TTL() + time.Second)
		}
		paused(t, e, app, employee, "denied or not answered", 3)
	})

	t.Run("at most a few pending at once", func(t *testing.T) {
		e := newEnv(t)
		app := e.newApp("Jira", atlassianAudience, acsURL)
		ph := e.enroll(employee)
		for range 3 {
			loginTo(t, e, app, ph)
		}
		paused(t, e, app, employee, "already wait", 3)
	})

	t.Run("at most a few pending, however many are submitted at once", func(t *testing.T) {
		e := newEnv(t)
		app := e.newApp("Jira", atlassianAudience, acsURL)
		ph := e.enroll(employee)
		const n = 10
		bs, ps := make([]*browser, n), make([]*page, n)
		for i := range n {
			bs[i] = newBrowser(t)
			ps[i] = bs[i].startLogin(e.sp(app), "")
		}
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { ps[i] = bs[i].identify(ps[i], employee) })
		}
		wg.Wait()
		list, err := ph.ListChallenges(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Challenges) != 3 {
			t.Errorf("%d challenges pending after %d submissions at once, want the limit, 3", len(list.Challenges), n)
		}
		waiting := 0
		for _, p := range ps {
			if _, ok := p.testID("match-number"); ok {
				waiting++
			} else if !strings.Contains(p.Body, "already wait") {
				t.Errorf("a submission neither waits nor says why not:\n%s", p.Body)
			}
		}
		if waiting != 3 {
			t.Errorf("%d pages show a number, want 3", waiting)
		}
		// Only the three pushes that went were counted against the hour (10 by default): approve them, and
		// seven more sign-ins get their push; the eleventh is paused.
		for i, p := range ps {
			if _, ok := p.testID("match-number"); !ok {
				continue
			}
			if _, err := ph.ApproveByNumber(ctx, p.number(t)); err != nil {
				t.Fatalf("approval of waiting sign-in %d: %v", i, err)
			}
		}
		for i := range 7 {
			_, w, ch := loginTo(t, e, app, ph)
			if _, err := ph.AnswerChallenge(ctx, ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionApprove, Number: w.number(t)}); err != nil {
				t.Fatalf("sign-in %d after the racing ones: %v", 4+i, err)
			}
		}
		paused(t, e, app, employee, "hourly limit", 10)
	})

	t.Run("hourly cap", func(t *testing.T) {
		e := newEnv(t, func(c *authn.Config) { c.Limits.PushesPerHour = 2 })
		app := e.newApp("Jira", atlassianAudience, acsURL)
		ph := e.enroll(employee)
		for range 2 {
			_, waiting, ch := loginTo(t, e, app, ph)
			if _, err := ph.AnswerChallenge(ctx, ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionApprove, Number: waiting.number(t)}); err != nil {
				t.Fatal(err)
			}
		}
		paused(t, e, app, employee, "hourly limit", 2)
	})
}

// TestChallengeDetails: the phone sees enough to tell a real sign-in from an attack — the app, the browser
// and OS, the IP address and the time — and never the number.
func TestChallengeDetails(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.newApp("Jira", atlassianAudience, acsURL)
	ph := e.enroll(employee)
	b := newBrowser(t)
	b.c.Transport = headerTransport{"User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"}
	waiting := b.identify(b.startLogin(e.sp(app), ""), employee)
	ch := ph.waitChallenge(t)
	if ch.AppName != "Jira" || ch.AppURL != "https://example.atlassian.net" || ch.IP != "127.0.0.1" ||
		!strings.HasPrefix(ch.Browser, "Chrome 131") || !strings.Contains(ch.OS, "Windows") || ch.CreatedAt.IsZero() || !ch.ExpiresAt.After(ch.CreatedAt) {
		t.Errorf("challenge %+v", ch)
	}
	_, _, raw := e.callDevice(ph, "GET", "/api/v1/device/challenges/"+ch.ID)
	if strings.Contains(string(raw), `"number"`) || strings.Contains(string(raw), strconv.Itoa(waiting.number(t))+",") {
		t.Errorf("the challenge leaks the number: %s", raw)
	}
}
