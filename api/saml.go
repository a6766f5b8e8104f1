package api

import (
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/saml"
)

// nameIDFormats maps an app's NameID format setting to its URN (saml-core §8.3).
var nameIDFormats = map[string]string{
	authn.NameIDEmail:       saml.NameIDFormatEmailAddress,
	authn.NameIDPersistent:  saml.NameIDFormatPersistent,
	authn.NameIDTransient:   saml.NameIDFormatTransient,
	authn.NameIDUnspecified: saml.NameIDFormatUnspecified,
}

// requestIDLifetime is how long a consumed request ID is remembered: past it the request's IssueInstant is too
// old to be accepted anyway (it may be RequestMaxAge old, plus the allowed skew on either side).
func (s *Server) requestIDLifetime() time.Duration {
	return s.idp().RequestWindow() + time.Minute
}

func (s *Server) handleCertificate(c echo.Context) error {
	ring := s.ring()
	cert := ring.Current.CertificatePEM
	if _, next := c.QueryParams()["next"]; next {
		if ring.Next == nil {
			return authn.ErrNotFound.WithMessage("No next signing certificate is staged.")
		}
		cert = ring.Next.CertificatePEM
	}
	c.Response().Header().Set("Cache-Control", "public, max-age=300")
	return c.Blob(http.StatusOK, "application/x-pem-file", cert)
}

func (s *Server) handleMetadata(c echo.Context) error {
	a, err := s.svc.GetApp(s.ctx(c), c.Param("appID"))
	if err != nil {
		return err
	}
	md, err := s.idp().Metadata(s.ssoURL(a.ID), s.sloURL(a.ID), a.RequireSignedRequests)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "public, max-age=300")
	return c.Blob(http.StatusOK, "application/samlmetadata+xml", md)
}

// handleSSO is the SingleSignOnService (saml-profiles §4.1.4.1): decode the binding, check the request as a
// careful IdP must, consume its ID, then park the login and send the browser to the login page. A request that
// fails a check gets our error page, never a Response: we cannot trust where it asks us to send one.
func (s *Server) handleSSO(c echo.Context) error {
	r := c.Request()
	var msg *saml.InboundMessage
	var err error
	if r.Method == http.MethodPost {
		if err := r.ParseForm(); err != nil {
			return errMalformedRequest
		}
		msg, err = saml.DecodePOST(r.PostForm, "SAMLRequest")
	} else {
		msg, err = saml.DecodeRedirect(r.URL.RawQuery, "SAMLRequest")
	}
	if err != nil {
		return err
	}
	app, err := s.svc.GetApp(s.ctx(c), c.Param("appID"))
	if err != nil {
		return err
	}
	if !app.Configured() {
		return errNotConfigured
	}
	req, err := s.idp().ReadAuthnRequest(msg, saml.RequestCheck{Audience: app.Audience, ACSURL: app.ACSURL, ACSURLs: app.ACSList(), SSOURL: s.ssoURL(app.ID)},
		saml.SignaturePolicy{Certificates: spCertificates(app), Require: app.RequireSignedRequests, AllowSHA1: app.AllowSHA1})
	if err != nil {
		return err
	}
	acs, ok := app.ResolveACS(req.AssertionConsumerServiceURL, req.AssertionConsumerServiceIndex)
	if !ok {
		return errACSMismatch
	}
	if err := s.svc.Admit(s.ctx(c), clientKey(c), app.ID, req.ID, s.requestIDLifetime()); err != nil {
		return err
	}
	s.metrics.requests.WithLabelValues(app.ID).Inc()
	if req.NameIDPolicyFormat != "" && req.NameIDPolicyFormat != saml.NameIDFormatUnspecified && req.NameIDPolicyFormat != nameIDFormats[app.NameIDFormat] {
		return s.postError(c, app, acs, req.ID, msg.RelayState, saml.StatusRequester, saml.StatusInvalidNameIDPolicy,
			"The application asked for a NameID format this application is not set up to issue.")
	}
	class, ok := req.RequestedAuthnContext.Choose(saml.AuthnContextMobileOneFactorUnregistered)
	if class == saml.AuthnContextMobileOneFactorUnregistered {
		class = "" // the default: the parked login need not carry it
	}
	if !ok {
		return s.postError(c, app, acs, req.ID, msg.RelayState, saml.StatusResponder, saml.StatusNoAuthnContext,
			"The application asked for a kind of sign-in this identity provider does not offer.")
	}
	in := authn.StartLogin{
		AppID:        app.ID,
		RequestID:    req.ID,
		RelayState:   msg.RelayState,
		ACSURL:       acs,
		ClientIP:     c.RealIP(),
		UserAgent:    r.UserAgent(),
		Network:      clientKey(c),
		AuthnContext: class,
	}
	if sub := req.Subject; sub != nil {
		// An email names the user to identify (checked as they type it); any other NameID is checked against
		// the one the Response would carry.
		if email, err := authn.NormalizeEmail(sub.Value); err == nil && (sub.Format == saml.NameIDFormatEmailAddress || sub.Format == saml.NameIDFormatUnspecified || sub.Format == "") {
			in.Subject.Email = email
		} else {
			in.Subject.NameID, in.Subject.Format = sub.Value, sub.Format
		}
	}
	return s.beginLogin(c, app, in, req.ForceAuthn, req.IsPassive)
}

// errSubjectMismatch: the user who signed in is not the one the request named.
var errSubjectMismatch = errors.New("api: not the subject the request named")

// subjectMatches reports whether the user with email is the principal want a request named, if it named
// one (saml-core §3.4.1: the assertion's subject MUST strongly match the request's). A transient NameID, or
// a format Passport does not issue, matches nobody.
func (s *Server) subjectMatches(app authn.App, want authn.Subject, email string) bool {
	switch {
	case want.Email != "":
		return strings.EqualFold(email, want.Email)
	case want.NameID == "":
		return true
	}
	persistent := saml.PersistentID(s.persistentSecret, app.ID, email)
	switch want.Format {
	case saml.NameIDFormatPersistent:
		return want.NameID == persistent
	case saml.NameIDFormatUnspecified, "":
		return want.NameID == persistent || strings.EqualFold(want.NameID, email)
	default:
		return false
	}
}

// handleIdPLogin is IdP-initiated login (saml-profiles §4.1.5): the same approval, then an unsolicited
// Response to the app's ACS URL. A RelayState must be on the app's allowed list.
func (s *Server) handleIdPLogin(c echo.Context) error {
	app, err := s.svc.GetApp(s.ctx(c), c.Param("appID"))
	if err != nil {
		return err
	}
	if !app.Configured() {
		return errNotConfigured
	}
	rs := c.QueryParam("RelayState")
	if len(rs) > saml.MaxRelayStateSize || !authn.RelayStateAllowed(rs, app.RelayStates) {
		return errRelayStateNotAllowed
	}
	if err := s.svc.Admit(s.ctx(c), clientKey(c), app.ID, "", 0); err != nil {
		return err
	}
	return s.beginLogin(c, app, authn.StartLogin{AppID: app.ID, RelayState: rs, ClientIP: c.RealIP(), UserAgent: c.Request().UserAgent(), Network: clientKey(c)}, false, false)
}

// beginLogin answers at once from the browser's IdP session when it has one (unless forceAuthn), answers
// NoPassive when the SP forbids interaction and there is no session, and otherwise parks the login and sends
// the browser to the login page.
func (s *Server) beginLogin(c echo.Context, app authn.App, in authn.StartLogin, forceAuthn, isPassive bool) error {
	ctx := s.ctx(c)
	if !forceAuthn {
		sess, err := s.svc.SessionFromCookie(ctx, sessionCookieValue(c))
		if err == nil && !s.subjectMatches(app, in.Subject, sess.Email) {
			err = authn.ErrNotFound // the session is someone else's: sign in as the user asked for
		}
		if err == nil {
			l, err := s.svc.ParkFromSession(ctx, in, sess)
			if err != nil {
				return err
			}
			answered, _, err := s.svc.Respond(ctx, l, func(l authn.Login, u authn.User) ([]byte, authn.SessionApp, error) {
				return s.buildResponse(app, l, u)
			})
			if err != nil {
				return err
			}
			s.metrics.logins.WithLabelValues("session").Inc()
			return s.renderAnswer(c, app, answered)
		}
		if !errors.Is(err, authn.ErrNotFound) {
			return err
		}
	}
	if isPassive {
		if in.RequestID == "" {
			return errNoPassive
		}
		return s.postError(c, app, in.ACSURL, in.RequestID, in.RelayState, saml.StatusResponder, saml.StatusNoPassive,
			"Signing in needs your approval on your phone, and the application asked not to interact with you.")
	}
	l, secret, err := s.svc.Park(ctx, in)
	if err != nil {
		return err
	}
	http.SetCookie(c.Response(), &http.Cookie{
		Name:     loginCookie,
		Value:    secret,
		Path:     "/login/" + l.ID,
		MaxAge:   int((s.svc.LoginTTL() + 15*time.Minute).Seconds()),
		HttpOnly: true,
		Secure:   s.secure(),
		SameSite: http.SameSiteLaxMode,
	})
	return c.Redirect(http.StatusSeeOther, s.url("/login/"+l.ID))
}

// sessionCookie names the IdP session; it is sent to the SAML endpoints only.
const sessionCookie = "passport_session"

func sessionCookieValue(c echo.Context) string { return cookieValue(c, sessionCookie) }

// setSessionCookie hands the browser its IdP session. On https it is SameSite=None so that HTTP-POST
// AuthnRequests (a cross-site POST) still find the session; on plain http (development) it is Lax.
func (s *Server) setSessionCookie(c echo.Context, value string, ttl time.Duration) {
	ck := &http.Cookie{Name: sessionCookie, Value: value, Path: "/saml/", HttpOnly: true, Secure: s.secure(), SameSite: http.SameSiteLaxMode}
	if s.secure() {
		ck.SameSite = http.SameSiteNoneMode
	}
	if value == "" {
		ck.MaxAge = -1
	} else {
		ck.MaxAge = int(ttl.Seconds())
	}
	http.SetCookie(c.Response(), ck)
}

// renderAnswer shows the auto-submitting form carrying an answered login's Response.
func (s *Server) renderAnswer(c echo.Context, app authn.App, l authn.Login) error {
	return s.renderPage(c, http.StatusOK, pageData{
		View: "post", Title: "Signing you in", Message: "Taking you to " + app.Name + "…", AppName: app.Name,
		Post: &postForm{ACS: acsFor(app, l), SAMLResponse: samlValue(l.Response), RelayState: l.RelayState, Auto: true},
	})
}

// postError answers the SP at once with a signed error Response (saml-core §3.2.2.2) by HTTP-POST to acs.
func (s *Server) postError(c echo.Context, app authn.App, acs, inResponseTo, relayState, status, sub, message string) error {
	resp, err := s.idp().MakeErrorResponse(saml.ErrorParams{InResponseTo: inResponseTo, Destination: acs, StatusCode: status, SubStatusCode: sub, Message: message})
	if err != nil {
		return err
	}
	return s.renderPost(c, http.StatusOK, app, acs, resp, relayState, message)
}

// acsFor is where a login's Response goes: the ACS URL its request chose, else the app's default.
func acsFor(app authn.App, l authn.Login) string {
	if l.ACSURL != "" {
		return l.ACSURL
	}
	return app.ACSURL
}

// nameID is what the app is told the user is called, per its NameID format (saml-core §8.3).
func (s *Server) nameID(app authn.App, u authn.User) (string, string, error) {
	switch app.NameIDFormat {
	case authn.NameIDPersistent:
		return saml.PersistentID(s.persistentSecret, app.ID, u.Email), saml.NameIDFormatPersistent, nil
	case authn.NameIDTransient:
		id, err := s.idp().NewID()
		return id, saml.NameIDFormatTransient, err
	case authn.NameIDUnspecified:
		return u.Email, saml.NameIDFormatUnspecified, nil
	default:
		return u.Email, saml.NameIDFormatEmailAddress, nil
	}
}

// buildResponse makes the signed Response for an approved login. Validity windows count from now, the moment
// the Response is issued, so a slow approval never yields an assertion that is already expiring.
func (s *Server) buildResponse(app authn.App, l authn.Login, u authn.User) ([]byte, authn.SessionApp, error) {
	if app.ACSURL == "" || app.Audience == "" {
		return nil, authn.SessionApp{}, errors.New("api: application lost its ACS URL or audience")
	}
	if !s.subjectMatches(app, l.Subject, u.Email) {
		return nil, authn.SessionApp{}, errSubjectMismatch
	}
	nameID, format, err := s.nameID(app, u)
	if err != nil {
		return nil, authn.SessionApp{}, err
	}
	sess := authn.Session{ID: l.SessionID}
	var encryptTo *x509.Certificate
	if app.EncryptAssertions {
		if encryptTo, err = authn.ParseCertificatePEM(app.EncryptionCertificate); err != nil {
			return nil, authn.SessionApp{}, fmt.Errorf("api: encryption certificate of app %s: %w", app.ID, err)
		}
	}
	resp, err := s.idp().MakeResponse(saml.ResponseParams{
		InResponseTo: l.RequestID,
		EncryptTo:    encryptTo,
		Destination:  acsFor(app, l),
		Audience:     app.Audience,
		NameID:       nameID,
		NameIDFormat: format,
		SessionIndex: sess.SessionIndex(),
		AuthnInstant: l.DecidedAt,
		Attributes:   attributes(app, u),
		// The context class chosen for the request's RequestedAuthnContext; empty: Passport's own.
		AuthnContextClassRef: l.AuthnContext,
	})
	return resp, authn.SessionApp{AppID: app.ID, NameID: nameID, NameIDFormat: format}, err
}

// profiles name the user's fields as attributes (saml-core §2.7.3): the default uses plain names, the
// Atlassian preset the claim URIs Atlassian reads.
var profiles = map[string]struct {
	format string
	names  map[string]string
}{
	authn.ProfileDefault: {saml.AttrNameFormatBasic, map[string]string{
		"email": "email", "given_name": "given_name", "family_name": "family_name", "display_name": "display_name", "groups": "groups"}},
	authn.ProfileAtlassian: {saml.AttrNameFormatURI, map[string]string{
		"email":        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
		"given_name":   "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname",
		"family_name":  "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname",
		"display_name": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"}},
}

// attributes maps the user's fields to the app's attribute names: its profile's, renamed by its attribute map.
func attributes(app authn.App, u authn.User) []saml.Attribute {
	display := u.DisplayName
	if display == "" && (u.GivenName != "" || u.FamilyName != "") {
		display = strings.TrimSpace(u.GivenName + " " + u.FamilyName)
	}
	values := map[string][]string{"email": {u.Email}, "given_name": {u.GivenName}, "family_name": {u.FamilyName}, "display_name": {display}, "groups": u.Groups}
	prof, ok := profiles[app.AttributeProfile]
	if !ok {
		prof = profiles[authn.ProfileDefault]
	}
	var out []saml.Attribute
	for _, field := range []string{"email", "given_name", "family_name", "display_name", "groups"} {
		name, mapped := app.AttributeMap[field]
		format := saml.AttrNameFormatUnspecified
		if !mapped {
			name, format = prof.names[field], prof.format
		} else if strings.Contains(name, ":") {
			format = saml.AttrNameFormatURI
		}
		var vs []string
		for _, v := range values[field] {
			if v != "" {
				vs = append(vs, v)
			}
		}
		if name != "" && len(vs) > 0 {
			out = append(out, saml.Attribute{Name: name, NameFormat: format, Values: vs})
		}
	}
	return out
}

// errorStatus maps why a login did not succeed to the SAML status the SP receives.
func errorStatus(reason string) (string, string) {
	switch reason {
	case authn.ReasonSuspended, authn.ReasonReported:
		return saml.StatusRequester, saml.StatusRequestDenied
	case authn.ReasonSubjectMismatch:
		return saml.StatusRequester, saml.StatusUnknownPrincipal
	default:
		return saml.StatusResponder, saml.StatusAuthnFailed
	}
}

// samlValue base64-encodes a message for an HTTP-POST form (saml-bindings §3.5.4).
func samlValue(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// acsOrigin is the scheme://host of the ACS URL, for the page's form-action policy.
func acsOrigin(acs string) string {
	u, err := url.Parse(acs)
	if err != nil {
		return "'none'"
	}
	return u.Scheme + "://" + u.Host
}
