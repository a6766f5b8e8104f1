package api_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/winkk/passport/api/deviceapi"
	"github.com/winkk/passport/saml/samltest"
)

const (
	atlassianAudience = "https://auth.atlassian.com/saml/2b3f1c7e-aaaa-bbbb-cccc-0123456789ab"
	employee          = "ada@example.com"
)

// acsURL is an Atlassian-shaped ACS URL on loopback (http is allowed there), query included.
const acsURL = "http://127.0.0.1:9/login/callback?connection=saml-2b3f1c7e"

// TestEndToEnd drives the whole path: an admin registers the app as the setup guide does and invites an
// employee; the phone enrolls; the SP's AuthnRequest lands on our login page; the employee types their email,
// sees a number, approves on the phone with it; the browser gets a signed Response that an independent SP
// library, xmlsec1 and the SAML XSD all accept.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.newApp("Jira", atlassianAudience, acsURL)
	ph := e.enroll(employee)
	sp := e.sp(app)
	b := newBrowser(t)

	identify := b.startLogin(sp, "https://example.atlassian.net/jira/your-work")
	if identify.find(func(n *html.Node) bool { return n.Data == "input" && attr(n, "name") == "email" }) == nil {
		t.Fatalf("the identify step has no email input:\n%s", identify.Body)
	}
	waiting := b.identify(identify, employee)
	number := waiting.number(t)

	// The push reached FCM carrying only the challenge id.
	select {
	case m := <-e.fcm.Sent:
		if m.Message.Token != ph.FCMToken {
			t.Errorf("push went to token %q", m.Message.Token)
		}
		if len(m.Message.Data) == 0 || m.Message.Data["challenge_id"] == "" {
			t.Errorf("push data %v has no challenge_id", m.Message.Data)
		}
		raw, _ := json.Marshal(m.Raw)
		if strings.Contains(string(raw), employee) || strings.Contains(string(raw), "Jira") {
			t.Errorf("push carries sensitive data: %s", raw)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no push reached the fake FCM server")
	}

	ch := ph.waitChallenge(t)
	if ch.AppName != "Jira" || ch.IP == "" || ch.Email != employee {
		t.Errorf("challenge details = %+v, want app name, IP and email", ch)
	}
	ans, err := ph.AnswerChallenge(context.Background(), ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionApprove, Number: number})
	if err != nil {
		t.Fatalf("approve: %v", err)
	}
	if ans.State != deviceapi.StateApproved {
		t.Fatalf("answer state = %q", ans.State)
	}

	final := b.get(waiting.URL)
	action, form, ok := final.form()
	if !ok {
		t.Fatalf("no POST form after approval:\n%s", final.Body)
	}
	if action != acsURL {
		t.Errorf("form posts to %q, want the registered ACS URL %q", action, acsURL)
	}
	if form.Get("RelayState") != "https://example.atlassian.net/jira/your-work" {
		t.Errorf("RelayState = %q", form.Get("RelayState"))
	}
	info, err := sp.RetrieveAssertionInfo(form.Get("SAMLResponse"))
	if err != nil {
		t.Fatalf("gosaml2 refused the Response: %v", err)
	}
	if info.WarningInfo.InvalidTime || info.WarningInfo.NotInAudience || info.WarningInfo.OneTimeUse || info.WarningInfo.ProxyRestriction != nil {
		t.Errorf("gosaml2 warnings: %+v", info.WarningInfo)
	}
	if info.NameID != employee {
		t.Errorf("NameID = %q, want %q", info.NameID, employee)
	}
	if info.SessionIndex == "" {
		t.Error("no SessionIndex")
	}

	xml, err := base64.StdEncoding.DecodeString(form.Get("SAMLResponse"))
	if err != nil {
		t.Fatal(err)
	}
	cert := samltest.ParseCertificatePEM(t, fetch(t, e.URL+"/saml/certificate.pem"))
	samltest.XMLSecVerify(t, xml, cert)
	samltest.XMLSecVerify(t, samltest.ExtractAssertion(t, xml), cert)
	samltest.SchemaValid(t, samltest.ProtocolXSD, xml)
	samltest.SchemaValid(t, samltest.MetadataXSD, fetch(t, app.MetadataURL))

	// Reloading shows the same Response again: the login is answered once.
	again := b.get(waiting.URL)
	_, form2, _ := again.form()
	if form2.Get("SAMLResponse") != form.Get("SAMLResponse") {
		t.Error("a reload produced a different Response")
	}
	// The challenge is closed for the phone: another answer is refused; its approval sent again is told it.
	if _, err := ph.AnswerChallenge(context.Background(), ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionDeny}); apiCode(err) != "409 challenge_closed" {
		t.Errorf("second answer: %s, want 409 challenge_closed", apiCode(err))
	}
	if again, err := ph.AnswerChallenge(context.Background(), ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionApprove, Number: number}); err != nil || again.State != deviceapi.StateApproved {
		t.Errorf("the approval sent again, after the Response: %+v, %v; want it told approved", again, err)
	}
	// Operators see what the store was asked.
	metrics := string(fetch(t, e.URL+"/metrics"))
	for _, name := range []string{"passport_store_round_trips_total", "passport_store_commands_total"} {
		var n float64
		i := strings.Index(metrics, "\n"+name+" ")
		if i < 0 {
			t.Errorf("/metrics has no %s", name)
			continue
		}
		if _, err := fmt.Sscan(metrics[i+len(name)+2:], &n); err != nil || n < loginRoundTrips {
			t.Errorf("%s = %v (%v), want at least one login's worth", name, n, err)
		}
	}
	for _, name := range []string{"process_cpu_seconds_total", "process_resident_memory_bytes"} {
		if !strings.Contains(metrics, "\n"+name+" ") {
			t.Errorf("/metrics has no %s", name)
		}
	}
}

func fetch(t *testing.T, u string) []byte {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", u, resp.StatusCode, err)
	}
	return b
}

// metricsWith fetches u's /metrics until it holds every line of want, for up to five seconds, and returns the
// last fetch. An event stream records how soon it told its page just after the event's write returned, so a
// test that has read the event can reach /metrics a moment before the count does.
func metricsWith(t *testing.T, u string, want ...string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		m := string(fetch(t, u+"/metrics"))
		missing := false
		for _, w := range want {
			missing = missing || !strings.Contains(m, w)
		}
		if !missing || time.Now().After(deadline) {
			return m
		}
		time.Sleep(10 * time.Millisecond)
	}
}
