package api_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/winkk/passport/api/apitest"
	"github.com/winkk/passport/api/deviceapi"
	"github.com/winkk/passport/saml/samltest"
	"github.com/winkk/passport/store/storetest"
	"github.com/winkk/passport/store/storetest/redisproc"
)

// clusterUsers and clusterLoginsPerUser size TestCluster's run: users log in at the same time, each several
// times in a row.
const (
	clusterUsers         = 6
	clusterLoginsPerUser = 2
)

// TestCluster runs whole logins on a three-master Redis Cluster through the real server: device enrollment,
// the login page's event stream (pub/sub on a Cluster), phone approvals, the signed Response checked by
// xmlsec1 and two SP libraries, and IdP sessions answering a second application without a push. A script or
// MULTI/EXEC touching keys of two slots would fail there (CROSSSLOT), so the run also holds that every atomic
// step stays in one slot. Then it logs where the keys went, shard by shard.
func TestCluster(t *testing.T) {
	t.Parallel()
	samltest.NeedCheckers(t) // each login's Response is checked with them; the spread below needs every login
	c := redisproc.StartCluster(t)
	st := storetest.OpenURL(t, c.URL())
	e := envOf(t, apitest.StartOn(t, st))
	jira := e.newApp("Jira", atlassianAudience, acsURL)
	conf := e.newApp("Confluence", "https://sp.example.test/confluence", "http://127.0.0.1:9/confluence/acs")

	phones := make([]*phone, clusterUsers)
	for u := range phones {
		phones[u] = e.enroll(fmt.Sprintf("user%d@example.com", u))
	}
	t.Run("logins", func(t *testing.T) {
		for _, ph := range phones {
			t.Run(ph.Email, func(t *testing.T) {
				t.Parallel()
				for i := range clusterLoginsPerUser {
					clusterLogin(t, e, jira, conf, ph, i%2 == 1)
				}
				clusterWrongNumber(t, e, jira, ph)
			})
		}
	})
	if t.Failed() {
		return
	}

	keys, err := st.KeysByShard(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != len(c.Masters) {
		t.Fatalf("KeysByShard answered for %d masters, want %d: %v", len(keys), len(c.Masters), keys)
	}
	// Where the keys went. Logins and sessions are spread tables: each record has a slot of its own
	// ("{login:<id>}:r"), so they spread over the masters; a user's indexes share the user's slot; devices and
	// users keep one slot per table (see store/doc.go, "Redis Cluster").
	addrs := make([]string, 0, len(keys))
	for a := range keys {
		addrs = append(addrs, a)
	}
	sort.Strings(addrs)
	total, onMasters := map[string]int{}, map[string]int{}
	for _, a := range addrs {
		n := map[string]int{}
		for _, k := range keys[a] {
			for _, kind := range []string{"login", "session"} {
				if strings.Contains(k, "{"+kind+":") && strings.HasSuffix(k, "}:r") {
					n[kind]++
				}
			}
			for _, kind := range []string{"device", "user"} {
				if strings.Contains(k, "{"+kind+"}") {
					n[kind]++
				}
			}
		}
		for kind, c := range n {
			total[kind] += c
			onMasters[kind]++
		}
		t.Logf("shard %s: %d keys: %d login records, %d session records, %d keys of devices, %d of users",
			a, len(keys[a]), n["login"], n["session"], n["device"], n["user"])
	}
	logins := clusterUsers * (clusterLoginsPerUser + 1) // the wrong-number login too
	if total["login"] < logins || total["session"] < clusterUsers*clusterLoginsPerUser {
		t.Errorf("found %d login and %d session records after %d logins", total["login"], total["session"], logins)
	}
	// With a slot each, all 18 logins (or 12 sessions) on one of three masters has odds below 1 in 100,000.
	if onMasters["login"] < 2 || onMasters["session"] < 2 {
		t.Errorf("login records on %d masters, session records on %d: not spread", onMasters["login"], onMasters["session"])
	}
	if onMasters["device"] != 1 || onMasters["user"] != 1 {
		t.Errorf("device keys on %d masters, user keys on %d: a table with one slot spread", onMasters["device"], onMasters["user"])
	}
}

// clusterLogin is one whole login of ph's user to jira, its Response checked, followed by a login to conf
// answered from the session it opened. The phone approves the challenge it was pushed, or (byNumber) the
// number the browser shows; another answer is refused either way, and the same approval sent again is told it.
func clusterLogin(t *testing.T, e *env, jira, conf appView, ph *phone, byNumber bool) {
	b := newBrowser(t)
	waiting := b.identify(b.startLogin(e.sp(jira), "relay"), ph.Email)
	number := waiting.number(t)
	first, events, stop := openStream(t, b.c, waiting.URL)
	defer stop()
	if first != "state pending" {
		t.Fatalf("%s: first event %q, want state pending", ph.Email, first)
	}
	ctx := context.Background()
	ch := ph.waitChallenge(t)
	var err error
	if byNumber {
		_, err = ph.ApproveByNumber(ctx, number)
	} else {
		_, err = ph.AnswerChallenge(ctx, ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionApprove, Number: number})
	}
	if err != nil {
		t.Fatalf("%s: approve (by number: %v): %v", ph.Email, byNumber, err)
	}
	if _, err := ph.AnswerChallenge(ctx, ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionDeny}); apiCode(err) != "409 challenge_closed" {
		t.Errorf("%s: a second answer: %s, want 409 challenge_closed", ph.Email, apiCode(err))
	}
	if again, err := ph.AnswerChallenge(ctx, ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionApprove, Number: number}); err != nil || again.State != "approved" {
		t.Errorf("%s: the approval sent again: %+v, %v; want it told approved", ph.Email, again, err)
	}
	select {
	case ev := <-events:
		if ev != "state approved" {
			t.Errorf("%s: after the approval the stream sent %q", ph.Email, ev)
			return
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: the approval did not reach the waiting page", ph.Email)
	}
	resp, relay := samlForm(t, b.get(waiting.URL), acsURL)
	if relay != "relay" {
		t.Errorf("RelayState %q", relay)
	}
	e.bothAccept(t, jira, resp, ph.Email, []string{b.requestID})

	id, u := requestID(t, e.sp(conf))
	resp, _ = samlForm(t, b.get(u), conf.ACSURL)
	e.bothAccept(t, conf, resp, ph.Email, []string{id})
}

// clusterWrongNumber is a login the phone approves with another number than the browser shows: it is denied,
// the waiting page hears so and hands the application a signed AuthnFailed Response, never a Success.
func clusterWrongNumber(t *testing.T, e *env, jira appView, ph *phone) {
	b := newBrowser(t)
	waiting := b.identify(b.startLogin(e.sp(jira), ""), ph.Email)
	number := waiting.number(t)
	_, events, stop := openStream(t, b.c, waiting.URL)
	defer stop()
	ch := ph.waitChallenge(t)
	wrong := 10 + (number-10+1)%90
	_, err := ph.AnswerChallenge(context.Background(), ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionApprove, Number: wrong})
	if apiCode(err) != "422 number_mismatch" {
		t.Fatalf("%s: approving with the wrong number: %s, want 422 number_mismatch", ph.Email, apiCode(err))
	}
	select {
	case ev := <-events:
		if ev != "state denied" {
			t.Errorf("%s: after a wrong number the stream sent %q", ph.Email, ev)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("%s: the denial did not reach the waiting page", ph.Email)
	}
	wantFailurePage(t, e, b.get(waiting.URL), e.sp(jira), "number", "AuthnFailed")
}
