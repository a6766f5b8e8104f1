package sso

import (
	"context"
	"errors"
	"strings"

	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/saml"
)

// Start is what becomes of a browser that arrives with an SP's request (or at an IdP-initiated login link):
// either a parked login it goes on to (Login, bound to the browser by Secret, its cookie), or a message to hand
// the SP at once (Post), with the words to show while it goes.
type Start struct {
	// Login is the parked login; Secret binds it to the browser.
	Login  *authn.Login
	Secret string
	// Post, without a Login, is a Response to hand the SP now: a Success from the browser's IdP session
	// (Success true), or a signed error Response (the SP asked for what cannot be given).
	Post    *Post
	Success bool
	AppName string
	Message string
}

// ErrNotConfigured refuses a login to an application whose administrator has not set its audience and ACS URL.
var ErrNotConfigured = &authn.Error{Code: authn.ErrNotConfigured.Code, Message: "This application is not configured yet: its administrator must set the audience and ACS URL in Passport."}

// ErrACSMismatch refuses a request asking for a Response at an address the application did not register.
var ErrACSMismatch = &authn.Error{Code: "acs_mismatch", Message: "The request asks for a response at an address that is not registered for this application."}

// ErrRelayStateNotAllowed refuses an IdP-initiated login whose RelayState is not on the application's list.
var ErrRelayStateNotAllowed = &authn.Error{Code: "relay_state_not_allowed", Message: "This RelayState is not allowed for this application. Ask its administrator to add it to the application's allowed RelayStates."}

// ErrNoPassive refuses an IdP-initiated login that may not interact with the user and has no session.
var ErrNoPassive = &authn.Error{Code: "no_passive", Message: "Signing in needs your approval on your phone."}

// SSO is the SingleSignOnService (saml-profiles §4.1.4.1): it decodes the request from its binding, checks it
// as a careful IdP must (issuer, destination, ACS, signature, age, replay), admits it (per-client limit, its ID
// consumed once), then answers it from the browser's IdP session (sessionCookie) when it can, or parks the
// login. A request that fails a check is refused with an error, never answered with a Response: where it asks
// a Response to go cannot be trusted. One the IdP can read but not satisfy (a NameID format the app does not
// issue, an authentication context it does not offer, IsPassive without a session) gets a signed error
// Response.
func (p *IdP) SSO(ctx context.Context, appID string, in Inbound, c Client, sessionCookie string) (Start, error) {
	msg, err := in.decode("SAMLRequest")
	if err != nil {
		return Start{}, err
	}
	app, err := p.svc.Apps.Get(ctx, appID)
	if err != nil {
		return Start{}, err
	}
	if !app.Configured() {
		return Start{}, ErrNotConfigured
	}
	req, err := p.saml().ReadAuthnRequest(msg, saml.RequestCheck{Audience: app.Audience, ACSURL: app.ACSURL, ACSURLs: app.ACSList(), SSOURL: p.SSOURL(app.ID)},
		signaturePolicy(app, app.RequireSignedRequests))
	if err != nil {
		return Start{}, fromSAML(err)
	}
	acs, ok := app.ResolveACS(req.AssertionConsumerServiceURL, req.AssertionConsumerServiceIndex)
	if !ok {
		return Start{}, ErrACSMismatch
	}
	// From here on the request is admitted (counted, its ID consumed) before it is answered, refused with an
	// error Response or parked: begin admits it, or refuseAdmitted.
	if f := req.NameIDPolicyFormat; f != "" && f != saml.NameIDFormatUnspecified && f != nameIDFormats[app.NameIDFormat] {
		return p.refuseAdmitted(ctx, c, app, acs, req.ID, msg.RelayState, saml.StatusRequester, saml.StatusInvalidNameIDPolicy,
			"The application asked for a NameID format this application is not set up to issue.")
	}
	class, ok := req.RequestedAuthnContext.Choose(saml.AuthnContextMobileOneFactorUnregistered)
	if class == saml.AuthnContextMobileOneFactorUnregistered {
		class = "" // the default: the parked login need not carry it
	}
	if !ok {
		return p.refuseAdmitted(ctx, c, app, acs, req.ID, msg.RelayState, saml.StatusResponder, saml.StatusNoAuthnContext,
			"The application asked for a kind of sign-in this identity provider does not offer.")
	}
	in2 := authn.StartLogin{
		AppID:        app.ID,
		RequestID:    req.ID,
		RelayState:   msg.RelayState,
		ACSURL:       acs,
		ClientIP:     c.IP,
		UserAgent:    c.UserAgent,
		Network:      c.Network,
		AuthnContext: class,
	}
	if sub := req.Subject; sub != nil {
		// An email names the user to identify (checked as they type it); any other NameID is checked against
		// the one the Response would carry.
		if email, err := authn.NormalizeEmail(sub.Value); err == nil && (sub.Format == saml.NameIDFormatEmailAddress || sub.Format == saml.NameIDFormatUnspecified || sub.Format == "") {
			in2.Subject.Email = email
		} else {
			in2.Subject.NameID, in2.Subject.Format = sub.Value, sub.Format
		}
	}
	return p.begin(ctx, app, in2, sessionCookie, req.ForceAuthn, req.IsPassive)
}

// IdPInitiated is IdP-initiated login (saml-profiles §4.1.5): the same approval, then an unsolicited Response
// to the application's ACS URL. A RelayState must be on the application's allowed list.
func (p *IdP) IdPInitiated(ctx context.Context, appID, relayState string, c Client, sessionCookie string) (Start, error) {
	app, err := p.svc.Apps.Get(ctx, appID)
	if err != nil {
		return Start{}, err
	}
	if !app.Configured() {
		return Start{}, ErrNotConfigured
	}
	if len(relayState) > saml.MaxRelayStateSize || !authn.RelayStateAllowed(relayState, app.RelayStates) {
		return Start{}, ErrRelayStateNotAllowed
	}
	return p.begin(ctx, app, authn.StartLogin{AppID: app.ID, RelayState: relayState, ClientIP: c.IP, UserAgent: c.UserAgent, Network: c.Network}, sessionCookie, false, false)
}

// refuseAdmitted admits an SP's request (Logins.Admit: counted against its client's network, its ID consumed)
// and then refuses it with a signed error Response (refuse).
func (p *IdP) refuseAdmitted(ctx context.Context, c Client, app authn.App, acs, requestID, relayState, status, sub, message string) (Start, error) {
	if err := p.svc.Logins.Admit(ctx, c.Network, app.ID, requestID, p.requestIDLifetime()); err != nil {
		return Start{}, err
	}
	return p.refuse(app, acs, requestID, relayState, status, sub, message)
}

// begin admits the login in (Logins.Admit: counted against its client's network; an SP's request ID consumed)
// and then answers at once from the browser's IdP session when it has one (unless forceAuthn), answers
// NoPassive when the SP forbids interaction and there is no session, and otherwise parks the login. When
// nothing is to be read first (no session cookie, or forceAuthn) and the login is to be parked, admission and
// parking are one step (Logins.AdmitAndPark: one round trip to the store on one server).
func (p *IdP) begin(ctx context.Context, app authn.App, in authn.StartLogin, sessionCookie string, forceAuthn, isPassive bool) (Start, error) {
	ttl := p.requestIDLifetime()
	if (forceAuthn || sessionCookie == "") && !isPassive {
		l, secret, err := p.svc.Logins.AdmitAndPark(ctx, in, ttl)
		if err != nil {
			return Start{}, err
		}
		return Start{Login: &l, Secret: secret}, nil
	}
	if err := p.svc.Logins.Admit(ctx, in.Network, in.AppID, in.RequestID, ttl); err != nil {
		return Start{}, err
	}
	if !forceAuthn {
		sess, err := p.svc.Sessions.FromCookie(ctx, sessionCookie)
		if err == nil && !p.subjectMatches(app, in.Subject, sess.Email) {
			err = authn.ErrNotFound // the session is someone else's: sign in as the user asked for
		}
		if err == nil {
			l, err := p.svc.Logins.ParkFromSession(ctx, in, sess)
			if err != nil {
				return Start{}, err
			}
			answered, _, err := p.respond(ctx, app, l)
			if errors.Is(err, errNotAllowed) {
				return p.refuse(app, acsFor(app, l), in.RequestID, in.RelayState, saml.StatusRequester, saml.StatusRequestDenied,
					failureMessages[authn.ReasonNotAllowed])
			}
			if err != nil {
				return Start{}, err
			}
			return Start{Post: answerPost(app, answered), Success: true, AppName: app.Name, Message: "Taking you to " + app.Name + "…"}, nil
		}
		if !errors.Is(err, authn.ErrNotFound) {
			return Start{}, err
		}
	}
	if isPassive {
		if in.RequestID == "" {
			return Start{}, ErrNoPassive
		}
		return p.refuse(app, in.ACSURL, in.RequestID, in.RelayState, saml.StatusResponder, saml.StatusNoPassive,
			"Signing in needs your approval on your phone, and the application asked not to interact with you.")
	}
	l, secret, err := p.svc.Logins.Park(ctx, in)
	if err != nil {
		return Start{}, err
	}
	return Start{Login: &l, Secret: secret}, nil
}

// refuse answers the SP at once with a signed error Response (saml-core §3.2.2.2) to acs.
func (p *IdP) refuse(app authn.App, acs, inResponseTo, relayState, status, sub, message string) (Start, error) {
	resp, err := p.saml().MakeErrorResponse(saml.ErrorParams{InResponseTo: inResponseTo, Destination: acs, StatusCode: status, SubStatusCode: sub, Message: message})
	if err != nil {
		return Start{}, err
	}
	return Start{Post: &Post{ACS: acs, Response: resp, RelayState: relayState}, AppName: app.Name, Message: message}, nil
}

// signaturePolicy is how an application's signed messages are checked: against its SP certificates.
func signaturePolicy(app authn.App, require bool) saml.SignaturePolicy {
	return saml.SignaturePolicy{Certificates: spCertificates(app), Require: require, AllowSHA1: app.AllowSHA1}
}

// subjectMatches reports whether the user with email is the principal want a request named, if it named
// one (saml-core §3.4.1: the assertion's subject MUST strongly match the request's). A transient NameID, or
// a format Passport does not issue, matches nobody.
func (p *IdP) subjectMatches(app authn.App, want authn.Subject, email string) bool {
	switch {
	case want.Email != "":
		return strings.EqualFold(email, want.Email)
	case want.NameID == "":
		return true
	}
	persistent := saml.PersistentID(p.persistentSecret, app.ID, email)
	switch want.Format {
	case saml.NameIDFormatPersistent:
		return want.NameID == persistent
	case saml.NameIDFormatUnspecified, "":
		return want.NameID == persistent || strings.EqualFold(want.NameID, email)
	default:
		return false
	}
}
