package api_test

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	crewjam "github.com/crewjam/saml"
	saml2 "github.com/russellhaering/gosaml2"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/saml"
	"github.com/winkk/passport/saml/samltest"
)

// signingSP gives app an SP signing key: its certificate goes into the app's sp_certificates, and the
// returned gosaml2 SP signs its requests with the key.
func (e *env) signingSP(a appView, sloURL string) (*saml2.SAMLServiceProvider, dsig.X509KeyStore) {
	e.t.Helper()
	ks := dsig.RandomKeyStoreForTest()
	_, der, err := ks.GetKeyPair()
	if err != nil {
		e.t.Fatal(err)
	}
	certPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	e.do("PATCH", "/api/v1/admin/apps/"+a.ID, adminToken, map[string]any{"sp_certificates": []string{certPEM}, "slo_url": sloURL}, http.StatusOK, nil)
	sp := e.sp(a)
	sp.SPKeyStore = ks
	sp.SPSigningKeyStore = ks
	sp.SignAuthnRequests = true
	sp.IdentityProviderSLOURL = e.URL + "/saml/" + a.ID + "/slo"
	sp.ServiceProviderSLOURL = sloURL
	return sp, ks
}

func TestSingleLogout(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	jira := e.newApp("Jira", atlassianAudience, acsURL)
	conf := e.newApp("Confluence", "https://sp.example.test/confluence", "http://127.0.0.1:9/confluence/acs")
	jiraSP, _ := e.signingSP(jira, "http://127.0.0.1:9/jira/slo")
	e.do("PATCH", "/api/v1/admin/apps/"+conf.ID, adminToken, map[string]any{"slo_url": "http://127.0.0.1:9/confluence/slo"}, http.StatusOK, nil)
	ph := e.enroll(employee)
	b := newBrowser(t)

	// Sign in to Jira (signed AuthnRequest, verified), then Confluence from the session.
	_, u := requestID(t, jiraSP)
	p := b.get(u)
	if p.Status != http.StatusOK || !strings.Contains(p.URL, "/login/") {
		t.Fatalf("signed AuthnRequest: %d\n%s", p.Status, p.Body)
	}
	waiting := b.identify(p, employee)
	resp, _ := samlForm(t, approve(t, b, waiting, ph), acsURL)
	info, err := jiraSP.RetrieveAssertionInfo(resp)
	if err != nil {
		t.Fatal(err)
	}
	_, cu := requestID(t, e.sp(conf))
	samlForm(t, b.get(cu), conf.ACSURL)

	t.Run("unsigned LogoutRequest is refused", func(t *testing.T) {
		unsigned := e.sp(jira)
		unsigned.IdentityProviderSLOURL = jiraSP.IdentityProviderSLOURL
		doc, err := unsigned.BuildLogoutRequestDocumentNoSig(info.NameID, info.SessionIndex)
		if err != nil {
			t.Fatal(err)
		}
		xml, err := doc.WriteToBytes()
		if err != nil {
			t.Fatal(err)
		}
		if p := newBrowser(t).get(unsignedRedirect(jiraSP.IdentityProviderSLOURL, xml)); p.Status != http.StatusBadRequest || !strings.Contains(strings.ToLower(p.Body), "signed") {
			t.Errorf("unsigned logout: %d\n%s", p.Status, p.Body)
		}
	})

	doc, err := jiraSP.BuildLogoutRequestDocument(info.NameID, info.SessionIndex)
	if err != nil {
		t.Fatal(err)
	}
	logoutID := doc.Root().SelectAttrValue("ID", "")
	lu, err := jiraSP.BuildLogoutURLRedirect("relay-123", doc)
	if err != nil {
		t.Fatal(err)
	}
	out := b.get(lu)
	if out.Status != http.StatusOK {
		t.Fatalf("logout: %d\n%s", out.Status, out.Body)
	}
	if _, ok := out.testID("logout"); !ok {
		t.Fatalf("no logout page:\n%s", out.Body)
	}
	if csp := out.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "; frame-src http://127.0.0.1:9;") {
		t.Errorf("the logout page's CSP does not allow exactly the frames' origin: %s", csp)
	}

	t.Run("the other app gets a signed LogoutRequest", func(t *testing.T) {
		frame := out.find(func(n *htmlNode) bool { return n.Data == "iframe" })
		if frame == nil {
			t.Fatal("no front-channel frame for Confluence")
		}
		src := attr(frame, "src")
		if !strings.HasPrefix(src, "http://127.0.0.1:9/confluence/slo?SAMLRequest=") {
			t.Fatalf("frame src %s", src)
		}
		su, _ := url.Parse(src)
		m, err := saml.DecodeRedirect(su.RawQuery, "SAMLRequest")
		if err != nil {
			t.Fatal(err)
		}
		if err := saml.VerifyRedirectSignature(m, []*x509.Certificate{e.key.Certificate}, false); err != nil {
			t.Errorf("front-channel LogoutRequest signature: %v", err)
		}
		samltest.SchemaValid(t, samltest.ProtocolXSD, m.XML)
		req := httptestRequest(t, src)
		csp := e.crewjamSP(conf)
		csp.SloURL = *mustURL(t, "http://127.0.0.1:9/confluence/slo")
		if _, err := csp.ValidateLogoutRequest(req); err != nil {
			t.Errorf("crewjam refused the LogoutRequest: %v", crewjamDetail(err))
		}
	})

	t.Run("the asking SP gets a signed LogoutResponse", func(t *testing.T) {
		back := attr(out.find(func(n *htmlNode) bool { return attr(n, "id") == "continue" }), "href")
		bu, err := url.Parse(back)
		if err != nil || !strings.HasPrefix(back, "http://127.0.0.1:9/jira/slo?SAMLResponse=") {
			t.Fatalf("continue link %q", back)
		}
		if bu.Query().Get("RelayState") != "relay-123" {
			t.Errorf("RelayState not echoed: %s", back)
		}
		m, err := saml.DecodeRedirect(bu.RawQuery, "SAMLResponse")
		if err != nil {
			t.Fatal(err)
		}
		if err := saml.VerifyRedirectSignature(m, []*x509.Certificate{e.key.Certificate}, false); err != nil {
			t.Errorf("LogoutResponse signature: %v", err)
		}
		samltest.SchemaValid(t, samltest.ProtocolXSD, m.XML)
		sp := e.crewjamSP(jira)
		sp.SloURL = *mustURL(t, "http://127.0.0.1:9/jira/slo")
		if _, err := sp.ParseLogoutResponse(httptestRequest(t, back), []string{logoutID}); err != nil {
			t.Errorf("crewjam refused the LogoutResponse: %v", crewjamDetail(err))
		}
	})

	t.Run("the whole IdP session is over", func(t *testing.T) {
		_, u := requestID(t, e.sp(conf))
		if p := b.get(u); !strings.Contains(p.URL, "/login/") {
			t.Errorf("after logout the browser was still signed in: %d %s", p.Status, p.URL)
		}
	})

	t.Run("replayed LogoutRequest is refused", func(t *testing.T) {
		if p := newBrowser(t).get(lu); p.Status != http.StatusConflict {
			t.Errorf("replay: %d", p.Status)
		}
	})
}

// TestSPMetadataImport: an admin hands Passport the SP's metadata and gets the app filled in; requests may
// then name any of its ACS endpoints by index.
func TestSPMetadataImport(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var a appView
	e.do("POST", "/api/v1/admin/apps", adminToken, map[string]any{"name": "Shibboleth app"}, http.StatusCreated, &a)
	md, err := os.ReadFile("../saml/testdata/sp-metadata/shibboleth.xml")
	if err != nil {
		t.Fatal(err)
	}
	st, code, body := e.call("PUT", "/api/v1/admin/apps/"+a.ID+"/metadata", adminToken, "application/samlmetadata+xml", string(md))
	if st != http.StatusOK {
		t.Fatalf("import: %d %s %s", st, code, body)
	}
	var got struct {
		Audience       string   `json:"audience"`
		ACSURL         string   `json:"acs_url"`
		SPCertificates []string `json:"sp_certificates"`
		SLOURL         string   `json:"slo_url"`
		ACSURLs        []struct {
			URL   string `json:"url"`
			Index int    `json:"index"`
		} `json:"acs_urls"`
		EncryptionCertificate string `json:"encryption_certificate"`
	}
	e.do("GET", "/api/v1/admin/apps/"+a.ID, adminToken, nil, http.StatusOK, &got)
	if got.Audience == "" || got.ACSURL == "" || len(got.SPCertificates) == 0 || got.EncryptionCertificate == "" || len(got.ACSURLs) < 1 || got.SLOURL == "" {
		t.Errorf("imported app: audience %q acs %q %d certs, encryption cert %v, acs_urls %v, slo %q",
			got.Audience, got.ACSURL, len(got.SPCertificates), got.EncryptionCertificate != "", got.ACSURLs, got.SLOURL)
	}
	for _, bad := range []struct{ ctype, body string }{
		{"application/json", string(md)},
		{"text/xml", "<not-metadata/>"},
		{"text/xml", "<<<"},
	} {
		if st, _, _ := e.call("PUT", "/api/v1/admin/apps/"+a.ID+"/metadata", adminToken, bad.ctype, bad.body); st < 400 || st >= 500 {
			t.Errorf("bad metadata %q accepted: %d", bad.body[:min(20, len(bad.body))], st)
		}
	}
	var after struct{ Audience string }
	e.do("GET", "/api/v1/admin/apps/"+a.ID, adminToken, nil, http.StatusOK, &after)
	if after.Audience != got.Audience {
		t.Error("a refused import changed the app")
	}
}

// TestACSIndexAndEncryption: AssertionConsumerServiceIndex picks the registered endpoint, and an app that asks
// for encrypted assertions gets them, which gosaml2 decrypts with the SP key.
func TestACSIndexAndEncryption(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.newApp("Jira", atlassianAudience, acsURL)
	encKS := dsig.RandomKeyStoreForTest()
	_, encDER, _ := encKS.GetKeyPair()
	second := "http://127.0.0.1:9/acs-two"
	e.do("PATCH", "/api/v1/admin/apps/"+app.ID, adminToken, map[string]any{
		"acs_urls":               []map[string]any{{"url": acsURL, "index": 0}, {"url": second, "index": 7}},
		"encryption_certificate": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: encDER})),
		"encrypt_assertions":     true,
	}, http.StatusOK, nil)
	ph := e.enroll(employee)
	sp := e.sp(app)
	sp.SPKeyStore = encKS
	doc, err := sp.BuildAuthRequestDocument()
	if err != nil {
		t.Fatal(err)
	}
	doc.Root().RemoveAttr("AssertionConsumerServiceURL")
	doc.Root().CreateAttr("AssertionConsumerServiceIndex", "7")
	u, err := sp.BuildAuthURLFromDocument("", doc)
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t)
	p := b.get(u)
	resp, _ := samlForm(t, approve(t, b, b.identify(p, employee), ph), second)
	raw, _ := base64.StdEncoding.DecodeString(resp)
	if !strings.Contains(string(raw), "EncryptedAssertion") || strings.Contains(string(raw), employee) {
		t.Fatal("the assertion is not encrypted")
	}
	samltest.XMLSecVerify(t, raw, e.key.Certificate)
	samltest.SchemaValid(t, samltest.ProtocolXSD, raw)
	sp.AssertionConsumerServiceURL = second
	info, err := sp.RetrieveAssertionInfo(resp)
	if err != nil {
		t.Fatalf("gosaml2 with the SP key: %v", err)
	}
	if info.NameID != employee {
		t.Errorf("NameID %q", info.NameID)
	}
	// crewjam's SP, holding the same key, decrypts and accepts it too.
	encKey, _, _ := encKS.GetKeyPair()
	encCert, _ := x509.ParseCertificate(encDER)
	csp := e.crewjamSP(app)
	csp.Key, csp.Certificate, csp.AcsURL = encKey, encCert, *mustURL(t, second)
	if a, err := csp.ParseXMLResponse(raw, []string{doc.Root().SelectAttrValue("ID", "")}, *mustURL(t, second)); err != nil {
		t.Errorf("crewjam with the SP key: %v", crewjamDetail(err))
	} else if a.Subject.NameID.Value != employee {
		t.Errorf("crewjam NameID %q", a.Subject.NameID.Value)
	}

	doc2, _ := e.sp(app).BuildAuthRequestDocument()
	doc2.Root().RemoveAttr("AssertionConsumerServiceURL")
	doc2.Root().CreateAttr("AssertionConsumerServiceIndex", "3")
	u2, _ := e.sp(app).BuildAuthURLFromDocument("", doc2)
	if p := newBrowser(t).get(u2); p.Status != http.StatusBadRequest || strings.Contains(p.Body, "SAMLResponse") {
		t.Errorf("unknown ACS index: %d", p.Status)
	}
}

// unsignedRedirect encodes xml as an HTTP-Redirect SAMLRequest without a signature.
func unsignedRedirect(dest string, xml []byte) string {
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, flate.DefaultCompression)
	w.Write(xml)
	w.Close()
	return dest + "?" + url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString(buf.Bytes())}}.Encode()
}

func crewjamDetail(err error) error {
	var ie *crewjam.InvalidResponseError
	if asInvalid(err, &ie) {
		return ie.PrivateErr
	}
	return err
}

// TestSignedRequests: a signature on a request is verified whenever the app has SP certificates, a bad one is
// refused, and an app that requires signed requests refuses unsigned ones.
func TestSignedRequests(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := e.newApp("Jira", atlassianAudience, acsURL)
	signed, _ := e.signingSP(app, "http://127.0.0.1:9/jira/slo")
	e.enroll(employee)

	_, u := requestID(t, signed)
	if p := newBrowser(t).get(u); p.Status != http.StatusOK || !strings.Contains(p.URL, "/login/") {
		t.Fatalf("signed request: %d\n%s", p.Status, p.Body)
	}
	// The same request with its signature from another key.
	other := e.sp(app)
	other.SPKeyStore = dsig.RandomKeyStoreForTest()
	other.SPSigningKeyStore = other.SPKeyStore
	other.SignAuthnRequests = true
	_, u = requestID(t, other)
	if p := newBrowser(t).get(u); p.Status != http.StatusBadRequest || strings.Contains(p.URL, "/login/") {
		t.Errorf("request signed by another key: %d", p.Status)
	}
	// Unsigned is fine until the app requires signatures.
	_, u = requestID(t, e.sp(app))
	if p := newBrowser(t).get(u); p.Status != http.StatusOK {
		t.Errorf("unsigned request, signatures optional: %d", p.Status)
	}
	wantSigned := func(want string) {
		t.Helper()
		md := fetch(t, app.MetadataURL)
		if !strings.Contains(string(md), `WantAuthnRequestsSigned="`+want+`"`) {
			t.Errorf("metadata does not say WantAuthnRequestsSigned=%q:\n%s", want, md)
		}
		samltest.SchemaValid(t, samltest.MetadataXSD, md)
	}
	wantSigned("false")
	e.do("PATCH", "/api/v1/admin/apps/"+app.ID, adminToken, map[string]any{"require_signed_requests": true}, http.StatusOK, nil)
	_, u = requestID(t, e.sp(app))
	if p := newBrowser(t).get(u); p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "must be signed") {
		t.Errorf("unsigned request, signatures required: %d\n%s", p.Status, p.Body)
	}
	wantSigned("true") // the metadata tells SPs what the app requires
}

// TestSingleLogoutAcrossSessions: a LogoutRequest naming two sessions signs out of every app of both, and
// says PartialLogout when an app of theirs has no SLO endpoint to be told.
func TestSingleLogoutAcrossSessions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	jira := e.newApp("Jira", atlassianAudience, acsURL)
	conf := e.newApp("Confluence", "https://sp.example.test/confluence", "http://127.0.0.1:9/confluence/acs")
	wiki := e.newApp("Wiki", "https://sp.example.test/wiki", "http://127.0.0.1:9/wiki/acs")
	bb := e.newApp("Bitbucket", "https://sp.example.test/bitbucket", "http://127.0.0.1:9/bitbucket/acs") // no slo_url
	jiraSP, _ := e.signingSP(jira, "http://127.0.0.1:9/jira/slo")
	e.do("PATCH", "/api/v1/admin/apps/"+conf.ID, adminToken, map[string]any{"slo_url": "http://127.0.0.1:9/confluence/slo"}, http.StatusOK, nil)
	e.do("PATCH", "/api/v1/admin/apps/"+wiki.ID, adminToken, map[string]any{"slo_url": "http://127.0.0.1:9/wiki/slo"}, http.StatusOK, nil)
	ph := e.enroll(employee)

	// Two browsers, two sessions: Jira and Confluence in the first, Jira, Wiki and Bitbucket in the second.
	var indexes []string
	var nameID string
	for _, others := range [][]appView{{conf}, {wiki, bb}} {
		b := newBrowser(t)
		_, u := requestID(t, jiraSP)
		resp, _ := samlForm(t, approve(t, b, b.identify(b.get(u), employee), ph), acsURL)
		info, err := jiraSP.RetrieveAssertionInfo(resp)
		if err != nil {
			t.Fatal(err)
		}
		indexes, nameID = append(indexes, info.SessionIndex), info.NameID
		for _, o := range others {
			_, ou := requestID(t, e.sp(o))
			samlForm(t, b.get(ou), o.ACSURL)
		}
	}

	doc, err := jiraSP.BuildLogoutRequestDocument(nameID, indexes[0])
	if err != nil {
		t.Fatal(err)
	}
	second := doc.Root().CreateElement("samlp:SessionIndex")
	second.CreateAttr("xmlns:samlp", "urn:oasis:names:tc:SAML:2.0:protocol")
	second.SetText(indexes[1])
	lu, err := jiraSP.BuildLogoutURLRedirect("", doc)
	if err != nil {
		t.Fatal(err)
	}
	out := newBrowser(t).get(lu)
	if out.Status != http.StatusOK {
		t.Fatalf("logout: %d\n%s", out.Status, out.Body)
	}
	var framed []string
	for _, prefix := range []string{"http://127.0.0.1:9/confluence/slo?", "http://127.0.0.1:9/wiki/slo?"} {
		if strings.Contains(out.Body, `src="`+prefix) {
			framed = append(framed, prefix)
		}
	}
	if len(framed) != 2 {
		t.Errorf("front-channel LogoutRequests went to %v, want Confluence and Wiki (one from each session)", framed)
	}
	back := attr(out.find(func(n *htmlNode) bool { return attr(n, "id") == "continue" }), "href")
	bu, err := url.Parse(back)
	if err != nil {
		t.Fatal(err)
	}
	m, err := saml.DecodeRedirect(bu.RawQuery, "SAMLResponse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(m.XML), saml.StatusPartialLogout) {
		t.Errorf("Bitbucket could not be told, yet the LogoutResponse is not PartialLogout:\n%s", m.XML)
	}
	samltest.SchemaValid(t, samltest.ProtocolXSD, m.XML)
	for _, idx := range indexes {
		id, _ := authn.SessionIDFromIndex(idx)
		if _, err := e.svc.Sessions.Get(context.Background(), id); !errors.Is(err, authn.ErrNotFound) {
			t.Errorf("session %s survived the logout: %v", id, err)
		}
	}
}
