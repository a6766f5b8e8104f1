package sso

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/saml"
)

// nameIDFormats maps an application's NameID format setting to its URN (saml-core §8.3).
var nameIDFormats = map[string]string{
	authn.NameIDEmail:       saml.NameIDFormatEmailAddress,
	authn.NameIDPersistent:  saml.NameIDFormatPersistent,
	authn.NameIDTransient:   saml.NameIDFormatTransient,
	authn.NameIDUnspecified: saml.NameIDFormatUnspecified,
}

// errSubjectMismatch: the user who signed in is not the one the request named.
var errSubjectMismatch = errors.New("sso: not the subject the request named")

// errNotAllowed: the user is in none of the application's allowed groups.
var errNotAllowed = errors.New("sso: the user may not use this application")

// respond makes (once) or shows again the Response of an approved login l of app (see authn.Logins.Respond),
// returning the answered login and, when the approval opened an IdP session, its cookie value.
func (p *IdP) respond(ctx context.Context, app authn.App, l authn.Login) (authn.Login, string, error) {
	return p.svc.Logins.Respond(ctx, l,
		func(l authn.Login) (authn.SessionApp, error) { return p.told(app, l) },
		func(l authn.Login, u authn.User, told authn.SessionApp) ([]byte, error) {
			return p.buildResponse(app, l, u, told)
		})
}

// answerPost is the form carrying an answered login's Response to the application.
func answerPost(app authn.App, l authn.Login) *Post {
	return &Post{ACS: acsFor(app, l), Response: l.Response, RelayState: l.RelayState}
}

// told is what the Response for login l of app will tell the application of its user, recorded in the IdP
// session for single logout: the NameID, which the login's email decides (the user's record is not needed).
func (p *IdP) told(app authn.App, l authn.Login) (authn.SessionApp, error) {
	nameID, format, err := p.nameID(app, l.Email)
	if err != nil {
		return authn.SessionApp{}, err
	}
	return authn.SessionApp{AppID: app.ID, NameID: nameID, NameIDFormat: format}, nil
}

// buildResponse makes the signed Response for an approved login, for user u, naming the subject as told says.
// Validity windows count from now, the moment the Response is issued, so a slow approval never yields an
// assertion that is already expiring.
func (p *IdP) buildResponse(app authn.App, l authn.Login, u authn.User, told authn.SessionApp) ([]byte, error) {
	if app.ACSURL == "" || app.Audience == "" {
		return nil, errors.New("sso: application lost its ACS URL or audience")
	}
	if u.Email != l.Email || told.AppID != app.ID { // the user read by the login's email, told made for this app
		return nil, fmt.Errorf("sso: login %s: user %q or application %q is not the login's", l.ID, u.Email, told.AppID)
	}
	if !p.subjectMatches(app, l.Subject, u.Email) {
		return nil, errSubjectMismatch
	}
	if !app.Allowed(u) { // checked again as the Response is made: groups may have changed since
		return nil, errNotAllowed
	}
	signing, err := saml.ParseSigning(app.Sign)
	if err != nil {
		return nil, fmt.Errorf("sso: app %s: %w", app.ID, err)
	}
	sess := authn.Session{ID: l.SessionID}
	var encryptTo *x509.Certificate
	if app.EncryptAssertions {
		if encryptTo, err = authn.ParseCertificatePEM(app.EncryptionCertificate); err != nil {
			return nil, fmt.Errorf("sso: encryption certificate of app %s: %w", app.ID, err)
		}
	}
	resp, err := p.saml().MakeResponse(saml.ResponseParams{
		InResponseTo: l.RequestID,
		EncryptTo:    encryptTo,
		Destination:  acsFor(app, l),
		Audience:     app.Audience,
		NameID:       told.NameID,
		NameIDFormat: told.NameIDFormat,
		SessionIndex: sess.SessionIndex(),
		AuthnInstant: l.DecidedAt,
		Attributes:   Attributes(app, u),
		// The context class chosen for the request's RequestedAuthnContext; empty: Passport's own.
		AuthnContextClassRef: l.AuthnContext,
		Signing:              signing,
	})
	return resp, err
}

// nameID is what the application is told the user is called, per its NameID format (saml-core §8.3).
func (p *IdP) nameID(app authn.App, email string) (string, string, error) {
	switch app.NameIDFormat {
	case authn.NameIDPersistent:
		return saml.PersistentID(p.persistentSecret, app.ID, email), saml.NameIDFormatPersistent, nil
	case authn.NameIDTransient:
		id, err := p.saml().NewID()
		return id, saml.NameIDFormatTransient, err
	case authn.NameIDUnspecified:
		return email, saml.NameIDFormatUnspecified, nil
	default:
		return email, saml.NameIDFormatEmailAddress, nil
	}
}

// profiles name the user's fields as attributes (saml-core §2.7.3): the default uses plain names, the
// Atlassian preset the claim URIs Atlassian reads.
var profiles = map[string]struct {
	format string
	names  map[string]string
}{
	authn.ProfileDefault: {saml.AttrNameFormatBasic, map[string]string{ // the fields' own names
		authn.FieldEmail: authn.FieldEmail, authn.FieldGivenName: authn.FieldGivenName, authn.FieldFamilyName: authn.FieldFamilyName,
		authn.FieldDisplayName: authn.FieldDisplayName, authn.FieldGroups: authn.FieldGroups}},
	authn.ProfileAtlassian: {saml.AttrNameFormatURI, map[string]string{
		authn.FieldEmail:       "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
		authn.FieldGivenName:   "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname",
		authn.FieldFamilyName:  "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname",
		authn.FieldDisplayName: "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"}},
}

// Attributes maps the user's fields to the application's attribute names: its profile's, renamed by its
// attribute map. A field without a value, or mapped to "", is not sent.
func Attributes(app authn.App, u authn.User) []saml.Attribute {
	display := u.DisplayName
	if display == "" && (u.GivenName != "" || u.FamilyName != "") {
		display = strings.TrimSpace(u.GivenName + " " + u.FamilyName)
	}
	values := map[string][]string{
		authn.FieldEmail: {u.Email}, authn.FieldGivenName: {u.GivenName}, authn.FieldFamilyName: {u.FamilyName},
		authn.FieldDisplayName: {display}, authn.FieldGroups: u.Groups,
	}
	prof, ok := profiles[app.AttributeProfile]
	if !ok {
		prof = profiles[authn.ProfileDefault]
	}
	var out []saml.Attribute
	for _, field := range authn.UserFields {
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

// acsFor is where a login's Response goes: the ACS URL its request chose, else the application's default.
func acsFor(app authn.App, l authn.Login) string {
	if l.ACSURL != "" {
		return l.ACSURL
	}
	return app.ACSURL
}

// spCertificates parses an application's SP certificates (validated when stored).
func spCertificates(a authn.App) []*x509.Certificate {
	var out []*x509.Certificate
	for _, pemText := range a.SPCertificates {
		if c, err := authn.ParseCertificatePEM(pemText); err == nil {
			out = append(out, c)
		}
	}
	return out
}
