package api_test

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/winkk/passport/api/qrimage"
)

// The admin console in headless Chromium: an administrator walks the setup guide (sign in by phone, add an
// application with Audience and ACS URL blank, copy the three values, fill Audience and ACS URL later; a user
// then signs in to it), invites a user and reads the QR code, suspends them, reads the activity, and rolls the
// signing key over with a fresh approval. Every page is checked for console errors, requests to other hosts and
// basic accessibility (labels, one h1, focusable controls, no sideways scrolling).
//
// With PASSPORT_UPDATE_SCREENSHOTS=1 the Applications tab and an application's page are written to
// docs/screenshots (the README shows them), at 390 px and on a desktop.

// consoleTab is a browser tab on the console, with the requests it made to hosts other than ours.
type consoleTab struct {
	*tab
	e       *env
	mu      sync.Mutex
	foreign []string
}

func openConsoleTab(t *testing.T, b context.Context, e *env, lk look) *consoleTab {
	t.Helper()
	ct := &consoleTab{tab: openTab(t, b, lk, t.TempDir()), e: e}
	err := chromedp.Listen(ct.ctx, func(ev any) {
		if r, ok := ev.(*network.EventRequestWillBeSent); ok {
			u := r.Request.URL
			if !strings.HasPrefix(u, e.URL+"/") && !strings.HasPrefix(u, "data:") && !strings.HasPrefix(u, "http://127.0.0.1:") {
				ct.mu.Lock()
				ct.foreign = append(ct.foreign, u)
				ct.mu.Unlock()
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return ct
}

// consoleAuditJS returns the basic accessibility problems of a console page.
const consoleAuditJS = `(() => {
  const problems = [];
  const visible = el => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== "hidden";
  const describe = el => "<" + el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + "> \"" + (el.textContent || el.value || "").trim().slice(0, 40) + "\"";
  for (const el of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
    if ((!el.labels || el.labels.length === 0) && !el.getAttribute("aria-label")) problems.push("field without a label: " + describe(el));
  }
  const h1s = document.querySelectorAll("h1");
  if (h1s.length !== 1) problems.push(h1s.length + " h1 elements, want one");
  for (const el of document.querySelectorAll("button, a[href], input:not([type=hidden]), select, textarea")) {
    if (!visible(el)) continue;
    el.focus();
    if (document.activeElement !== el) problems.push("cannot take focus: " + describe(el));
    el.blur();
    if ((el.tagName === "BUTTON" || el.tagName === "A") && !(el.textContent.trim() || el.getAttribute("aria-label"))) problems.push("control without a name: " + describe(el));
  }
  const vw = document.documentElement.clientWidth;
  if (document.documentElement.scrollWidth > vw) problems.push("horizontal scrolling: " + document.documentElement.scrollWidth + "px in " + vw + "px");
  if (!document.documentElement.lang) problems.push("no lang on <html>");
  if (!document.title.trim()) problems.push("no <title>");
  return problems;
})()`

// check checks the page as it stands: console, foreign requests, accessibility.
func (ct *consoleTab) check(where string) {
	ct.t.Helper()
	ct.checkConsole(where)
	for _, p := range run(ct.tab, chromedp.Evaluate[[]string](consoleAuditJS)) {
		ct.t.Errorf("%s (%s): %s", where, ct.look.name, p)
	}
	ct.mu.Lock()
	defer ct.mu.Unlock()
	for _, u := range ct.foreign {
		ct.t.Errorf("%s (%s): a request to another host: %s", where, ct.look.name, u)
	}
	ct.foreign = nil
}

// shot saves a screenshot of the page under docs/screenshots when asked to (PASSPORT_UPDATE_SCREENSHOTS=1).
func (ct *consoleTab) shot(name string) {
	ct.t.Helper()
	png := run(ct.tab, chromedp.FullScreenshot(100))
	if os.Getenv("PASSPORT_UPDATE_SCREENSHOTS") != "1" {
		return
	}
	file := filepath.Join("..", "docs", "screenshots", "console-"+name+"-"+ct.look.name+".png")
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		ct.t.Fatal(err)
	}
	if err := os.WriteFile(file, png, 0o644); err != nil {
		ct.t.Fatal(err)
	}
}

// waitPath waits until the tab is on path (the sign-in pages follow the phone by reloading themselves).
func (ct *consoleTab) waitPath(path string) {
	ct.t.Helper()
	deadline := time.Now().Add(followTimeout)
	js := `location.pathname === ` + strconv.Quote(path) + ` && document.readyState === "complete" && document.querySelector("h1") !== null`
	for {
		ctx, cancel := context.WithTimeout(ct.ctx, stepTimeout)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			ct.fatalf("the tab did not reach %s (%v)", path, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// signIn signs the tab in as ph's user, from the sign-in page it is on, and waits for path.
func (ct *consoleTab) signIn(ph *phone, path string) {
	ct.t.Helper()
	ct.check("sign-in page")
	ct.do(chromedp.SendKeys(chromedp.CSS(`#email`), ph.Email))
	ct.press(`main form button[type="submit"]`)
	ct.approveShown(ph)
	ct.waitPath(path)
}

// approveShown approves, on ph, the number the tab shows.
func (ct *consoleTab) approveShown(ph *phone) {
	ct.t.Helper()
	n, err := strconv.Atoi(ct.textOf(`[data-testid="match-number"]`))
	if err != nil {
		ct.fatalf("no number: %v", err)
	}
	ct.check("waiting page")
	if _, err := ph.ApproveByNumber(context.Background(), n); err != nil {
		ct.fatalf("approve %d: %v", n, err)
	}
}

// clearFlash removes the page's flash message, so that waiting for one waits for the next page's.
func (ct *consoleTab) clearFlash() {
	ct.t.Helper()
	run(ct.tab, chromedp.Evaluate[bool](`(() => { const f = document.querySelector('[data-testid="flash"]'); if (f) f.remove(); return true; })()`))
}

// labelled returns the id of the control that the label with exactly this text is for.
func (ct *consoleTab) labelled(text string) string {
	ct.t.Helper()
	id := run(ct.tab, chromedp.Evaluate[string](`(() => { const l = Array.from(document.querySelectorAll("label")).find(l => l.textContent.trim() === `+strconv.Quote(text)+`); return l && document.getElementById(l.htmlFor) ? l.htmlFor : ""; })()`))
	if id == "" {
		ct.fatalf("no <label for> with the text %q", text)
	}
	return "#" + id
}

func TestConsoleBrowserGuide(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin := e.enrollAdmin("admin@example.com")
	employee := e.enroll("employee@example.com")
	b := mustBrowser(t)
	ct := openConsoleTab(t, b, e, looks[0])
	for _, perm := range []string{"clipboard-read", "clipboard-write"} {
		call(ct.tab, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{Permission: &cdpbrowser.PermissionDescriptor{Name: perm},
			Setting: cdpbrowser.PermissionSettingGranted, Origin: e.URL, BrowserContextID: chromedp.FromContext(ct.ctx).BrowserContextID})
	}

	// "Open the console, log in with your profile, and open the Applications tab."
	ct.do(chromedp.Navigate(e.URL + "/admin/apps"))
	ct.waitPath("/admin/signin")
	ct.signIn(admin, "/admin/apps")
	ct.check("Applications tab (empty)")

	// "Add a new application": the guide's labels; Audience and ACS URL left blank.
	ct.press(`a[href="/admin/apps/new"]`)
	ct.waitPath("/admin/apps/new")
	ct.check("add application")
	ct.do(chromedp.SendKeys(chromedp.CSS(ct.labelled("Name")), "Jira <Cloud> & Confluence"),
		chromedp.SendKeys(chromedp.CSS(ct.labelled("URL")), "https://example.atlassian.net"),
		chromedp.SendKeys(chromedp.CSS(ct.labelled("Authentication type")), "push"))
	if opt := run(ct.tab, chromedp.Evaluate[string](`document.querySelector(`+strconv.Quote(ct.labelled("Interface"))+`).selectedOptions[0].textContent`)); opt != "SAML2" {
		t.Errorf("Interface shows %q, want SAML2", opt)
	}
	for _, l := range []string{"Audience", "ACS URL"} {
		if v := run(ct.tab, chromedp.Evaluate[string](`document.querySelector(`+strconv.Quote(ct.labelled(l))+`).value`)); v != "" {
			t.Errorf("%s is %q on a new application, want blank", l, v)
		}
	}
	ct.press(`main form button[type="submit"]`)
	run(ct.tab, chromedp.WaitVisible(chromedp.CSS(`[data-testid="idp-entity-id"]`)))
	loc := mustURL(t, run(ct.tab, chromedp.Location()))
	appID := strings.TrimPrefix(loc.Path, "/admin/apps/")
	ct.check("application page (new)")
	if w := ct.textOf(`[data-testid="app-warnings"]`); !strings.Contains(w, "must both be set") {
		t.Errorf("the new application's page does not say it is not configured: %q", w)
	}

	// "Leave this tab opened ... to view the created app's identifier": the three values, as the JSON API and
	// the certificate endpoint say them.
	var api appView
	e.do("GET", "/api/v1/admin/apps/"+appID, adminToken, nil, http.StatusOK, &api)
	if got := ct.textOf(`[data-testid="idp-entity-id"]`); got != api.EntityID {
		t.Errorf("Entity ID on the page %q, API %q", got, api.EntityID)
	}
	if got := ct.textOf(`[data-testid="idp-sso-url"]`); got != api.SSOURL {
		t.Errorf("SSO URL on the page %q, API %q", got, api.SSOURL)
	}
	certHref := run(ct.tab, chromedp.Evaluate[string](`document.querySelector('[data-testid="idp-certificate"]').href`))
	if certHref != api.CertificateURL || certHref != e.URL+"/saml/certificate.pem" {
		t.Errorf("certificate link %q, API %q", certHref, api.CertificateURL)
	}
	_, pemBody := httpGet(t, certHref)
	if !strings.Contains(pemBody, "BEGIN CERTIFICATE") || pemBody != string(e.key.CertificatePEM) {
		t.Errorf("the certificate link does not give the signing certificate:\n%s", pemBody)
	}
	// The copy buttons put the same values on the clipboard.
	for _, c := range []struct{ button, want string }{
		{`button[data-copy="idp-entity-id"]`, api.EntityID},
		{`button[data-copy="idp-sso-url"]`, api.SSOURL},
		{`button[data-copy-url]`, pemBody},
	} {
		run(ct.tab, chromedp.Evaluate[string](`document.querySelector('[data-testid="copy-status"]').textContent = ""`))
		ct.press(c.button)
		ct.textOf(`[data-testid="copy-status"]:not(:empty)`)
		got := run(ct.tab, chromedp.Evaluate[string](`navigator.clipboard.readText()`, chromedp.EvalAwaitPromise))
		if got != c.want {
			t.Errorf("%s copied %q, want %q", c.button, got, c.want)
		}
	}
	ct.shot("app")

	// "Return to the tab ... and fill Audience and ACS URL. Click Save."
	acs := newACS(t)
	audience := "https://auth.atlassian.com/saml/" + appID
	ct.do(chromedp.SendKeys(chromedp.CSS(ct.labelled("Audience")), audience),
		chromedp.SendKeys(chromedp.CSS(ct.labelled("ACS URL")), acs))
	ct.clearFlash()
	ct.press(`section form.stack button[type="submit"]`)
	run(ct.tab, chromedp.WaitVisible(chromedp.CSS(`[data-testid="flash"]`)))
	ct.check("application page (configured)")
	e.do("GET", "/api/v1/admin/apps/"+appID, adminToken, nil, http.StatusOK, &api)
	if api.Audience != audience || api.ACSURL != acs {
		t.Fatalf("after saving, the API has audience %q, ACS %q", api.Audience, api.ACSURL)
	}

	// A user then signs in to that application end to end (SP-initiated), the Response checked by xmlsec1,
	// gosaml2 and crewjam.
	ub := newBrowser(t)
	w := ub.identify(ub.startLogin(e.sp(api), ""), employee.Email)
	resp, _ := samlForm(t, approve(t, ub, w, employee), api.ACSURL)
	e.bothAccept(t, api, resp, employee.Email, []string{ub.requestID})

	ct.do(chromedp.Navigate(e.URL + "/admin/apps"))
	run(ct.tab, chromedp.WaitVisible(chromedp.CSS(`table[data-testid="apps"]`)))
	if row := ct.textOf(`table[data-testid="apps"] tbody tr`); !strings.Contains(row, "Jira <Cloud> & Confluence") || !strings.Contains(row, "Yes") {
		t.Errorf("the Applications tab shows %q", row)
	}
	ct.check("Applications tab")
	ct.shot("apps")

	// Users: create, invite (the QR code encodes the link shown), suspend.
	ct.do(chromedp.Navigate(e.URL + "/admin/users"))
	ct.waitPath("/admin/users")
	ct.do(chromedp.SendKeys(chromedp.CSS(`#new-email`), "new.hire@example.com"))
	ct.press(`form[method="post"][action="/admin/users"] button[type="submit"]`)
	ct.waitPath("/admin/users/new.hire@example.com")
	ct.press(`form[action$="/invite"] button`)
	run(ct.tab, chromedp.WaitVisible(chromedp.CSS(`[data-testid="invitation-qr"]`)))
	ct.check("user page with an invitation")
	link := ct.textOf(`[data-testid="invitation-link"]`)
	src := run(ct.tab, chromedp.Evaluate[string](`document.querySelector('[data-testid="invitation-qr"]').getAttribute("src")`))
	want, _, err := qrimage.PNG(link, 256)
	if err != nil {
		t.Fatal(err)
	}
	if src != "data:image/png;base64,"+base64.StdEncoding.EncodeToString(want) || !strings.HasPrefix(link, e.URL+"/enroll?token=") {
		t.Errorf("the QR code on the page is not the code of the link %q", link)
	}
	ct.clearFlash()
	ct.press(`form[action$="/status"] button`)
	run(ct.tab, chromedp.WaitVisible(chromedp.CSS(`[data-testid="flash"]`)))
	if st := ct.textOf(`[data-testid="user-status"]`); st != "suspended" {
		t.Errorf("after Suspend the status is %q", st)
	}

	// Activity: the changes, by this administrator, filtered by type.
	ct.do(chromedp.Navigate(e.URL + "/admin/activity?type=app.updated"))
	ct.waitPath("/admin/activity")
	if rows := ct.textOf(`table[data-testid="events"] tbody`); !strings.Contains(rows, "app.updated") || !strings.Contains(rows, "admin:admin@example.com") || strings.Contains(rows, "user.") {
		t.Errorf("the activity filtered by app.updated shows %q", rows)
	}
	ct.check("Activity tab")

	// Keys: stage, then activate, which asks for a fresh approval on the phone first.
	e.clock.Advance(6 * time.Minute) // the sign-in's approval is no longer fresh
	ct.do(chromedp.Navigate(e.URL + "/admin/keys"))
	ct.waitPath("/admin/keys")
	ct.press(`form[action="/admin/keys/stage"] button`)
	run(ct.tab, chromedp.WaitVisible(chromedp.CSS(`[data-testid="next-key"]`)))
	ct.check("Keys tab (staged)")
	var keys struct {
		Current, Next *struct {
			SHA256 string `json:"sha256"`
		}
	}
	e.do("GET", "/api/v1/admin/keys", adminToken, nil, http.StatusOK, &keys)
	staged := keys.Next.SHA256
	ct.press(`form[action="/admin/keys/activate"] button`)
	ct.approveShown(admin)
	ct.waitPath("/admin/keys")
	e.do("GET", "/api/v1/admin/keys", adminToken, nil, http.StatusOK, &keys)
	if keys.Current.SHA256 == staged {
		t.Fatal("the key was activated before the fresh approval")
	}
	ct.press(`form[action="/admin/keys/activate"] button`)
	run(ct.tab, chromedp.WaitVisible(chromedp.CSS(`[data-testid="no-next-key"]`)))
	e.do("GET", "/api/v1/admin/keys", adminToken, nil, http.StatusOK, &keys)
	if keys.Current.SHA256 != staged {
		t.Fatalf("after the fresh approval the current key is %s, want the staged %s", keys.Current.SHA256, staged)
	}
	ct.check("Keys tab (activated)")

	// The narrowest screen: the same pages, readable at 390 px.
	mt := openConsoleTab(t, b, e, looks[1])
	mt.do(chromedp.Navigate(e.URL + "/admin/apps"))
	mt.waitPath("/admin/signin")
	mt.signIn(admin, "/admin/apps")
	mt.check("Applications tab")
	mt.shot("apps")
	mt.do(chromedp.Navigate(e.URL + "/admin/apps/" + appID))
	mt.waitPath("/admin/apps/" + appID)
	mt.check("application page")
	mt.shot("app")
	for _, p := range []string{"/admin", "/admin/users", "/admin/users/new.hire@example.com", "/admin/activity", "/admin/keys"} {
		mt.do(chromedp.Navigate(e.URL + p))
		mt.waitPath(p)
		mt.check(p)
	}
}

// newACS is an SP's ACS on loopback that takes every POST.
func newACS(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }))
	t.Cleanup(srv.Close)
	return srv.URL + "/acs"
}

func httpGet(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
