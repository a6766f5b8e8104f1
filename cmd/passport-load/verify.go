package main

import (
	"crypto/x509"
	"errors"
	"strings"

	saml2 "github.com/russellhaering/gosaml2"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/winkk/passport/saml"
)

// newSP is the application's side, as an independent SAML SP (gosaml2) sees it: it trusts only the certificates
// the IdP publishes at its certificate URL.
func newSP(app appView, certs []*x509.Certificate) *saml2.SAMLServiceProvider {
	return &saml2.SAMLServiceProvider{
		IdentityProviderSSOURL:      app.SSOURL,
		IdentityProviderIssuer:      app.EntityID,
		ServiceProviderIssuer:       app.Audience,
		AssertionConsumerServiceURL: app.ACSURL,
		AudienceURI:                 app.Audience,
		IDPCertificateStore:         &dsig.MemoryX509CertificateStore{Roots: certs},
		Clock:                       dsig.NewRealClock(),
	}
}

// verify checks the Response on the page as the SP would: posted to the ACS URL with the RelayState sent, signed
// by the IdP's key, for this request (InResponseTo), this SP (Destination, Recipient, Audience) and this user
// (NameID), and valid now.
func (r *runner) verify(pg *page, reqID, relay, email string) *failure {
	bad := func(kind, detail string) *failure { return &failure{stepVerify, kind, detail} }
	if pg.PostAction != r.fx.App.ACSURL {
		return bad("form action", "the form posts to "+pg.PostAction+", not the ACS URL "+r.fx.App.ACSURL)
	}
	if pg.RelayState != relay {
		return bad("RelayState", "the form carries RelayState "+pg.RelayState+", not the one sent")
	}
	resp, err := r.sp.ValidateEncodedResponse(pg.SAMLResponse)
	if err != nil {
		var iv saml2.ErrInvalidValue
		var me saml2.ErrMissingElement
		switch {
		case errors.As(err, &iv):
			return bad(strings.ToLower(iv.Key), err.Error())
		case errors.As(err, &me):
			return bad("missing "+me.Tag, err.Error())
		}
		return bad("signature", err.Error())
	}
	switch signs := r.fx.sign.SignsResponse(); {
	case signs && !resp.SignatureValidated:
		return bad("signature", "the Response itself is not signed")
	case !signs && resp.SignatureValidated:
		return bad("signature", "the Response itself is signed: the application signs the assertion only")
	}
	if resp.Destination != r.fx.App.ACSURL {
		return bad("destination", "Destination "+resp.Destination+", not the ACS URL")
	}
	if resp.InResponseTo != reqID {
		return bad("inresponseto", "InResponseTo "+resp.InResponseTo+", not the request's ID "+reqID)
	}
	if len(resp.Assertions) != 1 {
		return bad("assertion", "the Response does not carry exactly one assertion")
	}
	a := &resp.Assertions[0]
	if r.fx.sign == saml.SignAssertion && !a.SignatureValidated {
		return bad("signature", "the assertion is not signed")
	}
	warn, err := r.sp.VerifyAssertionConditions(a)
	switch {
	case err != nil:
		return bad("conditions", err.Error())
	case warn.NotInAudience || a.Conditions == nil || len(a.Conditions.AudienceRestrictions) == 0:
		return bad("audience", "the assertion is not restricted to the audience "+r.fx.App.Audience)
	case warn.InvalidTime:
		return bad("time", "the assertion is not valid now")
	}
	if a.Subject == nil || a.Subject.NameID == nil || a.Subject.NameID.Value != email {
		return bad("nameid", "the NameID is not "+email)
	}
	if sc := a.Subject.SubjectConfirmation; sc == nil || sc.SubjectConfirmationData == nil || sc.SubjectConfirmationData.InResponseTo != reqID {
		return bad("inresponseto", "the SubjectConfirmationData does not answer the request's ID")
	}
	return nil
}
