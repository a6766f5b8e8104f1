package sso

import (
	"context"
	"encoding/pem"

	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/saml"
)

// Metadata is the IdP's metadata for application appID (saml-metadata §2.4.3): its SSO and SLO endpoints, the
// signing certificates (the next one too while a rollover is staged, the previous one during its grace), the
// NameID format the application is issued — only that one, so an SP that asks for the first format it reads
// gets one it can have — and whether its requests must be signed.
func (p *IdP) Metadata(ctx context.Context, appID string) ([]byte, error) {
	a, err := p.svc.Apps.Get(ctx, appID)
	if err != nil {
		return nil, err
	}
	format, ok := nameIDFormats[a.NameIDFormat]
	if !ok {
		format = saml.NameIDFormatEmailAddress // the default of every application
	}
	return p.saml().Metadata(p.SSOURL(a.ID), p.SLOURL(a.ID), a.RequireSignedRequests, format)
}

// ErrNoNextCertificate: no next signing certificate is staged.
var ErrNoNextCertificate = &authn.Error{Code: authn.ErrNotFound.Code, Message: "No next signing certificate is staged."}

// CertificatePEM is the signing certificate SPs are given (the "Public x509 certificate"), or with next the
// staged one that will replace it (ErrNoNextCertificate when none is staged).
func (p *IdP) CertificatePEM(next bool) ([]byte, error) {
	ring := p.Ring()
	if !next {
		return ring.Current.CertificatePEM, nil
	}
	if ring.Next == nil {
		return nil, ErrNoNextCertificate
	}
	return ring.Next.CertificatePEM, nil
}

// MaxSPMetadataSize bounds the SP metadata ImportSPMetadata reads.
const MaxSPMetadataSize = saml.MaxMetadataSize

// shortNameIDFormats maps a NameID format URN to an application's setting.
var shortNameIDFormats = map[string]string{
	saml.NameIDFormatEmailAddress: authn.NameIDEmail,
	saml.NameIDFormatPersistent:   authn.NameIDPersistent,
	saml.NameIDFormatTransient:    authn.NameIDTransient,
	saml.NameIDFormatUnspecified:  authn.NameIDUnspecified,
}

// ErrNoPOSTACS refuses SP metadata without an HTTP-POST AssertionConsumerService.
var ErrNoPOSTACS = &authn.Error{Code: "no_acs", Message: "The metadata has no HTTP-POST AssertionConsumerService: Passport answers by HTTP-POST only."}

// ImportSPMetadata fills application appID from its SP's metadata: audience, ACS URLs with their indexes,
// signing and encryption certificates, SLO URL, NameID format and whether requests must be signed.
func (p *IdP) ImportSPMetadata(ctx context.Context, appID string, xml []byte) (authn.App, string, error) {
	md, err := saml.ParseSPMetadata(xml)
	if err != nil {
		return authn.App{}, "", fromSAML(err)
	}
	patch, err := patchFromMetadata(md)
	if err != nil {
		return authn.App{}, "", err
	}
	app, err := p.svc.Apps.Get(ctx, appID)
	if err != nil {
		return authn.App{}, "", err
	}
	// An SP that wants signed assertions gets them, whatever the application signed before.
	if preferred, err := saml.ParseSigning(app.Sign); err == nil {
		if sign := md.Signing(preferred).String(); sign != app.Sign {
			patch.Sign = &sign
		}
	}
	a, err := p.svc.Apps.Update(ctx, appID, patch)
	return a, md.EntityID, err
}

// patchFromMetadata is the change to an application that SP metadata asks for.
func patchFromMetadata(md *saml.SPMetadata) (authn.AppPatch, error) {
	p := authn.AppPatch{Audience: &md.EntityID}
	def, ok := md.DefaultACS()
	if !ok {
		return p, ErrNoPOSTACS
	}
	p.ACSURL = &def.Location
	acs := []authn.ACSEndpoint{}
	for _, e := range md.ACS {
		if e.Binding == saml.BindingPOST {
			acs = append(acs, authn.ACSEndpoint{URL: e.Location, Index: e.Index})
		}
	}
	p.ACSURLs = &acs
	certs := []string{}
	for _, c := range md.SigningCertificates {
		certs = append(certs, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})))
	}
	p.SPCertificates = &certs
	if len(md.EncryptionCertificates) > 0 {
		enc := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: md.EncryptionCertificates[0].Raw}))
		p.EncryptionCertificate = &enc
	}
	for _, e := range md.SLO {
		if e.Binding == saml.BindingRedirect {
			loc := e.Location
			if e.ResponseLocation != "" {
				loc = e.ResponseLocation
			}
			p.SLOURL = &loc
			break
		}
	}
	for _, f := range md.NameIDFormats {
		if short, ok := shortNameIDFormats[f]; ok {
			p.NameIDFormat = &short
			break
		}
	}
	if md.AuthnRequestsSigned {
		yes := true
		p.RequireSignedRequests = &yes
	}
	return p, nil
}
