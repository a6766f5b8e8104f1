package saml

import (
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"

	"github.com/beevik/etree"
)

// Metadata returns the IdP's md:EntityDescriptor (saml-metadata §2.3.2,
// §2.4.3): entityID = EntityID; one IDPSSODescriptor for SAML 2.0 whose
// WantAuthnRequestsSigned is wantSignedRequests (metadata is served per
// application, and each says what its own SignaturePolicy requires); a signing KeyDescriptor for
// Certificate and then for each of ExtraCertificates (key rollover);
// SingleLogoutService at sloURL (omitted when empty) and SingleSignOnService
// at ssoURL, each with the HTTP-Redirect and HTTP-POST bindings; and the
// NameID formats nameIDFormats — the ones the application is issued, so that an
// SP which asks for the first format it reads gets one it can have — or, when
// none are given, emailAddress, persistent, transient and unspecified.
//
// No validUntil or cacheDuration is written: the document is served live,
// so there is nothing to refresh on a schedule and no expiry an SP could
// pass (an SP drops an IdP whose validUntil is in the past). The output is
// unsigned, indented and byte-stable for a given input.
func (idp *IdentityProvider) Metadata(ssoURL, sloURL string, wantSignedRequests bool, nameIDFormats ...string) ([]byte, error) {
	if idp.EntityID == "" || idp.Certificate == nil || ssoURL == "" {
		return nil, errors.New("saml: metadata: entity id, certificate and sso url are required")
	}
	if len(nameIDFormats) == 0 {
		nameIDFormats = []string{NameIDFormatEmailAddress, NameIDFormatPersistent, NameIDFormatTransient, NameIDFormatUnspecified}
	}
	if !validXML(append([]string{idp.EntityID, ssoURL, sloURL}, nameIDFormats...)...) {
		return nil, errors.New("saml: metadata: parameter is not valid XML text")
	}
	doc := etree.NewDocument()
	doc.CreateProcInst("xml", `version="1.0" encoding="UTF-8"`)
	ed := doc.CreateElement("md:EntityDescriptor")
	ed.CreateAttr("xmlns:md", NamespaceMetadata)
	ed.CreateAttr("xmlns:ds", NamespaceDSig)
	ed.CreateAttr("entityID", idp.EntityID)
	sso := ed.CreateElement("md:IDPSSODescriptor")
	sso.CreateAttr("WantAuthnRequestsSigned", strconv.FormatBool(wantSignedRequests))
	sso.CreateAttr("protocolSupportEnumeration", NamespaceProtocol)
	for _, c := range append([]*x509.Certificate{idp.Certificate}, idp.ExtraCertificates...) {
		if c == nil {
			return nil, fmt.Errorf("saml: metadata: nil certificate")
		}
		kd := sso.CreateElement("md:KeyDescriptor")
		kd.CreateAttr("use", "signing")
		kd.CreateElement("ds:KeyInfo").CreateElement("ds:X509Data").CreateElement("ds:X509Certificate").
			SetText(base64.StdEncoding.EncodeToString(c.Raw))
	}
	if sloURL != "" {
		for _, b := range []string{BindingRedirect, BindingPOST} {
			s := sso.CreateElement("md:SingleLogoutService")
			s.CreateAttr("Binding", b)
			s.CreateAttr("Location", sloURL)
		}
	}
	for _, f := range nameIDFormats {
		sso.CreateElement("md:NameIDFormat").SetText(f)
	}
	for _, b := range []string{BindingRedirect, BindingPOST} {
		s := sso.CreateElement("md:SingleSignOnService")
		s.CreateAttr("Binding", b)
		s.CreateAttr("Location", ssoURL)
	}
	doc.Indent(2)
	out, err := doc.WriteToBytes()
	if err != nil {
		return nil, fmt.Errorf("saml: metadata: %w", err)
	}
	return out, nil
}
