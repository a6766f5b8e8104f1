package main

import (
	"crypto/x509"
	"errors"
	"strings"
	"time"

	saml2 "github.com/russellhaering/gosaml2"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/winkk/passport/saml"
)

// newSP is the application's side, as an independent SAML SP (gosaml2) sees it at the moment at: it trusts only
// the certificates the IdP publishes at its certificate URL.
func newSP(app appView, certs []*x509.Certificate, at time.Time) *saml2.SAMLServiceProvider {
	return &saml2.SAMLServiceProvider{
		IdentityProviderSSOURL:      app.SSOURL,
		IdentityProviderIssuer:      app.EntityID,
		ServiceProviderIssuer:       app.Audience,
		AssertionConsumerServiceURL: app.ACSURL,
		AudienceURI:                 app.Audience,
		IDPCertificateStore:         &dsig.MemoryX509CertificateStore{Roots: certs},
		Clock:                       dsig.NewFakeClockAt(at),
	}
}

// response is what the browser was handed at the end of a login, with what the SP checks it against.
type response struct {
	PostAction, RelayState, SAMLResponse string    // the page's auto-posting form
	ReqID, Relay, Email                  string    // the AuthnRequest's ID, the RelayState sent, the user
	At                                   time.Time // when the page arrived: the clock the check reads
}

// verify checks the Response as the SP would: posted to the ACS URL with the RelayState sent, signed by the
// IdP's key, for this request (InResponseTo), this SP (Destination, Recipient, Audience) and this user (NameID),
// and valid at the moment it arrived, whether it is checked at once or after the logins (--check-after).
func (r *runner) verify(rs response) *failure {
	bad := func(kind, detail string) *failure { return &failure{stepVerify, kind, detail} }
	if rs.PostAction != r.fx.App.ACSURL {
		return bad("form action", "the form posts to "+rs.PostAction+", not the ACS URL "+r.fx.App.ACSURL)
	}
	if rs.RelayState != rs.Relay {
		return bad("RelayState", "the form carries RelayState "+rs.RelayState+", not the one sent")
	}
	sp := newSP(r.fx.App, r.fx.Certs, rs.At)
	resp, err := sp.ValidateEncodedResponse(rs.SAMLResponse)
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
	if resp.InResponseTo != rs.ReqID {
		return bad("inresponseto", "InResponseTo "+resp.InResponseTo+", not the request's ID "+rs.ReqID)
	}
	if len(resp.Assertions) != 1 {
		return bad("assertion", "the Response does not carry exactly one assertion")
	}
	a := &resp.Assertions[0]
	if r.fx.sign == saml.SignAssertion && !a.SignatureValidated {
		return bad("signature", "the assertion is not signed")
	}
	warn, err := sp.VerifyAssertionConditions(a)
	switch {
	case err != nil:
		return bad("conditions", err.Error())
	case warn.NotInAudience || a.Conditions == nil || len(a.Conditions.AudienceRestrictions) == 0:
		return bad("audience", "the assertion is not restricted to the audience "+r.fx.App.Audience)
	case warn.InvalidTime:
		return bad("time", "the assertion is not valid now")
	}
	if a.Subject == nil || a.Subject.NameID == nil || a.Subject.NameID.Value != rs.Email {
		return bad("nameid", "the NameID is not "+rs.Email)
	}
	if sc := a.Subject.SubjectConfirmation; sc == nil || sc.SubjectConfirmationData == nil || sc.SubjectConfirmationData.InResponseTo != rs.ReqID {
		return bad("inresponseto", "the SubjectConfirmationData does not answer the request's ID")
	}
	return nil
}
