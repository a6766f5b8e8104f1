package saml

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"net/url"
	"strconv"
	"strings"
	"testing"

	crewjam "github.com/crewjam/saml"
	saml2 "github.com/russellhaering/gosaml2"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/winkk/passport/saml/samltest"
)

const (
	atlassianEntityID = "https://auth.atlassian.com/saml/8f3a1c52-6b0e-4d2f-9a71-3c5e0b9d4f26"
	atlassianACS      = "https://auth.atlassian.com/login/callback?connection=saml-8f3a1c52-6b0e-4d2f-9a71-3c5e0b9d4f26"
	shibEntityID      = "https://wiki.example.org/shibboleth"
	shibBase          = "https://wiki.example.org/Shibboleth.sso"
	bindingArtifact   = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact"
)

// spMetadataXML is minimal SP metadata holding the given AssertionConsumerService
// elements (with the md prefix) and extra SPSSODescriptor content.
func spMetadataXML(acs ...string) string {
	return `<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://sp.example.com">` +
		`<md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">` +
		strings.Join(acs, "") + `</md:SPSSODescriptor></md:EntityDescriptor>`
}

func acsXML(binding, location string, index int, isDefault string) string {
	s := `<md:AssertionConsumerService Binding="` + binding + `" Location="` + location + `" index="` + strconv.Itoa(index) + `"`
	if isDefault != "" {
		s += ` isDefault="` + isDefault + `"`
	}
	return s + `/>`
}

func mustParseSPMetadata(tb testing.TB, b []byte) *SPMetadata {
	tb.Helper()
	m, err := ParseSPMetadata(b)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// certsEqual reports whether got holds exactly want, in order.
func certsEqual(got []*x509.Certificate, want ...*x509.Certificate) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if !got[i].Equal(want[i]) {
			return false
		}
	}
	return true
}

func TestParseSPMetadata(t *testing.T) {
	t.Parallel()
	spCert, encCert := mustCert(t, "sp-cert.pem"), mustCert(t, "sp-enc-cert.pem")
	t.Run("atlassian", func(t *testing.T) {
		t.Parallel()
		b := mustReadFile(t, "sp-metadata/atlassian.xml")
		samltest.SchemaValid(t, samltest.MetadataXSD, b)
		m := mustParseSPMetadata(t, b)
		if m.EntityID != atlassianEntityID || m.AuthnRequestsSigned || !m.WantAssertionsSigned {
			t.Fatalf("got %+v", m)
		}
		want := Endpoint{Binding: BindingPOST, Location: atlassianACS, Index: 0, IsDefault: true}
		if len(m.ACS) != 1 || m.ACS[0] != want || len(m.SLO) != 0 {
			t.Fatalf("ACS %+v SLO %+v", m.ACS, m.SLO)
		}
		if !certsEqual(m.SigningCertificates, spCert) || len(m.EncryptionCertificates) != 0 {
			t.Fatal("certificates wrong")
		}
		if strings.Join(m.NameIDFormats, ",") != NameIDFormatEmailAddress {
			t.Fatalf("name id formats %q", m.NameIDFormats)
		}
		if d, ok := m.DefaultACS(); !ok || d != want {
			t.Fatalf("default ACS %+v %v", d, ok)
		}
	})
	t.Run("atlassian with a byte order mark", func(t *testing.T) {
		t.Parallel()
		b := append([]byte("\xEF\xBB\xBF"), mustReadFile(t, "sp-metadata/atlassian.xml")...)
		if m := mustParseSPMetadata(t, b); m.EntityID != atlassianEntityID {
			t.Fatalf("entity ID %q", m.EntityID)
		}
	})
	t.Run("shibboleth", func(t *testing.T) {
		t.Parallel()
		b := mustReadFile(t, "sp-metadata/shibboleth.xml")
		samltest.SchemaValid(t, samltest.MetadataXSD, b)
		m := mustParseSPMetadata(t, b)
		if m.EntityID != shibEntityID || m.AuthnRequestsSigned || m.WantAssertionsSigned {
			t.Fatalf("got %+v", m)
		}
		wantACS := []Endpoint{
			{Binding: BindingPOST, Location: shibBase + "/SAML2/POST", Index: 1},
			{Binding: "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST-SimpleSign", Location: shibBase + "/SAML2/POST-SimpleSign", Index: 2},
			{Binding: bindingArtifact, Location: shibBase + "/SAML2/Artifact", Index: 3},
			{Binding: "urn:oasis:names:tc:SAML:2.0:bindings:PAOS", Location: shibBase + "/SAML2/ECP", Index: 4},
			{Binding: "urn:oasis:names:tc:SAML:1.0:profiles:browser-post", Location: shibBase + "/SAML/POST", Index: 5},
			{Binding: "urn:oasis:names:tc:SAML:1.0:profiles:artifact-01", Location: shibBase + "/SAML/Artifact", Index: 6},
		}
		if len(m.ACS) != len(wantACS) {
			t.Fatalf("ACS %+v", m.ACS)
		}
		for i := range wantACS {
			if m.ACS[i] != wantACS[i] {
				t.Fatalf("ACS %d = %+v, want %+v", i, m.ACS[i], wantACS[i])
			}
		}
		wantSLO := []Endpoint{
			{Binding: "urn:oasis:names:tc:SAML:2.0:bindings:SOAP", Location: shibBase + "/SLO/SOAP"},
			{Binding: BindingRedirect, Location: shibBase + "/SLO/Redirect"},
			{Binding: BindingPOST, Location: shibBase + "/SLO/POST", ResponseLocation: shibBase + "/SLO/POST/Response"},
			{Binding: bindingArtifact, Location: shibBase + "/SLO/Artifact"},
		}
		if len(m.SLO) != len(wantSLO) {
			t.Fatalf("SLO %+v", m.SLO)
		}
		for i := range wantSLO {
			if m.SLO[i] != wantSLO[i] {
				t.Fatalf("SLO %d = %+v, want %+v", i, m.SLO[i], wantSLO[i])
			}
		}
		if !certsEqual(m.SigningCertificates, spCert) || !certsEqual(m.EncryptionCertificates, encCert) {
			t.Fatal("certificates wrong")
		}
		if strings.Join(m.NameIDFormats, ",") != NameIDFormatTransient+","+NameIDFormatPersistent {
			t.Fatalf("name id formats %q", m.NameIDFormats)
		}
		if d, ok := m.DefaultACS(); !ok || d != wantACS[0] {
			t.Fatalf("default ACS %+v %v", d, ok)
		}
	})
	t.Run("crewjam", func(t *testing.T) {
		t.Parallel()
		acs, _ := url.Parse("https://app.example.com/saml/acs")
		slo, _ := url.Parse("https://app.example.com/saml/slo")
		mdURL, _ := url.Parse("https://app.example.com/saml/metadata")
		sp := crewjam.ServiceProvider{
			EntityID:              "https://app.example.com/saml/metadata",
			Key:                   mustKey(t, "sp-key.pem"),
			Certificate:           spCert,
			EncryptionCertificate: encCert,
			SignatureMethod:       dsig.RSASHA256SignatureMethod,
			LogoutBindings:        []string{crewjam.HTTPRedirectBinding, crewjam.HTTPPostBinding},
			AcsURL:                *acs, SloURL: *slo, MetadataURL: *mdURL,
			Clock: dsig.NewFakeClockAt(testNow),
		}
		b, err := xml.MarshalIndent(sp.Metadata(), "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		m := mustParseSPMetadata(t, b)
		if m.EntityID != sp.EntityID || !m.WantAssertionsSigned || !m.AuthnRequestsSigned {
			t.Fatalf("got %+v from\n%s", m, b)
		}
		if !certsEqual(m.SigningCertificates, spCert) || !certsEqual(m.EncryptionCertificates, encCert) {
			t.Fatalf("certificates: %d signing, %d encryption", len(m.SigningCertificates), len(m.EncryptionCertificates))
		}
		d, ok := m.DefaultACS()
		if !ok || d.Location != acs.String() || d.Binding != BindingPOST {
			t.Fatalf("default ACS %+v %v from\n%s", d, ok, b)
		}
		wantSLO := Endpoint{Binding: BindingRedirect, Location: slo.String(), ResponseLocation: slo.String()}
		if len(m.SLO) != 2 || m.SLO[0] != wantSLO || m.SLO[1].Binding != BindingPOST {
			t.Fatalf("SLO %+v", m.SLO)
		}
		if len(m.ACS) != 2 || m.ACS[1].Binding != bindingArtifact {
			t.Fatalf("ACS %+v", m.ACS)
		}
	})
	t.Run("gosaml2", func(t *testing.T) {
		t.Parallel()
		key := mustKey(t, "sp-enc-key.pem")
		sp := &saml2.SAMLServiceProvider{
			ServiceProviderIssuer:       "https://go.example.com/saml",
			AssertionConsumerServiceURL: "https://go.example.com/saml/acs",
			SignAuthnRequests:           true,
			SPKeyStore:                  dsig.TLSCertKeyStore(tls.Certificate{Certificate: [][]byte{encCert.Raw}, PrivateKey: key}),
			Clock:                       dsig.NewFakeClockAt(testNow),
		}
		ed, err := sp.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		b, err := xml.MarshalIndent(ed, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		m := mustParseSPMetadata(t, b)
		if m.EntityID != sp.ServiceProviderIssuer || !m.AuthnRequestsSigned || !m.WantAssertionsSigned {
			t.Fatalf("got %+v from\n%s", m, b)
		}
		if !certsEqual(m.SigningCertificates, encCert) || !certsEqual(m.EncryptionCertificates, encCert) {
			t.Fatal("certificates wrong")
		}
		want := Endpoint{Binding: BindingPOST, Location: sp.AssertionConsumerServiceURL, Index: 1}
		if d, ok := m.DefaultACS(); !ok || d != want {
			t.Fatalf("default ACS %+v %v from\n%s", d, ok, b)
		}
	})
	t.Run("federation aggregate with one SP", func(t *testing.T) {
		t.Parallel()
		idpMD, err := mustIdP(t).Metadata(testSSOURL, testSLOURL, false)
		if err != nil {
			t.Fatal(err)
		}
		agg := `<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" Name="urn:example:federation">` +
			stripDecl(idpMD) + `<md:EntitiesDescriptor>` + stripDecl(mustReadFile(t, "sp-metadata/atlassian.xml")) +
			`</md:EntitiesDescriptor></md:EntitiesDescriptor>`
		samltest.SchemaValid(t, samltest.MetadataXSD, []byte(agg))
		if m := mustParseSPMetadata(t, []byte(agg)); m.EntityID != atlassianEntityID {
			t.Fatalf("entity %q", m.EntityID)
		}
	})
	t.Run("SAML 1.1 descriptor beside a SAML 2.0 one", func(t *testing.T) {
		t.Parallel()
		doc := replace(spMetadataXML(acsXML(BindingPOST, "https://sp.example.com/acs", 1, "")), `<md:SPSSODescriptor`,
			`<md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:1.1:protocol"><md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:1.0:profiles:browser-post" Location="https://sp.example.com/saml1" index="1"/></md:SPSSODescriptor><md:SPSSODescriptor`)
		m := mustParseSPMetadata(t, []byte(doc))
		if len(m.ACS) != 1 || m.ACS[0].Location != "https://sp.example.com/acs" {
			t.Fatalf("ACS %+v", m.ACS)
		}
	})
	t.Run("key descriptor without use", func(t *testing.T) {
		t.Parallel()
		kd := `<md:KeyDescriptor><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>` +
			base64.StdEncoding.EncodeToString(spCert.Raw) + `</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>`
		m := mustParseSPMetadata(t, []byte(spMetadataXML(kd, acsXML(BindingPOST, "https://sp.example.com/acs", 1, ""))))
		if !certsEqual(m.SigningCertificates, spCert) || !certsEqual(m.EncryptionCertificates, spCert) {
			t.Fatal("a KeyDescriptor without use must count for signing and encryption")
		}
	})
}

func stripDecl(b []byte) string {
	if i := bytes.Index(b, []byte("?>")); bytes.HasPrefix(b, []byte("<?xml")) && i > 0 {
		b = b[i+2:]
	}
	return string(b)
}

// refusal is a document a parser must refuse, and the code it must refuse it with. The tables of them are
// seeds of the fuzz targets too.
type refusal struct{ name, doc, code string }

func spMetadataRefusals(tb testing.TB) []refusal {
	tb.Helper()
	post := acsXML(BindingPOST, "https://sp.example.com/acs", 1, "")
	sp := spMetadataXML(post)
	idpMD, err := mustIdP(tb).Metadata(testSSOURL, testSLOURL, false)
	if err != nil {
		tb.Fatal(err)
	}
	atlassian := stripDecl(mustReadFile(tb, "sp-metadata/atlassian.xml"))
	aggregate := func(entities ...string) string {
		return `<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata">` + strings.Join(entities, "") + `</md:EntitiesDescriptor>`
	}
	return []refusal{
		{"too large", sp + strings.Repeat(" ", MaxMetadataSize), CodeTooLarge},
		{"not xml", `<md:EntityDescriptor`, CodeMalformedXML},
		{"doctype", `<!DOCTYPE md:EntityDescriptor [<!ENTITY e "x">]>` + sp, CodeMalformedXML},
		{"authn request", authnRequestXML, CodeMalformedMetadata},
		{"metadata namespace, other root", `<md:SPSSODescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"/>`, CodeMalformedMetadata},
		{"idp metadata", string(idpMD), CodeNoSPDescriptor},
		{"saml 1.1 sp only", replace(sp, NamespaceProtocol, "urn:oasis:names:tc:SAML:1.1:protocol"), CodeNoSPDescriptor},
		{"sp descriptor in another namespace", replace(sp, `<md:SPSSODescriptor `, `<md:SPSSODescriptor xmlns:md="urn:evil" `), CodeNoSPDescriptor},
		{"empty aggregate", aggregate(), CodeNoSPDescriptor},
		{"aggregate of an idp", aggregate(stripDecl(idpMD)), CodeNoSPDescriptor},
		{"aggregate of two sps", aggregate(atlassian, sp), CodeSeveralSPs},
		{"nested aggregate of two sps", aggregate(atlassian, aggregate(sp)), CodeSeveralSPs},
		{"two saml 2.0 descriptors in one entity", replace(sp, `</md:EntityDescriptor>`, `<md:SPSSODescriptor protocolSupportEnumeration="`+NamespaceProtocol+`">`+post+`</md:SPSSODescriptor></md:EntityDescriptor>`), CodeSeveralSPs},
		{"no entity id", replace(sp, ` entityID="https://sp.example.com"`, ""), CodeMalformedMetadata},
		{"blank entity id", replace(sp, `entityID="https://sp.example.com"`, `entityID="  "`), CodeMalformedMetadata},
		{"entity id too long", replace(sp, `entityID="https://sp.example.com"`, `entityID="https://`+strings.Repeat("a", 1020)+`"`), CodeMalformedMetadata},
		{"no acs", spMetadataXML(), CodeMalformedMetadata},
		{"acs without index", spMetadataXML(replace(post, ` index="1"`, "")), CodeMalformedMetadata},
		{"acs with negative index", spMetadataXML(replace(post, ` index="1"`, ` index="-1"`)), CodeMalformedMetadata},
		{"acs with huge index", spMetadataXML(replace(post, ` index="1"`, ` index="65536"`)), CodeMalformedMetadata},
		{"duplicate acs index", spMetadataXML(post, acsXML(BindingPOST, "https://sp.example.com/other", 1, "")), CodeMalformedMetadata},
		{"acs without location", spMetadataXML(replace(post, ` Location="https://sp.example.com/acs"`, "")), CodeMalformedMetadata},
		{"acs without binding", spMetadataXML(replace(post, ` Binding="`+BindingPOST+`"`, "")), CodeMalformedMetadata},
		{"bad isDefault", spMetadataXML(acsXML(BindingPOST, "https://sp.example.com/acs", 1, "yes")), CodeMalformedMetadata},
		{"bad AuthnRequestsSigned", replace(sp, `<md:SPSSODescriptor `, `<md:SPSSODescriptor AuthnRequestsSigned="TRUE" `), CodeMalformedMetadata},
		{"slo without location", spMetadataXML(`<md:SingleLogoutService Binding="`+BindingRedirect+`"/>`, post), CodeMalformedMetadata},
		{"unknown key use", spMetadataXML(`<md:KeyDescriptor use="both"/>`, post), CodeMalformedMetadata},
		{"certificate not base64", spMetadataXML(`<md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>@@@</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>`, post), CodeMalformedMetadata},
		{"certificate not DER", spMetadataXML(`<md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>AAAA</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>`, post), CodeMalformedMetadata},
		{"comment in certificate", spMetadataXML(`<md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>AA<!---->AA</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>`, post), CodeMalformedMetadata},
		{"element in name id format", spMetadataXML(`<md:NameIDFormat><x/></md:NameIDFormat>`, post), CodeMalformedMetadata},
	}
}

func TestParseSPMetadataRefuses(t *testing.T) {
	t.Parallel()
	for _, tt := range spMetadataRefusals(t) {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, err := ParseSPMetadata([]byte(tt.doc))
			if m != nil {
				t.Fatalf("got %+v with an error", m)
			}
			wantCode(t, err, tt.code)
		})
	}
}

func TestDefaultACS(t *testing.T) {
	t.Parallel()
	const a, b, c = "https://sp.example.com/a", "https://sp.example.com/b", "https://sp.example.com/c"
	tests := []struct {
		name    string
		acs     []string
		want    string // "" = none
		wantIdx int
	}{
		{"single POST", []string{acsXML(BindingPOST, a, 0, "")}, a, 0},
		{"isDefault true wins", []string{acsXML(BindingPOST, a, 1, ""), acsXML(BindingPOST, b, 2, "true")}, b, 2},
		{"first isDefault true", []string{acsXML(BindingPOST, a, 1, "true"), acsXML(BindingPOST, b, 2, "true")}, a, 1},
		{"first without isDefault", []string{acsXML(BindingPOST, a, 1, "false"), acsXML(BindingPOST, b, 2, ""), acsXML(BindingPOST, c, 3, "")}, b, 2},
		// Every POST endpoint says isDefault="false": the first in document
		// order, whatever the indexes (saml-metadata §2.2.3).
		{"all isDefault false", []string{acsXML(BindingPOST, a, 5, "false"), acsXML(BindingPOST, b, 2, "false")}, a, 5},
		{"default of another binding ignored", []string{acsXML(bindingArtifact, c, 0, "true"), acsXML(BindingPOST, a, 1, "false"), acsXML(BindingPOST, b, 2, "0")}, a, 1},
		{"isDefault as 1", []string{acsXML(BindingPOST, a, 1, ""), acsXML(BindingPOST, b, 2, "1")}, b, 2},
		{"no POST endpoint", []string{acsXML(bindingArtifact, a, 1, "true"), acsXML("urn:oasis:names:tc:SAML:2.0:bindings:PAOS", b, 2, "")}, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := mustParseSPMetadata(t, []byte(spMetadataXML(tt.acs...)))
			d, ok := m.DefaultACS()
			if tt.want == "" {
				if ok {
					t.Fatalf("got %+v, want none", d)
				}
				return
			}
			if !ok || d.Location != tt.want || d.Index != tt.wantIdx || d.Binding != BindingPOST {
				t.Fatalf("got %+v %v, want %s index %d", d, ok, tt.want, tt.wantIdx)
			}
		})
	}
	t.Run("built by hand", func(t *testing.T) {
		t.Parallel()
		m := &SPMetadata{ACS: []Endpoint{{Binding: bindingArtifact, Location: c}, {Binding: BindingPOST, Location: a, Index: 3}, {Binding: BindingPOST, Location: b, Index: 1}}}
		if d, ok := m.DefaultACS(); !ok || d.Location != a {
			t.Fatalf("got %+v %v", d, ok)
		}
		if _, ok := (&SPMetadata{}).DefaultACS(); ok {
			t.Fatal("empty metadata has a default ACS")
		}
	})
}

// TestSPMetadataDrivesRequestCheck wires parsed metadata into RequestCheck:
// an AuthnRequest may name any of the SP's HTTP-POST ACS URLs.
func TestSPMetadataDrivesRequestCheck(t *testing.T) {
	t.Parallel()
	m := mustParseSPMetadata(t, []byte(spMetadataXML(
		acsXML(BindingPOST, "https://sp.example.com/acs", 1, ""),
		acsXML(BindingPOST, "https://sp.example.com/acs?tenant=2", 2, ""),
		acsXML(bindingArtifact, "https://sp.example.com/artifact", 3, ""),
	)))
	def, _ := m.DefaultACS()
	c := RequestCheck{Audience: m.EntityID, ACSURL: def.Location, SSOURL: testSSOURL}
	for _, e := range m.ACS {
		if e.Binding == BindingPOST {
			c.ACSURLs = append(c.ACSURLs, e.Location)
		}
	}
	idp := mustIdP(t)
	for _, tt := range []struct {
		name, acs, code string
	}{
		{"absent", "", ""},
		{"default", "https://sp.example.com/acs", ""},
		{"second POST", "https://sp.example.com/acs?tenant=2", ""},
		{"artifact endpoint", "https://sp.example.com/artifact", CodeACSMismatch},
		{"unlisted", "https://sp.example.com/acs?tenant=3", CodeACSMismatch},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := &AuthnRequest{ID: "_r", Version: "2.0", IssueInstant: testNow, Issuer: m.EntityID, AssertionConsumerServiceURL: tt.acs}
			err := idp.ValidateAuthnRequest(r, c)
			if tt.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantCode(t, err, tt.code)
		})
	}
}
