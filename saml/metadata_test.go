package saml

import (
	"encoding/base64"
	"encoding/xml"
	"testing"

	crewjam "github.com/crewjam/saml"
)

func TestMetadata(t *testing.T) {
	idp := mustIdP(t)
	md, err := idp.Metadata(testSSOURL, testSLOURL)
	if err != nil {
		t.Fatal(err)
	}
	mustGolden(t, t.Name(), md)
	t.Run("schema", func(t *testing.T) { mustSchemaValid(t, xsdMetadata, md) })
	t.Run("content", func(t *testing.T) {
		var ed crewjam.EntityDescriptor
		if err := xml.Unmarshal(md, &ed); err != nil {
			t.Fatal(err)
		}
		if ed.EntityID != testEntityID || !ed.ValidUntil.IsZero() || len(ed.IDPSSODescriptors) != 1 {
			t.Fatalf("entityID %q validUntil %v", ed.EntityID, ed.ValidUntil)
		}
		d := ed.IDPSSODescriptors[0]
		if d.WantAuthnRequestsSigned == nil || *d.WantAuthnRequestsSigned || d.ProtocolSupportEnumeration != NamespaceProtocol {
			t.Fatal("bad IDPSSODescriptor attributes")
		}
		wantCerts := []string{
			base64.StdEncoding.EncodeToString(idp.Certificate.Raw),
			base64.StdEncoding.EncodeToString(idp.ExtraCertificates[0].Raw),
		}
		if len(d.KeyDescriptors) != len(wantCerts) {
			t.Fatalf("%d key descriptors", len(d.KeyDescriptors))
		}
		for i, kd := range d.KeyDescriptors {
			if kd.Use != "signing" || kd.KeyInfo.X509Data.X509Certificates[0].Data != wantCerts[i] {
				t.Fatalf("key descriptor %d wrong", i)
			}
		}
		for _, eps := range [][]crewjam.Endpoint{d.SingleSignOnServices, d.SingleLogoutServices} {
			if len(eps) != 2 || eps[0].Binding != BindingRedirect || eps[1].Binding != BindingPOST {
				t.Fatalf("endpoints %+v", eps)
			}
		}
		if d.SingleSignOnServices[0].Location != testSSOURL || d.SingleLogoutServices[1].Location != testSLOURL {
			t.Fatal("endpoint locations wrong")
		}
		want := []crewjam.NameIDFormat{NameIDFormatEmailAddress, NameIDFormatPersistent, NameIDFormatTransient, NameIDFormatUnspecified}
		if len(d.NameIDFormats) != len(want) {
			t.Fatalf("name id formats %v", d.NameIDFormats)
		}
		for i := range want {
			if d.NameIDFormats[i] != want[i] {
				t.Fatalf("name id formats %v", d.NameIDFormats)
			}
		}
	})
	t.Run("without SLO and extra certificates", func(t *testing.T) {
		idp := mustIdP(t)
		idp.ExtraCertificates = nil
		md, err := idp.Metadata(testSSOURL, "")
		if err != nil {
			t.Fatal(err)
		}
		mustSchemaValid(t, xsdMetadata, md)
		var ed crewjam.EntityDescriptor
		if err := xml.Unmarshal(md, &ed); err != nil {
			t.Fatal(err)
		}
		if d := ed.IDPSSODescriptors[0]; len(d.SingleLogoutServices) != 0 || len(d.KeyDescriptors) != 1 {
			t.Fatal("unexpected SLO endpoints or key descriptors")
		}
	})
}

func TestMetadataRefuses(t *testing.T) {
	tests := []struct {
		name     string
		modify   func(*IdentityProvider)
		sso, slo string
	}{
		{"no entity id", func(i *IdentityProvider) { i.EntityID = "" }, testSSOURL, ""},
		{"no certificate", func(i *IdentityProvider) { i.Certificate = nil }, testSSOURL, ""},
		{"nil extra certificate", func(i *IdentityProvider) { i.ExtraCertificates = append(i.ExtraCertificates, nil) }, testSSOURL, ""},
		{"no sso url", func(*IdentityProvider) {}, "", ""},
		{"control character", func(*IdentityProvider) {}, testSSOURL, "https://x/\x01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			idp := mustIdP(t)
			tt.modify(idp)
			if md, err := idp.Metadata(tt.sso, tt.slo); err == nil {
				t.Fatalf("got %s, want an error", md)
			}
		})
	}
}

func TestPersistentID(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	base := PersistentID(secret, "app1", "jane.doe@example.com")
	if len(base) != 43 {
		t.Fatalf("length %d, want 43", len(base))
	}
	if _, err := base64.RawURLEncoding.DecodeString(base); err != nil {
		t.Fatalf("not base64url: %v", err)
	}
	tests := []struct {
		name         string
		secret       []byte
		app, email   string
		wantSameAsID bool
	}{
		{"stable", secret, "app1", "jane.doe@example.com", true},
		{"case and spaces in email", secret, "app1", "  Jane.Doe@Example.COM ", true},
		{"other app", secret, "app2", "jane.doe@example.com", false},
		{"other user", secret, "app1", "john.doe@example.com", false},
		{"other secret", []byte("another secret"), "app1", "jane.doe@example.com", false},
		{"boundary shift", secret, "app1j", "ane.doe@example.com", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := PersistentID(tt.secret, tt.app, tt.email)
			if (got == base) != tt.wantSameAsID {
				t.Fatalf("PersistentID = %q, base %q, want same: %v", got, base, tt.wantSameAsID)
			}
			if len(got) != 43 {
				t.Fatalf("length %d", len(got))
			}
		})
	}
	// Pinned: a change here gives every SP new users.
	if want := "tFKfO05GZ69hRc3uSyB23SkcrFoSheoPDTvING5gg8Q"; base != want {
		t.Fatalf("PersistentID changed: %s, want %s", base, want)
	}
}
