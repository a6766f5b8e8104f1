package saml

import (
	"strings"
	"testing"
)

const (
	classPPT      = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
	classTwoFA    = "urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorUnregistered"
	classKerberos = "urn:oasis:names:tc:SAML:2.0:ac:classes:Kerberos"
)

func TestAuthnRequestSubjectAndContext(t *testing.T) {
	t.Parallel()
	subject := `<saml:Subject><saml:NameID Format="` + NameIDFormatEmailAddress + `"> ada@example.com </saml:NameID>` +
		`<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"/></saml:Subject>`
	context := `<samlp:RequestedAuthnContext Comparison="minimum"><saml:AuthnContextClassRef>` + classPPT +
		`</saml:AuthnContextClassRef><saml:AuthnContextClassRef>` + classTwoFA + `</saml:AuthnContextClassRef></samlp:RequestedAuthnContext>`
	doc := replace(authnRequestXML, "<samlp:NameIDPolicy", subject+"<samlp:NameIDPolicy")
	doc = replace(doc, "</samlp:AuthnRequest>", context+"</samlp:AuthnRequest>")
	r, err := ParseAuthnRequest([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if r.Subject == nil || *r.Subject != (NameID{Value: "ada@example.com", Format: NameIDFormatEmailAddress}) {
		t.Errorf("Subject %+v", r.Subject)
	}
	if rc := r.RequestedAuthnContext; rc == nil || rc.Comparison != "minimum" || len(rc.ClassRefs) != 2 || rc.ClassRefs[0] != classPPT {
		t.Errorf("RequestedAuthnContext %+v", rc)
	}
	if plain, err := ParseAuthnRequest([]byte(authnRequestXML)); err != nil || plain.Subject != nil || plain.RequestedAuthnContext != nil {
		t.Errorf("a request without them: %+v, %v", plain, err)
	}
	t.Run("default comparison is exact", func(t *testing.T) {
		t.Parallel()
		r, err := ParseAuthnRequest([]byte(replace(doc, ` Comparison="minimum"`, "")))
		if err != nil || r.RequestedAuthnContext.Comparison != "exact" {
			t.Fatalf("%+v, %v", r, err)
		}
	})
	t.Run("a subject with only a confirmation names nobody", func(t *testing.T) {
		t.Parallel()
		only := replace(authnRequestXML, "<samlp:NameIDPolicy", `<saml:Subject><saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"/></saml:Subject><samlp:NameIDPolicy`)
		if r, err := ParseAuthnRequest([]byte(only)); err != nil || r.Subject != nil {
			t.Fatalf("%+v, %v", r, err)
		}
	})
	refused := []struct{ name, doc string }{
		{"encrypted subject", replace(authnRequestXML, "<samlp:NameIDPolicy", `<saml:Subject><saml:EncryptedID/></saml:Subject><samlp:NameIDPolicy`)},
		{"base id subject", replace(authnRequestXML, "<samlp:NameIDPolicy", `<saml:Subject><saml:BaseID/></saml:Subject><samlp:NameIDPolicy`)},
		{"two name ids", replace(authnRequestXML, "<samlp:NameIDPolicy", `<saml:Subject><saml:NameID>a</saml:NameID><saml:NameID>b</saml:NameID></saml:Subject><samlp:NameIDPolicy`)},
		{"name id too long", replace(authnRequestXML, "<samlp:NameIDPolicy", `<saml:Subject><saml:NameID>`+strings.Repeat("a", maxNameIDLength+1)+`</saml:NameID></saml:Subject><samlp:NameIDPolicy`)},
		{"empty name id", replace(authnRequestXML, "<samlp:NameIDPolicy", `<saml:Subject><saml:NameID/></saml:Subject><samlp:NameIDPolicy`)},
		{"comment in name id", replace(authnRequestXML, "<samlp:NameIDPolicy", `<saml:Subject><saml:NameID>ada<!---->@example.com</saml:NameID></saml:Subject><samlp:NameIDPolicy`)},
		{"unknown comparison", replace(doc, `Comparison="minimum"`, `Comparison="atleast"`)},
		{"empty context", replace(authnRequestXML, "</samlp:AuthnRequest>", `<samlp:RequestedAuthnContext/></samlp:AuthnRequest>`)},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := ParseAuthnRequest([]byte(tt.doc))
			if r != nil {
				t.Fatalf("got %+v", r)
			}
			wantCode(t, err, CodeMalformedRequest)
		})
	}
}

func TestChooseAuthnContext(t *testing.T) {
	t.Parallel()
	ours := AuthnContextMobileOneFactorUnregistered
	tests := []struct {
		name    string
		rc      *RequestedAuthnContext
		want    string
		wantErr bool
	}{
		{"none", nil, ours, false},
		{"exact ours", &RequestedAuthnContext{Comparison: "exact", ClassRefs: []string{classPPT, ours}}, ours, false},
		{"exact other", &RequestedAuthnContext{Comparison: "exact", ClassRefs: []string{classPPT}}, "", true},
		{"exact unspecified", &RequestedAuthnContext{Comparison: "exact", ClassRefs: []string{AuthnContextUnspecified}}, AuthnContextUnspecified, false},
		{"minimum password", &RequestedAuthnContext{Comparison: "minimum", ClassRefs: []string{classPPT}}, ours, false},
		{"minimum two factors", &RequestedAuthnContext{Comparison: "minimum", ClassRefs: []string{classTwoFA}}, "", true},
		{"minimum incomparable", &RequestedAuthnContext{Comparison: "minimum", ClassRefs: []string{classKerberos}}, "", true},
		{"better than passwords", &RequestedAuthnContext{Comparison: "better", ClassRefs: []string{classPPT, "urn:oasis:names:tc:SAML:2.0:ac:classes:Password"}}, ours, false},
		{"better than ours", &RequestedAuthnContext{Comparison: "better", ClassRefs: []string{ours}}, "", true},
		{"maximum two factors", &RequestedAuthnContext{Comparison: "maximum", ClassRefs: []string{classTwoFA}}, ours, false},
		{"maximum password", &RequestedAuthnContext{Comparison: "maximum", ClassRefs: []string{classPPT}}, "", true},
		{"declaration", &RequestedAuthnContext{Comparison: "exact", ClassRefs: []string{ours}, DeclRefs: []string{"urn:x"}}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := tt.rc.Choose(ours)
			if ok == tt.wantErr || got != tt.want {
				t.Fatalf("Choose = %q, %v; want %q, %v", got, ok, tt.want, !tt.wantErr)
			}
		})
	}
}
