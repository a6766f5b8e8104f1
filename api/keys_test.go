package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	crewjam "github.com/crewjam/saml"

	"github.com/winkk/passport/api"
	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/saml/samltest"
	"github.com/winkk/passport/store"
)

// TestKeyRollover stages a next key, checks it is published beside the current one, activates it, and checks
// that an SP which loaded the metadata before the switch accepts Responses signed after it.
func TestKeyRollover(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.newApp("Jira", atlassianAudience, acsURL)
	ph := e.enroll(employee)
	oldCert := fetch(t, e.URL+"/saml/certificate.pem")
	if resp, err := http.Get(e.URL + "/saml/certificate.pem?next"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("?next before staging: %v %v, want 404", resp.StatusCode, err)
	} else {
		resp.Body.Close()
	}

	var staged struct {
		Current, Next struct{ PEM string }
	}
	e.do("POST", "/api/v1/admin/keys/next", adminToken, nil, http.StatusOK, &staged)
	nextCert := fetch(t, e.URL+"/saml/certificate.pem?next")
	if string(nextCert) != staged.Next.PEM || bytes.Equal(nextCert, oldCert) {
		t.Fatal("?next does not serve the staged certificate")
	}
	md := fetch(t, app.MetadataURL)
	samltest.SchemaValid(t, samltest.MetadataXSD, md)
	for _, c := range [][]byte{oldCert, nextCert} {
		if !bytes.Contains(md, []byte(pemBody(c))) {
			t.Error("metadata does not publish both certificates")
		}
	}
	// An SP loads the metadata now, while the old key still signs.
	var before crewjam.EntityDescriptor
	if err := xml.Unmarshal(md, &before); err != nil {
		t.Fatal(err)
	}

	b := newBrowser(t)
	resp, _ := samlForm(t, approve(t, b, b.identify(b.startLogin(e.sp(app), ""), employee), ph), acsURL)
	raw, _ := base64.StdEncoding.DecodeString(resp)
	samltest.XMLSecVerify(t, raw, samltest.ParseCertificatePEM(t, oldCert))

	e.do("POST", "/api/v1/admin/keys/activate", adminToken, map[string]string{"grace": "24h"}, http.StatusOK, nil)
	if !bytes.Equal(fetch(t, e.URL+"/saml/certificate.pem"), nextCert) {
		t.Fatal("the staged certificate is not current after activation")
	}
	if md := fetch(t, app.MetadataURL); !bytes.Contains(md, []byte(pemBody(oldCert))) {
		t.Error("the old certificate left the metadata before its grace period")
	}
	b2 := newBrowser(t)
	resp, _ = samlForm(t, approve(t, b2, b2.identify(b2.startLogin(e.sp(app), ""), employee), ph), acsURL)
	raw, _ = base64.StdEncoding.DecodeString(resp)
	samltest.XMLSecVerify(t, raw, samltest.ParseCertificatePEM(t, nextCert))
	if err := samltest.XMLSecCheck(t, raw, samltest.ParseCertificatePEM(t, oldCert)); err == nil {
		t.Error("the new Response verifies with the old key")
	}
	sp := e.crewjamSP(app)
	sp.IDPMetadata = &before
	if _, err := sp.ParseXMLResponse(raw, []string{b2.requestID}, *mustURL(t, acsURL)); err != nil {
		t.Errorf("an SP with the pre-rollover metadata refused the new signature: %v", err)
	}
	if st, code, _ := e.call("POST", "/api/v1/admin/keys/activate", adminToken, "", ""); st != http.StatusBadRequest || code != "no_next_key" {
		t.Errorf("activate without a staged key: %d %s", st, code)
	}
}

func pemBody(p []byte) string {
	s := strings.TrimSpace(string(p))
	s = strings.TrimPrefix(s, "-----BEGIN CERTIFICATE-----")
	s = strings.TrimSuffix(s, "-----END CERTIFICATE-----")
	return strings.ReplaceAll(s, "\n", "")[:64]
}

// TestShutdownTellsBrowsersToReload: a waiting login page's event stream gets "reload" when the server
// shuts down, so the browser comes back to a server that is up.
func TestShutdownTellsBrowsersToReload(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.newApp("Jira", atlassianAudience, acsURL)
	e.enroll(employee)
	b := newBrowser(t)
	waiting := b.identify(b.startLogin(e.sp(app), ""), employee)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", waiting.URL+"/events", nil)
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("content type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	events := map[string]string{}
	var event string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			events[event] = strings.TrimPrefix(line, "data: ")
			if event == "state" {
				e.srv.Closing()
			}
		}
		if events["reload"] != "" {
			break
		}
	}
	if events["state"] != "pending" || events["reload"] != "shutdown" {
		t.Errorf("events %v, want state pending then reload", events)
	}
}

// TestReplicasFollowRollover: a second server on the same store signs with the new key as soon as the first
// activates it (the change is announced through the store).
func TestReplicasFollowRollover(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ring, err := e.svc.Keys.Ring(context.Background(), "Winkk Passport IdP")
	if err != nil {
		t.Fatal(err)
	}
	other, err := api.New(context.Background(), api.Config{BaseURL: e.URL, EntityID: "Winkk Passport IdP", AdminToken: adminToken, Clock: e.clock.Now}, e.svc, ring)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Closing()
	ts := httptest.NewServer(other)
	defer ts.Close()

	var staged struct{ Next struct{ PEM string } }
	e.do("POST", "/api/v1/admin/keys/next", adminToken, nil, http.StatusOK, &staged)
	// Staging is announced too: the other replica publishes the next certificate within seconds, not at its
	// minute reload.
	deadline := time.Now().Add(15 * time.Second)
	nextOf := func() string {
		resp, err := http.Get(ts.URL + "/saml/certificate.pem?next")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	for nextOf() != staged.Next.PEM {
		if time.Now().After(deadline) {
			t.Fatal("the other replica does not publish the staged certificate")
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.do("POST", "/api/v1/admin/keys/activate", adminToken, nil, http.StatusOK, nil)
	deadline = time.Now().Add(15 * time.Second)
	for string(fetch(t, ts.URL+"/saml/certificate.pem")) != staged.Next.PEM {
		if time.Now().After(deadline) {
			t.Fatal("the other replica still serves the old certificate")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestKeysGoneFromTheStore: when the key ring vanishes from the store (Redis restarted without its data),
// a running server keeps signing with the keys it holds and says so loudly; it never makes new ones.
func TestKeysGoneFromTheStore(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	before := fetch(t, e.URL+"/saml/certificate.pem")
	st := e.svc.Store()
	if err := store.NewTable[json.RawMessage](st, "idp").Delete(context.Background(), "keyring"); err != nil {
		t.Fatalf("delete the key ring: %v", err)
	}
	if err := st.Publish(context.Background(), authn.KeysChannel, "activated"); err != nil { // make every server reload now
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(e.logs.String(), "signing keys are gone from the store") {
		if time.Now().After(deadline) {
			t.Fatalf("no error logged:\n%s", e.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if after := fetch(t, e.URL+"/saml/certificate.pem"); !bytes.Equal(after, before) {
		t.Error("the server changed its certificate when the key ring vanished")
	}
	if _, err := e.svc.Keys.Load(context.Background()); !errors.Is(err, authn.ErrNoKeyRing) {
		t.Errorf("a new key ring was created: %v", err)
	}
}

// TestActivateUnopenableKey: a staged key this server cannot open (staged by one with a key-encryption key
// it lacks) is not activated, and the admin hears why.
func TestActivateUnopenableKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sealer := authn.New(e.svc.Store(), nil, nil, authn.Config{KeyEncryptionKey: bytes.Repeat([]byte{9}, 32)})
	defer sealer.Close()
	if _, err := sealer.Keys.Stage(context.Background(), "Winkk Passport IdP"); err != nil {
		t.Fatal(err)
	}
	before := fetch(t, e.URL+"/saml/certificate.pem")
	st, code, body := e.call("POST", "/api/v1/admin/keys/activate", adminToken, "", "")
	if st != http.StatusConflict || code != "key_unopenable" {
		t.Fatalf("activate: %d %s %s", st, code, body)
	}
	ring, err := sealer.Keys.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if ring.Next == nil || !bytes.Equal(ring.Current.CertificatePEM, before) {
		t.Error("the refused activation changed the key ring")
	}
	if after := fetch(t, e.URL+"/saml/certificate.pem"); !bytes.Equal(after, before) {
		t.Error("the signing certificate changed")
	}
}
