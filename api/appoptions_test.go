package api_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/winkk/passport/authn/audit"
	"github.com/winkk/passport/saml/samltest"
)

// TestSignWhatTheSPNeeds: an application's sign setting (both, assertion, response) decides which elements
// of its Responses are signed; every variant is accepted by gosaml2 and crewjam/saml and verified by xmlsec1.
func TestSignWhatTheSPNeeds(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ada := e.enroll(employee)
	for _, tc := range []struct {
		sign                string
		response, assertion bool // which carry a ds:Signature
	}{
		{"both", true, true},
		{"assertion", false, true},
		{"response", true, false},
	} {
		t.Run(tc.sign, func(t *testing.T) {
			app := e.newApp("App "+tc.sign, "https://sp.example.test/"+tc.sign, "http://127.0.0.1:9/"+tc.sign+"/acs")
			var got appView
			e.do("PATCH", "/api/v1/admin/apps/"+app.ID, adminToken, map[string]any{"sign": tc.sign}, http.StatusOK, &got)
			b := newBrowser(t)
			resp, _ := samlForm(t, approve(t, b, b.identify(b.startLogin(e.sp(app), ""), employee), ada), app.ACSURL)
			e.bothAccept(t, app, resp, employee, []string{b.requestID})
			raw, _ := base64.StdEncoding.DecodeString(resp)
			doc := etree.NewDocument()
			if err := doc.ReadFromBytes(raw); err != nil {
				t.Fatal(err)
			}
			hasSig := func(el *etree.Element) bool {
				for _, c := range el.ChildElements() {
					if c.Tag == "Signature" {
						return true
					}
				}
				return false
			}
			assertion := doc.Root().FindElement("./Assertion")
			if assertion == nil {
				t.Fatal("no Assertion in the Response")
			}
			if hasSig(doc.Root()) != tc.response || hasSig(assertion) != tc.assertion {
				t.Errorf("sign=%s: Response signed %v, Assertion signed %v; want %v, %v", tc.sign, hasSig(doc.Root()), hasSig(assertion), tc.response, tc.assertion)
			}
		})
	}
	t.Run("an unknown choice is refused", func(t *testing.T) {
		app := e.newApp("Other", "https://sp.example.test/other", "http://127.0.0.1:9/other/acs")
		if st, _, body := e.call("PATCH", "/api/v1/admin/apps/"+app.ID, adminToken, "application/json", `{"sign":"neither"}`); st != 400 || !strings.Contains(string(body), `"field":"sign"`) {
			t.Errorf("sign=neither: %d %s", st, body)
		}
	})
}

// TestAllowedGroups: an application with allowed_groups refuses everyone outside them before any push, with
// a clear page and a RequestDenied Response, from a login and from an IdP session alike.
func TestAllowedGroups(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	jira := e.newApp("Jira", atlassianAudience, acsURL)
	conf := e.newApp("Confluence", "https://sp.example.test/confluence", "http://127.0.0.1:9/confluence/acs")
	e.do("PATCH", "/api/v1/admin/apps/"+conf.ID, adminToken, map[string]any{"allowed_groups": []string{"writers", "editors"}}, http.StatusOK, nil)
	ada := e.enroll(employee)
	bob := e.enroll("bob@example.com")
	e.do("PATCH", "/api/v1/admin/users/"+employee, adminToken, map[string]any{"groups": []string{"editors"}}, http.StatusOK, nil)

	t.Run("a member signs in", func(t *testing.T) {
		b := newBrowser(t)
		resp, _ := samlForm(t, approve(t, b, b.identify(b.startLogin(e.sp(conf), ""), employee), ada), conf.ACSURL)
		e.bothAccept(t, conf, resp, employee, []string{b.requestID})
	})
	t.Run("anyone else is refused before any push", func(t *testing.T) {
		for _, email := range []string{"bob@example.com", "nobody@example.com"} {
			before := e.settledPushes(t, 1) // the member's login above
			b := newBrowser(t)
			p := b.identify(b.startLogin(e.sp(conf), ""), email)
			wantFailurePage(t, e, p, e.sp(conf), "not allowed", "RequestDenied")
			if e.fcm.Attempts() != before {
				t.Errorf("%s: a push was sent", email)
			}
		}
		if list, err := bob.ListChallenges(t.Context()); err != nil || len(list.Challenges) != 0 {
			t.Errorf("bob's phone lists %v (%v)", list, err)
		}
		// The audit log says why: login.failed, reason not_allowed, with the application named.
		deadline := time.Now().Add(5 * time.Second)
		for {
			var page struct{ Events []audit.Event }
			e.do("GET", "/api/v1/admin/events?type=login.failed&email=bob@example.com&app_id="+conf.ID, adminToken, nil, http.StatusOK, &page)
			if len(page.Events) == 1 && page.Events[0].Reason == "not_allowed" && page.Events[0].Outcome == audit.OutcomeFailure {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no login.failed (not_allowed) event for bob: %+v", page.Events)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	t.Run("an IdP session of a non-member is not used", func(t *testing.T) {
		b := newBrowser(t)
		samlForm(t, approve(t, b, b.identify(b.startLogin(e.sp(jira), ""), "bob@example.com"), bob), acsURL)
		_, u := requestID(t, e.sp(conf))
		p := b.get(u)
		wantFailurePage(t, e, p, e.sp(conf), "not allowed", "RequestDenied")
	})
	t.Run("group names are checked, each one", func(t *testing.T) {
		st, _, body := e.call("PATCH", "/api/v1/admin/apps/"+conf.ID, adminToken, "application/json", `{"allowed_groups":["ok","","x\u0000y"]}`)
		var eb struct {
			Error struct {
				Code   string
				Fields []struct{ Field, Message string }
			}
		}
		_ = json.Unmarshal(body, &eb)
		if st != 400 || len(eb.Error.Fields) != 2 || eb.Error.Fields[0].Field != "allowed_groups[1]" || eb.Error.Fields[1].Field != "allowed_groups[2]" {
			t.Errorf("bad group names: %d %s", st, body)
		}
	})
}

// TestFieldErrors: the admin API reports every field's problem at once, each named, for a form to show
// beside its field.
func TestFieldErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	st, _, body := e.call("POST", "/api/v1/admin/apps", adminToken, "application/json",
		`{"name":"","interface":"saml3","acs_url":"javascript:alert(1)","nameid_format":"x","relay_states":["ftp://x"]}`)
	var eb struct {
		Error struct {
			Code    string
			Message string
			Fields  []struct{ Field, Message string }
		}
	}
	if err := json.Unmarshal(body, &eb); err != nil || st != 400 || eb.Error.Code != "invalid_request" {
		t.Fatalf("%d %s", st, body)
	}
	var fields []string
	for _, f := range eb.Error.Fields {
		fields = append(fields, f.Field)
		if f.Message == "" || !strings.Contains(eb.Error.Message, f.Message) {
			t.Errorf("field %s: message %q not in the error's message %q", f.Field, f.Message, eb.Error.Message)
		}
	}
	if want := "name interface acs_url nameid_format relay_states[0]"; strings.Join(fields, " ") != want {
		t.Errorf("fields %v, want %s", fields, want)
	}
	st, _, body = e.call("POST", "/api/v1/admin/users", adminToken, "application/json", `{"email":"u@example.com","given_name":"a\u0001","status":"gone"}`)
	if st != 400 || !strings.Contains(string(body), `"field":"given_name"`) || !strings.Contains(string(body), `"field":"status"`) {
		t.Errorf("user fields: %d %s", st, body)
	}
}

// TestMetadataNameIDFormat: an application's metadata advertises only the NameID format it issues, so an SP
// that asks for the first format it reads there is answered, not refused InvalidNameIDPolicy.
func TestMetadataNameIDFormat(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ada := e.enroll(employee)
	for _, f := range []struct{ setting, urn string }{
		{"emailAddress", "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"},
		{"transient", "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"},
		{"persistent", "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"},
	} {
		t.Run(f.setting, func(t *testing.T) {
			app := e.newApp("App "+f.setting, "https://sp.example.test/"+f.setting, "http://127.0.0.1:9/"+f.setting+"/acs")
			e.do("PATCH", "/api/v1/admin/apps/"+app.ID, adminToken, map[string]any{"nameid_format": f.setting}, http.StatusOK, nil)
			md := fetch(t, app.MetadataURL)
			samltest.SchemaValid(t, samltest.MetadataXSD, md)
			doc := etree.NewDocument()
			if err := doc.ReadFromBytes(md); err != nil {
				t.Fatal(err)
			}
			var formats []string
			for _, el := range doc.FindElements("//NameIDFormat") {
				formats = append(formats, el.Text())
			}
			if len(formats) != 1 || formats[0] != f.urn {
				t.Fatalf("metadata advertises %v, want only %s", formats, f.urn)
			}
			// An SP asking for the first (only) format it read is signed in.
			sp := e.sp(app)
			sp.NameIdFormat = formats[0]
			b := newBrowser(t)
			p := approve(t, b, b.identify(b.startLogin(sp, ""), employee), ada)
			if _, form, ok := p.form(); !ok || form.Get("SAMLResponse") == "" || strings.Contains(p.Body, "login-error") {
				t.Fatalf("an SP asking for %s was not answered with a Response:\n%s", formats[0], p.Body)
			}
		})
	}
}
