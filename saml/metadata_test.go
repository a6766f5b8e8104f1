package saml

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"net/url"
	"testing"
	"time"

	crewjam "github.com/crewjam/saml"
	saml2 "github.com/russellhaering/gosaml2"
	saml2types "github.com/russellhaering/gosaml2/types"
	dsig "github.com/russellhaering/goxmldsig"
	"github.com/winkk/passport/saml/samltest"
)

func TestMetadata(t *testing.T) {
	t.Parallel()
	idp := mustIdP(t)
	md, err := idp.Metadata(testSSOURL, testSLOURL, false)
	if err != nil {
		t.Fatal(err)
	}
	mustGolden(t, t.Name(), md)
	t.Run("schema", func(t *testing.T) { samltest.SchemaValid(t, samltest.MetadataXSD, md) })
	t.Run("content", func(t *testing.T) {
		t.Parallel()
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
		t.Parallel()
		idp := mustIdP(t)
		idp.ExtraCertificates = nil
		md, err := idp.Metadata(testSSOURL, "", false)
		if err != nil {
			t.Fatal(err)
		}
		samltest.SchemaValid(t, samltest.MetadataXSD, md)
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
	t.Parallel()
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
			t.Parallel()
			idp := mustIdP(t)
			tt.modify(idp)
			if md, err := idp.Metadata(tt.sso, tt.slo, false); err == nil {
				t.Fatalf("got %s, want an error", md)
			}
		})
	}
}

func TestPersistentID(t *testing.T) {
	t.Parallel()
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
			t.Parallel()
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

// TestMetadataRollover publishes the next signing certificate ahead of the
// switch, then signs with the next key: SPs whose trust comes from the
// metadata published before the switch keep accepting Responses.
func TestMetadataRollover(t *testing.T) {
	t.Parallel()
	current := mustIdP(t)
	md, err := current.Metadata(testSSOURL, testSLOURL, false)
	if err != nil {
		t.Fatal(err)
	}
	samltest.SchemaValid(t, samltest.MetadataXSD, md)

	next := mustIdP(t)
	next.Key, next.Certificate, next.ExtraCertificates = mustKey(t, "idp-next-key.pem"), current.ExtraCertificates[0], []*x509.Certificate{current.Certificate}
	p := testResponseParams()
	resp, err := next.MakeResponse(p)
	if err != nil {
		t.Fatal(err)
	}
	samltest.XMLSecVerify(t, resp, next.Certificate)
	if err := samltest.XMLSecCheck(t, resp, current.Certificate); err == nil {
		t.Fatal("the response verifies under the old key too")
	}

	withoutNext := mustIdP(t)
	withoutNext.ExtraCertificates = nil
	oldMD, err := withoutNext.Metadata(testSSOURL, testSLOURL, false)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		md     []byte
		accept bool
	}{
		{"metadata with the next certificate", md, true},
		{"metadata without it", oldMD, false},
	}
	for _, tt := range tests {
		t.Run(tt.name+", gosaml2", func(t *testing.T) {
			t.Parallel()
			var ed saml2types.EntityDescriptor
			if err := xml.Unmarshal(tt.md, &ed); err != nil {
				t.Fatal(err)
			}
			store := &dsig.MemoryX509CertificateStore{}
			for _, kd := range ed.IDPSSODescriptor.KeyDescriptors {
				for _, c := range kd.KeyInfo.X509Data.X509Certificates {
					der, err := base64.StdEncoding.DecodeString(c.Data)
					if err != nil {
						t.Fatal(err)
					}
					cert, err := x509.ParseCertificate(der)
					if err != nil {
						t.Fatal(err)
					}
					store.Roots = append(store.Roots, cert)
				}
			}
			trust := func(sp *saml2.SAMLServiceProvider) { sp.IDPCertificateStore = store }
			if tt.accept {
				if info := mustGosaml2Accept(t, next, resp, p.Destination, p.Audience, trust); info.NameID != p.NameID {
					t.Fatalf("NameID %q", info.NameID)
				}
				return
			}
			sp := &saml2.SAMLServiceProvider{
				IdentityProviderIssuer: next.EntityID, AssertionConsumerServiceURL: p.Destination, AudienceURI: p.Audience,
				Clock: dsig.NewFakeClockAt(testNow), AllowMissingAttributes: true,
			}
			trust(sp)
			if _, err := sp.RetrieveAssertionInfo(base64.StdEncoding.EncodeToString(resp)); err == nil {
				t.Fatal("gosaml2 accepted a response signed by a key the metadata does not publish")
			}
		})
		t.Run(tt.name+", crewjam", func(t *testing.T) {
			t.Parallel()
			var ed crewjam.EntityDescriptor
			if err := xml.Unmarshal(tt.md, &ed); err != nil {
				t.Fatal(err)
			}
			trust := func(sp *crewjam.ServiceProvider) { sp.IDPMetadata = &ed }
			if tt.accept {
				if a := mustCrewjamAccept(t, next, resp, p.Destination, p.Audience, []string{p.InResponseTo}, trust); a.Subject.NameID.Value != p.NameID {
					t.Fatalf("NameID %q", a.Subject.NameID.Value)
				}
				return
			}
			acs, err := url.Parse(p.Destination)
			if err != nil {
				t.Fatal(err)
			}
			sp := crewjam.ServiceProvider{EntityID: p.Audience, AcsURL: *acs, Clock: dsig.NewFakeClockAt(testNow.Add(10 * time.Second))}
			trust(&sp)
			if _, err := sp.ParseXMLResponse(resp, []string{p.InResponseTo}, *acs); err == nil {
				t.Fatal("crewjam accepted a response signed by a key the metadata does not publish")
			}
		})
	}
}
