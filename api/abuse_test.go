package api_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
	"path"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/winkk/passport/api/deviceapi"
	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/store"
)

// The attacks of someone who knows only an employee's email address and an application's ID, tried through
// the real server from other client networks. Linux routes all of 127.0.0.0/8 to the loopback interface, so
// a browser bound to 127.0.0.2 reaches the test server from another client address (another "network").

// newBrowserFrom is newBrowser whose connections come from the local address ip.
func newBrowserFrom(t *testing.T, ip string) *browser {
	t.Helper()
	b := newBrowser(t)
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	b.c.Transport = &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 4}
	return b
}

// idpLogin opens the app's IdP-initiated login URL (anyone can) and identifies as email.
func idpLogin(t *testing.T, e *env, b *browser, app appView, email string) *page {
	t.Helper()
	p := b.get(e.URL + "/saml/" + app.ID + "/login")
	if p.Status != http.StatusOK || !strings.Contains(p.URL, "/login/") {
		t.Fatalf("IdP-initiated login: status %d at %s:\n%s", p.Status, p.URL, p.Body)
	}
	return b.identify(p, email)
}

// TestNumberSelectsTheLogin: a stranger's request planted before the employee's own never receives the
// employee's approval; the approval completes exactly the login whose browser shows the number typed.
func TestNumberSelectsTheLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	jira := e.newApp("Jira", atlassianAudience, acsURL)
	ada := e.enroll(employee)
	ctx := context.Background()

	approved := map[int]bool{} // the numbers the phone approved: within a minute, the same approval again
	for round := range 5 {
		// A stranger from another network each round (three denied requests pause one network).
		stranger := newBrowserFrom(t, fmt.Sprintf("127.0.0.%d", 2+round))
		planted := idpLogin(t, e, stranger, jira, employee)
		plantedNumber := planted.number(t)

		victim := newBrowser(t)
		waiting := victim.identify(victim.startLogin(e.sp(jira), ""), employee)
		number := waiting.number(t)
		if number == plantedNumber {
			t.Fatalf("round %d: two open sign-ins of one user show the same number %d", round, number)
		}

		// A number no open sign-in shows approves nothing (one this phone approved in an earlier round would
		// be told that approval: TestApprovalSentAgain).
		other := 10
		for other == number || other == plantedNumber || approved[other] {
			other++
		}
		if _, err := ada.ApproveByNumber(ctx, other); apiCode(err) != "404 no_matching_challenge" {
			t.Fatalf("round %d: approving %d: %v, want 404 no_matching_challenge", round, other, err)
		}

		res, err := ada.ApproveByNumber(ctx, number)
		if err != nil {
			t.Fatalf("round %d: approve %d: %v", round, number, err)
		}
		approved[number] = true
		if res.State != deviceapi.StateApproved || !strings.HasSuffix(waiting.URL, "/login/"+res.Challenge.ID) {
			t.Fatalf("round %d: approved %+v, want the victim's login %s", round, res, waiting.URL)
		}
		resp, _ := samlForm(t, victim.get(waiting.URL), acsURL)
		e.bothAccept(t, jira, resp, employee, []string{victim.requestID})

		// The stranger's request is still waiting, unapproved, and shows no Response.
		p := stranger.get(planted.URL)
		if _, ok := p.testID("match-number"); !ok || strings.Contains(p.Body, "SAMLResponse") {
			t.Fatalf("round %d: the planted request after the victim's approval:\n%s", round, p.Body)
		}
		// The victim denies it from the phone ("this wasn't me"): only the stranger's network pays.
		list, err := ada.ListChallenges(ctx)
		if err != nil || len(list.Challenges) != 1 || !strings.HasSuffix(planted.URL, "/login/"+list.Challenges[0].ID) {
			t.Fatalf("round %d: the phone lists %+v (%v), want the planted request only", round, list, err)
		}
		if list.Challenges[0].IP != fmt.Sprintf("127.0.0.%d", 2+round) {
			t.Errorf("round %d: the phone shows the planted request from %q, want the stranger's address", round, list.Challenges[0].IP)
		}
		if _, err := ada.AnswerChallenge(ctx, list.Challenges[0].ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionDeny}); err != nil {
			t.Fatal(err)
		}
		if p := stranger.get(planted.URL); strings.Contains(p.Body, "SAMLResponse\" value") && !strings.Contains(p.Body, "login-error") {
			t.Fatalf("round %d: the planted request got a Response", round)
		}
	}
}

// TestNumbersUniquePerUser: however many sign-ins of one user are open at once, from however many networks,
// and submitted at the same moment, no two show the same number.
func TestNumbersUniquePerUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *authn.Config) { c.Limits.MaxPendingPerUser, c.Limits.PushesPerHourPerUser = 40, 40 })
	jira := e.newApp("Jira", atlassianAudience, acsURL)
	e.enroll(employee)
	const n = 40 // 20 networks with two sign-ins each
	bs, ps := make([]*browser, n), make([]*page, n)
	for i := range n {
		bs[i] = newBrowserFrom(t, fmt.Sprintf("127.0.1.%d", 1+i/2))
		ps[i] = bs[i].get(e.URL + "/saml/" + jira.ID + "/login")
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { ps[i] = bs[i].identify(ps[i], employee) })
	}
	wg.Wait()
	seen := map[int]int{}
	for i, p := range ps {
		n := p.number(t)
		if j, dup := seen[n]; dup {
			t.Fatalf("sign-ins %d and %d both show %d", j, i, n)
		}
		seen[n] = i
	}
}

// TestLockoutFromAnotherNetwork: whatever a stranger's network does with the employee's email — plant
// requests up to every limit, have them denied, reported or left to expire — the employee's own next login
// from their own network shows its number and is approved. The stranger's network is what gets paused.
func TestLockoutFromAnotherNetwork(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// victimSignsIn is the employee's own login from their own network, start to Response.
	victimSignsIn := func(t *testing.T, e *env, app appView, ph *phone) {
		t.Helper()
		b := newBrowser(t)
		waiting := b.identify(b.startLogin(e.sp(app), ""), employee)
		if msg, ok := waiting.testID("login-paused"); ok {
			t.Fatalf("the employee's own login is paused: %s", msg)
		}
		if _, err := ph.ApproveByNumber(ctx, waiting.number(t)); err != nil {
			t.Fatalf("approve: %v", err)
		}
		resp, _ := samlForm(t, b.get(waiting.URL), acsURL)
		e.bothAccept(t, app, resp, employee, []string{b.requestID})
	}
	// strangerPaused checks that the stranger's network gets the pause page, and no push.
	// pushed is how many pushes the subtest's earlier logins made (sent in the background: wait for them).
	strangerPaused := func(t *testing.T, e *env, app appView, why string, pushed int) {
		t.Helper()
		before := e.settledPushes(t, pushed)
		p := idpLogin(t, e, newBrowserFrom(t, "127.0.0.2"), app, employee)
		msg, ok := p.testID("login-paused")
		if !ok || !strings.Contains(msg, why) {
			t.Fatalf("the stranger's network is not paused (%q, want %q):\n%s", msg, why, p.Body)
		}
		if e.fcm.Attempts() != before {
			t.Error("a push was sent for the paused network")
		}
	}
	plant := func(t *testing.T, e *env, app appView, n int) []*page {
		t.Helper()
		var out []*page
		for range n {
			p := idpLogin(t, e, newBrowserFrom(t, "127.0.0.2"), app, employee)
			p.number(t)
			out = append(out, p)
		}
		return out
	}
	ids := func(t *testing.T, ph *phone) []string {
		t.Helper()
		list, err := ph.ListChallenges(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, c := range list.Challenges {
			out = append(out, c.ID)
		}
		return out
	}

	t.Run("planted requests up to the pending cap", func(t *testing.T) {
		e := newEnv(t)
		app := e.newApp("Jira", atlassianAudience, acsURL)
		ph := e.enroll(employee)
		plant(t, e, app, 3)
		strangerPaused(t, e, app, "already wait", 3)
		victimSignsIn(t, e, app, ph)
	})
	t.Run("planted requests denied", func(t *testing.T) {
		e := newEnv(t)
		app := e.newApp("Jira", atlassianAudience, acsURL)
		ph := e.enroll(employee)
		for range 3 {
			plant(t, e, app, 1)
			for _, id := range ids(t, ph) {
				if _, err := ph.AnswerChallenge(ctx, id, deviceapi.AnswerRequest{Decision: deviceapi.DecisionDeny}); err != nil {
					t.Fatal(err)
				}
			}
		}
		strangerPaused(t, e, app, "denied or not answered", 3)
		victimSignsIn(t, e, app, ph)
	})
	t.Run("planted requests reported", func(t *testing.T) {
		e := newEnv(t)
		app := e.newApp("Jira", atlassianAudience, acsURL)
		ph := e.enroll(employee)
		plant(t, e, app, 1)
		if _, err := ph.AnswerChallenge(ctx, ids(t, ph)[0], deviceapi.AnswerRequest{Decision: deviceapi.DecisionDeny, Report: true}); err != nil {
			t.Fatal(err)
		}
		strangerPaused(t, e, app, "this wasn't me", 1)
		victimSignsIn(t, e, app, ph)
		victimSignsIn(t, e, app, ph)
	})
	t.Run("planted requests left to expire", func(t *testing.T) {
		e := newEnv(t)
		app := e.newApp("Jira", atlassianAudience, acsURL)
		ph := e.enroll(employee)
		for range 3 {
			plant(t, e, app, 1)
			e.clock.Advance(e.svc.Logins.TTL() + time.Second)
		}
		strangerPaused(t, e, app, "denied or not answered", 3)
		victimSignsIn(t, e, app, ph)
	})
	t.Run("the stranger's hourly requests", func(t *testing.T) {
		e := newEnv(t, func(c *authn.Config) { c.Limits.PushesPerHour = 2 })
		app := e.newApp("Jira", atlassianAudience, acsURL)
		ph := e.enroll(employee)
		for range 2 {
			plant(t, e, app, 1)
			for _, id := range ids(t, ph) {
				if _, err := ph.AnswerChallenge(ctx, id, deviceapi.AnswerRequest{Decision: deviceapi.DecisionDeny}); err != nil {
					t.Fatal(err)
				}
			}
		}
		strangerPaused(t, e, app, "hourly limit", 2)
		victimSignsIn(t, e, app, ph)
	})
	t.Run("one network never reaches the user's ceiling; many networks do", func(t *testing.T) {
		e := newEnv(t, func(c *authn.Config) { c.Limits.MaxPendingPerUser = 6 })
		app := e.newApp("Jira", atlassianAudience, acsURL)
		ph := e.enroll(employee)
		for range 10 { // far past the network's cap of 3
			idpLogin(t, e, newBrowserFrom(t, "127.0.0.2"), app, employee)
		}
		if got := len(ids(t, ph)); got != 3 {
			t.Fatalf("one network left %d requests pending, want its cap, 3", got)
		}
		victimSignsIn(t, e, app, ph)
		// A flood spread over networks stops at the user's ceiling, for everyone.
		for _, ip := range []string{"127.0.0.3", "127.0.0.4", "127.0.0.5"} {
			idpLogin(t, e, newBrowserFrom(t, ip), app, employee)
		}
		if got := len(ids(t, ph)); got != 6 {
			t.Fatalf("%d requests pending after a spread flood, want the user's ceiling, 6", got)
		}
		b := newBrowser(t)
		if _, ok := b.identify(b.startLogin(e.sp(app), ""), employee).testID("login-paused"); !ok {
			t.Error("the user's ceiling did not stop a request from yet another network")
		}
	})
}

// TestNoAccountProbing: after the email step, an unknown address, a suspended user, a user without a phone
// and an enrolled user get the same page with the same status — only the enrolled one gets a push — and the
// page shows the address typed, with a way to change it.
func TestNoAccountProbing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	jira := e.newApp("Jira", atlassianAudience, acsURL)
	e.enroll("enrolled@example.com")
	e.enroll("suspended@example.com")
	e.do("PATCH", "/api/v1/admin/users/suspended@example.com", adminToken, map[string]any{"status": "suspended"}, http.StatusOK, nil)
	e.do("POST", "/api/v1/admin/users", adminToken, map[string]any{"email": "phoneless@example.com"}, http.StatusCreated, nil)

	// Everything that legitimately differs between two pages of one kind: IDs, the number, times.
	varying := regexp.MustCompile(`/login/[a-z2-7]+|data-testid="match-number">\d+<|data-expires="\d+"|>\d+:\d\d<`)
	normal := func(p *page, email string) string {
		return varying.ReplaceAllString(strings.ReplaceAll(p.Body, email, "EMAIL"), "*")
	}

	var first string
	for _, email := range []string{"enrolled@example.com", "nobody@example.com", "suspended@example.com", "phoneless@example.com"} {
		before := e.settledPushes(t, e.fcm.Attempts())
		b := newBrowser(t)
		p := b.identify(b.startLogin(e.sp(jira), ""), email)
		if p.Status != http.StatusOK {
			t.Fatalf("%s: status %d", email, p.Status)
		}
		p.number(t)
		if shown, ok := p.testID("login-email"); !ok || shown != email {
			t.Errorf("%s: the page shows the address %q", email, shown)
		}
		if _, ok := p.testID("change-email"); !ok {
			t.Errorf("%s: no way to change the address", email)
		}
		if first == "" {
			first = normal(p, email)
			if e.settledPushes(t, before+1) != before+1 {
				t.Fatal("the enrolled user got no push")
			}
			continue
		}
		if got := normal(p, email); got != first {
			t.Errorf("%s: the page differs from the enrolled user's:\n%s\n---\n%s", email, got, first)
		}
		if e.fcm.Attempts() != before {
			t.Errorf("%s: a push was sent", email)
		}
	}
}

// TestChangeEmail: "Not you?" takes the login back to the email step and withdraws the challenge.
func TestChangeEmail(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	jira := e.newApp("Jira", atlassianAudience, acsURL)
	ph := e.enroll(employee)
	ctx := context.Background()

	b := newBrowser(t)
	typo := b.identify(b.startLogin(e.sp(jira), ""), "ada@exmaple.com")
	oldNumber := typo.number(t)
	back := b.postForm(strings.TrimSuffix(typo.URL, "/")+"/change", nil)
	if _, _, ok := back.form(); !ok || !strings.Contains(back.Body, `name="email"`) {
		t.Fatalf("after changing, no email form:\n%s", back.Body)
	}
	waiting := b.identify(back, employee)
	number := waiting.number(t)
	if list, err := ph.ListChallenges(ctx); err != nil || len(list.Challenges) != 1 {
		t.Fatalf("the phone lists %+v (%v), want one challenge", list, err)
	}
	// Change once more: the enrolled user's challenge is withdrawn from the phone.
	b.postForm(waiting.URL+"/change", nil)
	if list, err := ph.ListChallenges(ctx); err != nil || len(list.Challenges) != 0 {
		t.Fatalf("after changing, the phone still lists %+v (%v)", list, err)
	}
	for _, n := range []int{oldNumber, number} {
		if _, err := ph.ApproveByNumber(ctx, n); apiCode(err) != "404 no_matching_challenge" {
			t.Errorf("approving withdrawn number %d: %v", n, err)
		}
	}
	waiting = b.identify(b.get(waiting.URL), employee)
	if _, err := ph.ApproveByNumber(ctx, waiting.number(t)); err != nil {
		t.Fatal(err)
	}
	resp, _ := samlForm(t, b.get(waiting.URL), acsURL)
	e.bothAccept(t, jira, resp, employee, []string{b.requestID})

	// Another browser cannot change someone's login.
	other := newBrowser(t)
	if p := other.postForm(waiting.URL+"/change", nil); p.Status != http.StatusForbidden {
		t.Errorf("a foreign browser's change: status %d", p.Status)
	}
}

// TestEmailPostedAgain: the email's POST answers with the waiting page itself, so a reload of that answer
// posts the form again. That changes nothing: the same number, no second push, the phone still sees one
// sign-in; another address posted to the waiting login is not taken either ("Not you?" is the way).
func TestEmailPostedAgain(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	jira := e.newApp("Jira", atlassianAudience, acsURL)
	ph := e.enroll(employee)
	ctx := context.Background()

	b := newBrowser(t)
	identify := b.startLogin(e.sp(jira), "")
	before := e.settledPushes(t, e.fcm.Attempts())
	waiting := b.identify(identify, employee)
	number := waiting.number(t)
	e.settledPushes(t, before+1)
	for _, email := range []string{employee, "mallory@example.com"} {
		again := b.identify(identify, email)
		if again.Status != http.StatusOK || again.number(t) != number {
			t.Fatalf("posting %s again: status %d, number %d, want 200 and %d", email, again.Status, again.number(t), number)
		}
		if shown, _ := again.testID("login-email"); shown != employee {
			t.Errorf("posting %s again: the page shows %q, want %q", email, shown, employee)
		}
	}
	time.Sleep(50 * time.Millisecond) // a push would be on its way by now
	e.settledPushes(t, before+1)
	if list, err := ph.ListChallenges(ctx); err != nil || len(list.Challenges) != 1 || list.Challenges[0].ID != path.Base(waiting.URL) {
		t.Fatalf("the phone lists %+v (%v), want the one sign-in", list, err)
	}
	if _, err := ph.ApproveByNumber(ctx, number); err != nil {
		t.Fatal(err)
	}
	resp, _ := samlForm(t, b.get(waiting.URL), acsURL)
	e.bothAccept(t, jira, resp, employee, []string{b.requestID})
}

// TestOfficeBehindOneAddress: 300 different employees sign in within a minute from one client address, none
// refused.
func TestOfficeBehindOneAddress(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("300 whole logins")
	}
	e := newEnv(t)
	jira := e.newApp("Jira", atlassianAudience, acsURL)
	const staff = 300
	phones := make([]*phone, staff)
	for i := range phones {
		phones[i] = e.enroll(fmt.Sprintf("staff%03d@example.com", i))
	}
	ctx := context.Background()
	start := e.clock.Now()
	var wg sync.WaitGroup
	errs := make(chan error, staff)
	sem := make(chan struct{}, 8)
	for i, ph := range phones {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			b := newBrowser(t)
			waiting := b.identify(b.startLogin(e.sp(jira), ""), ph.Email)
			if waiting.Status != http.StatusOK {
				errs <- fmt.Errorf("employee %d: status %d", i, waiting.Status)
				return
			}
			n, ok := waiting.testID("match-number")
			if !ok {
				errs <- fmt.Errorf("employee %d: no number:\n%s", i, waiting.Body)
				return
			}
			var number int
			fmt.Sscan(n, &number)
			if _, err := ph.ApproveByNumber(ctx, number); err != nil {
				errs <- fmt.Errorf("employee %d: approve: %v", i, err)
				return
			}
			p := b.get(waiting.URL)
			if !strings.Contains(p.Body, `name="SAMLResponse"`) {
				errs <- fmt.Errorf("employee %d: no Response (status %d)", i, p.Status)
				return
			}
			info, err := e.sp(jira).RetrieveAssertionInfo(formValue(p, "SAMLResponse"))
			if err != nil || info.NameID != ph.Email {
				errs <- fmt.Errorf("employee %d: the SP refused the Response: %v", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if took := e.clock.Now().Sub(start); took > time.Minute {
		t.Logf("the 300 logins took %v here, more than the minute the limits are counted over", took)
	}
}

func formValue(p *page, name string) string {
	_, form, _ := p.form()
	return form.Get(name)
}

// TestParkFlood: one client address parks at most 1,000 logins a minute, then gets 429; other addresses go
// on; requests that cannot lead anywhere park nothing; a parked login is small.
func TestParkFlood(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	jira := e.newApp("Jira", atlassianAudience, acsURL)
	// The records of the table authn parks logins in, in either layout of a spread table.
	count := func() int {
		t.Helper()
		shards, err := e.svc.Store().KeysByShard(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, keys := range shards {
			for _, k := range keys {
				if strings.Contains(k, "{login}:r:") || strings.Contains(k, "{login:") && strings.HasSuffix(k, "}:r") {
					n++
				}
			}
		}
		return n
	}

	t.Run("requests that cannot lead anywhere park nothing", func(t *testing.T) {
		unconfigured := appView{}
		e.do("POST", "/api/v1/admin/apps", adminToken, map[string]any{"name": "Later", "interface": "saml2"}, http.StatusCreated, &unconfigured)
		before := count()
		b := newBrowserFrom(t, "127.0.0.6")
		for _, u := range []string{
			"/saml/nosuchapp/login", "/saml/nosuchapp/sso?SAMLRequest=x",
			"/saml/" + unconfigured.ID + "/login", "/saml/" + unconfigured.ID + "/sso?SAMLRequest=x",
			"/saml/" + jira.ID + "/sso?SAMLRequest=not-a-request", "/saml/" + jira.ID + "/sso",
			"/saml/" + jira.ID + "/login?RelayState=https://evil.example/",
		} {
			if p := b.get(e.URL + u); p.Status < 400 {
				t.Errorf("%s: status %d", u, p.Status)
			}
		}
		if got := count(); got != before {
			t.Errorf("%d logins parked by requests that lead nowhere", got-before)
		}
	})

	t.Run("one address, 1000 a minute", func(t *testing.T) {
		client := &http.Client{
			Transport:     &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.7")}}).DialContext, MaxIdleConnsPerHost: 16},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
		park := func() int {
			resp, err := client.Get(e.URL + "/saml/" + jira.ID + "/login")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		before := count()
		var wg sync.WaitGroup
		statuses := make([]int, 1000)
		for w := range 8 {
			wg.Go(func() {
				for i := w; i < len(statuses); i += 8 {
					statuses[i] = park()
				}
			})
		}
		wg.Wait()
		for i, st := range statuses {
			if st != http.StatusSeeOther {
				t.Fatalf("park %d: status %d, want 303", i+1, st)
			}
		}
		if st := park(); st != http.StatusTooManyRequests {
			t.Fatalf("park 1001: status %d, want 429", st)
		}
		if got := count() - before; got != 1000 {
			t.Errorf("%d logins parked, want 1000", got)
		}
		if p := newBrowserFrom(t, "127.0.0.8").get(e.URL + "/saml/" + jira.ID + "/login"); p.Status != http.StatusOK || !strings.Contains(p.URL, "/login/") {
			t.Errorf("another address: status %d", p.Status)
		}
	})

	// An SP's request is counted, its ID consumed and its login parked in one step: a replay, or a request past
	// its address's limit, parks nothing, and the refused request's ID stays used.
	t.Run("SP requests replayed or past the limit park nothing", func(t *testing.T) {
		sp := e.sp(jira)
		b := newBrowserFrom(t, "127.0.0.9")
		first, err := sp.BuildAuthURL("")
		if err != nil {
			t.Fatal(err)
		}
		before := count()
		if p := b.get(first); p.Status != http.StatusOK || !strings.Contains(p.URL, "/login/") {
			t.Fatalf("first use of the request: status %d at %s", p.Status, p.URL)
		}
		if got := count() - before; got != 1 {
			t.Fatalf("%d logins parked by one request, want 1", got)
		}
		if p := newBrowserFrom(t, "127.0.0.10").get(first); p.Status != http.StatusConflict || !strings.Contains(p.Body, "already used") {
			t.Errorf("the request replayed from another address: status %d, want 409 already used", p.Status)
		}
		if got := count() - before; got != 1 {
			t.Errorf("%d logins parked after the replay, want 1", got)
		}

		// Fill 127.0.0.11's minute, then send a fresh request from it: refused, nothing parked, its ID used.
		client := &http.Client{
			Transport:     &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.11")}}).DialContext, MaxIdleConnsPerHost: 16},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				for i := w; i < 1000; i += 8 {
					resp, err := client.Get(e.URL + "/saml/" + jira.ID + "/login")
					if err != nil {
						t.Error(err)
						return
					}
					resp.Body.Close()
				}
			})
		}
		wg.Wait()
		late, err := sp.BuildAuthURL("")
		if err != nil {
			t.Fatal(err)
		}
		before = count()
		if p := newBrowserFrom(t, "127.0.0.11").get(late); p.Status != http.StatusTooManyRequests {
			t.Errorf("a request past its address's limit: status %d, want 429", p.Status)
		}
		if got := count() - before; got != 0 {
			t.Errorf("%d logins parked by a request past the limit, want 0", got)
		}
		if p := newBrowserFrom(t, "127.0.0.12").get(late); p.Status != http.StatusConflict {
			t.Errorf("the request refused by the limit, sent again from another address: status %d, want 409 (its ID was used)", p.Status)
		}
	})

	// What a parked, untouched login costs in Redis: at most 1 KiB for an Atlassian-shaped request from a
	// real browser, and a bounded amount whatever a request carries (every field a browser or an unsigned
	// request controls has a length limit).
	t.Run("a parked login is small", func(t *testing.T) {
		logins := store.NewSpreadTable[authn.Login](e.svc.Store(), "login") // the table authn parks logins in
		size := func(t *testing.T, ua, id, relayState string) int64 {
			t.Helper()
			sp := e.sp(jira)
			doc, err := sp.BuildAuthRequestDocument()
			if err != nil {
				t.Fatal(err)
			}
			doc.Root().CreateAttr("ID", id)
			u, err := sp.BuildAuthURLFromDocument(relayState, doc)
			if err != nil {
				t.Fatal(err)
			}
			jar, _ := cookiejar.New(nil)
			resp, err := (&http.Client{Jar: jar, Transport: uaTransport{ua}}).Get(u)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if !strings.Contains(resp.Request.URL.Path, "/login/") {
				t.Fatalf("not parked: status %d at %s", resp.StatusCode, resp.Request.URL)
			}
			txn := resp.Request.URL.Path[strings.LastIndex(resp.Request.URL.Path, "/")+1:]
			n, err := logins.MemoryUsage(context.Background(), txn)
			if errors.Is(err, store.ErrUnsupported) {
				t.Skip("the embedded store cannot measure memory")
			}
			if err != nil {
				t.Fatalf("memory usage of %s: %v", txn, err)
			}
			return n
		}
		chrome := "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Safari/537.36 Edg/142.0.0.0"
		atlassianRelay := "https://start.atlassian.com/?continue=https%3A%2F%2Fexample.atlassian.net%2Fjira%2Fsoftware%2Fprojects%2FPAS%2Fboards%2F1%3FselectedIssue%3DPAS-1234"
		typical := size(t, chrome, "_"+strings.Repeat("5f3c", 10), atlassianRelay)
		worst := size(t, strings.Repeat("M", 4096), "_"+strings.Repeat("x", 255), strings.Repeat("r", 1024))
		t.Logf("a parked login: %d bytes in Redis for an Atlassian-shaped request; %d bytes at most (longest ID, RelayState, User-Agent)", typical, worst)
		if typical > 1024 {
			t.Errorf("a parked Atlassian-shaped login costs %d bytes, want at most 1024", typical)
		}
		if worst > 2560 {
			t.Errorf("a parked login with the longest fields costs %d bytes, want at most 2.5 KiB", worst)
		}
	})
}

type uaTransport struct{ ua string }

func (u uaTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("User-Agent", u.ua)
	return http.DefaultTransport.RoundTrip(r)
}
