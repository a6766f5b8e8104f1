package api_test

import (
	"context"
	"errors"
	"fmt"
	"path"
	"testing"
	"time"

	"github.com/winkk/passport/api/apitest"
	"github.com/winkk/passport/api/deviceapi"
	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/store/storetest/redisproc"
)

// TestApprovalSentAgain: a phone that sends its approval again (it never heard the answer: a timeout, a
// dropped network, a failover) is told the approval it made, by challenge and by number, as often as it asks
// within a minute; nothing is written or audited twice. It does not turn into anything else: another
// answer, another phone of the user, another number, or the same number after a minute get what they got
// before.
func TestApprovalSentAgain(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	jira, ph, b, waiting := e.jiraLogin(t)
	other := e.enroll(employee) // the user's second phone
	ctx := context.Background()
	number := waiting.number(t)
	ch := ph.waitChallenge(t)

	first, err := ph.ApproveByNumber(ctx, number)
	if err != nil || first.Challenge.ID != ch.ID || first.State != deviceapi.StateApproved {
		t.Fatalf("approve by number: %+v, %v", first, err)
	}
	for i := range 3 {
		again, err := ph.ApproveByNumber(ctx, number)
		if err != nil || again.Challenge.ID != ch.ID || again.State != deviceapi.StateApproved {
			t.Fatalf("the approval by number sent again (%d): %+v, %v; want the approval of %s", i+1, again, err, ch.ID)
		}
	}
	if again, err := ph.AnswerChallenge(ctx, ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionApprove, Number: number}); err != nil || again.State != deviceapi.StateApproved {
		t.Fatalf("the approval sent again by challenge: %+v, %v", again, err)
	}
	// Only the phone that approved is told so, and only of the approval it made.
	if _, err := other.ApproveByNumber(ctx, number); apiCode(err) != "404 no_matching_challenge" {
		t.Errorf("the user's other phone sending the number: %s, want 404 no_matching_challenge", apiCode(err))
	}
	if _, err := other.AnswerChallenge(ctx, ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionApprove, Number: number}); apiCode(err) != "409 challenge_closed" {
		t.Errorf("the user's other phone approving the approved challenge: %s, want 409 challenge_closed", apiCode(err))
	}
	if _, err := ph.ApproveByNumber(ctx, otherNumber(number)); apiCode(err) != "404 no_matching_challenge" {
		t.Errorf("another number: %s, want 404 no_matching_challenge", apiCode(err))
	}
	if _, err := ph.AnswerChallenge(ctx, ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionDeny}); apiCode(err) != "409 challenge_closed" {
		t.Errorf("denying what the phone approved: %s, want 409 challenge_closed", apiCode(err))
	}
	if _, err := ph.AnswerChallenge(ctx, ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionApprove, Number: otherNumber(number)}); apiCode(err) != "409 challenge_closed" {
		t.Errorf("approving with another number what the phone approved: %s, want 409 challenge_closed", apiCode(err))
	}

	// The browser signs in once; the approval was recorded once.
	resp, _ := samlForm(t, b.get(waiting.URL), acsURL)
	e.bothAccept(t, jira, resp, employee, []string{b.requestID})
	if again, err := ph.ApproveByNumber(ctx, number); err != nil || again.Challenge.ID != ch.ID {
		t.Errorf("the approval sent again after the Response was made: %+v, %v", again, err)
	}
	if got := e.events("login.succeeded", employee); len(got) != 1 {
		t.Fatalf("login.succeeded events: %d, want 1", len(got))
	}
	if got := e.events("login.approved", employee); len(got) != 1 {
		t.Errorf("login.approved events: %d, want 1: %+v", len(got), got)
	}

	// A minute on, the number is a number again: nothing shows it.
	e.clock.Advance(61 * time.Second)
	if _, err := ph.ApproveByNumber(ctx, number); apiCode(err) != "404 no_matching_challenge" {
		t.Errorf("the number a minute after its approval: %s, want 404 no_matching_challenge", apiCode(err))
	}
}

// TestDeniedSentAgain: a denial, and a report, sent again are told what they recorded, once.
func TestDeniedSentAgain(t *testing.T) {
	t.Parallel()
	e, ph, _, waiting := jiraLogin(t)
	ctx := context.Background()
	ch := ph.waitChallenge(t)
	for i := range 2 {
		got, err := ph.AnswerChallenge(ctx, ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionDeny, Report: true})
		if err != nil || got.State != deviceapi.StateDenied {
			t.Fatalf("report %d: %+v, %v", i+1, got, err)
		}
	}
	if _, err := ph.AnswerChallenge(ctx, ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionApprove, Number: waiting.number(t)}); apiCode(err) != "409 challenge_closed" {
		t.Errorf("approving what the phone reported: %s, want 409 challenge_closed", apiCode(err))
	}
	if got := e.events("login.reported", employee); len(got) != 1 {
		t.Errorf("login.reported events: %d, want 1", len(got))
	}
}

// TestApprovalAnswerLost: the server records the phone's approval, and the phone stops waiting for the answer
// (here the server waits for a replica that never answers; on a phone, a dropped network). The phone sends
// its approval again and is told it at once; the browser signs in.
func TestApprovalAnswerLost(t *testing.T) {
	t.Parallel()
	alone := redisproc.Start(t) // replica_ack=1 with no replica: each acknowledged write waits its 1.5s out
	srv := apitest.StartWith(t, redisproc.Open(t, alone.URL()+"?replica_ack=1&replica_ack_timeout=1500ms"), apitest.Options{})
	e := envOf(t, srv)
	app, ph, b, waiting := e.jiraLogin(t)
	number := waiting.number(t)
	ph.waitChallenge(t)

	impatient, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err := ph.ApproveByNumber(impatient, number)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the phone's first approval: %v, want it to give up waiting", err)
	}
	start := time.Now()
	again, err := ph.ApproveByNumber(context.Background(), number)
	if err != nil || again.State != deviceapi.StateApproved {
		t.Fatalf("the approval sent again: %+v, %v; want it told approved", again, err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("the approval sent again took %v: it waited for the replica again (nothing is written again)", took)
	}
	resp, _ := samlForm(t, b.get(waiting.URL), acsURL)
	e.bothAccept(t, app, resp, employee, []string{b.requestID})
}

// TestApprovedNumberStaysTaken: a number the phone approved stays taken for the minute in which the phone may
// send that approval again — no sign-in of the user draws it meanwhile, not even one a stranger plants with
// the user's email while every other number is taken — so the approval sent again, by the number alone or
// naming the sign-in it showed, is told the approval it made and approves nothing else.
func TestApprovedNumberStaysTaken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *authn.Config) {
		c.Limits.MaxPending, c.Limits.MaxPendingPerUser = 100, 100 // the user's open sign-ins: at most 60
		c.Limits.PushesPerHour, c.Limits.PushesPerHourPerUser = 1000, 1000
	})
	jira, ph, b, waiting := e.jiraLogin(t)
	ctx := context.Background()
	number := waiting.number(t)
	mine := ph.waitChallenge(t)
	holdNumbers(t, e, jira)
	if got, err := ph.ApproveByNumber(ctx, number); err != nil || got.Challenge.ID != mine.ID {
		t.Fatalf("approve: %+v, %v", got, err)
	}
	drawn := plantedDraws(t, e, ph, jira, 40)
	if drawn[number] > 0 {
		t.Fatalf("a planted sign-in drew %d, the number the phone approved a moment ago (draws: %v)", number, drawn)
	}
	if len(drawn) < 25 { // 31 numbers were free besides it
		t.Fatalf("the planted sign-ins drew only %v: the draws did not range over the free numbers", drawn)
	}

	for _, again := range []deviceapi.ApproveByNumberRequest{{Number: number}, {Number: number, ContextHash: deviceapi.ContextHash(*mine)}} {
		got, err := ph.Approve(ctx, again)
		if err != nil || got.Challenge.ID != mine.ID || got.State != deviceapi.StateApproved {
			t.Fatalf("the approval sent again (%+v): %+v, %v; want the approval of %s", again, got, err, mine.ID)
		}
	}
	// Naming a sign-in that is not the one approved answers nothing.
	elsewhere := *mine
	elsewhere.AppName = "Confluence"
	if _, err := ph.Approve(ctx, deviceapi.ApproveByNumberRequest{Number: number, ContextHash: deviceapi.ContextHash(elsewhere)}); apiCode(err) != "404 no_matching_challenge" {
		t.Errorf("naming another context: %s, want 404 no_matching_challenge", apiCode(err))
	}
	resp, _ := samlForm(t, b.get(waiting.URL), acsURL)
	e.bothAccept(t, jira, resp, employee, []string{b.requestID})
	if got := e.events("login.approved", employee); len(got) != 1 {
		t.Errorf("login.approved events: %d, want 1", len(got))
	}
}

// holdNumbers opens sign-ins of the employee beside the one open, and keeps them open, until the employee has
// 59 (of at most 60): a number freed later is then one of 32 a new sign-in can draw.
func holdNumbers(t *testing.T, e *env, app appView) {
	t.Helper()
	filler := newBrowserFrom(t, "127.0.2.1")
	for range 58 {
		idpLogin(t, e, filler, app, employee).number(t)
	}
}

// plantedDraws has a stranger plant n sign-ins with the employee's email, each from a network of its own, and
// counts the numbers they draw: each is taken back to the email step and submitted again (a new draw) up to
// its limit, five times, then denied on the phone.
func plantedDraws(t *testing.T, e *env, ph *phone, app appView, n int) map[int]int {
	t.Helper()
	drawn := map[int]int{}
	for i := range n {
		stranger := newBrowserFrom(t, fmt.Sprintf("127.0.3.%d", 1+i))
		p := idpLogin(t, e, stranger, app, employee)
		for redraw := 0; ; redraw++ {
			drawn[p.number(t)]++
			if redraw == 5 { // a sign-in goes back to the email step at most five times
				break
			}
			p = stranger.identify(stranger.postForm(p.URL+"/change", nil), employee)
		}
		if _, err := ph.AnswerChallenge(context.Background(), path.Base(p.URL), deviceapi.AnswerRequest{Decision: deviceapi.DecisionDeny}); err != nil {
			t.Fatalf("deny the planted sign-in: %v", err)
		}
	}
	return drawn
}

// otherNumber is a two-digit number that is not n.
func otherNumber(n int) int {
	if n == 99 {
		return 10
	}
	return n + 1
}
