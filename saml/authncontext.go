package saml

import "slices"

// How Passport's authentication (AuthnContextMobileOneFactorUnregistered:
// approval on an enrolled phone whose key signs it) ranks against the classes
// of saml-authn-context §3.4, for RequestedAuthnContext comparisons
// (saml-core §3.3.2.2.1). The standard defines no order; this is the one
// Passport answers by. Classes in neither list are not comparable, so a
// "minimum", "maximum" or "better" naming only such classes cannot be met.
var (
	// weakerClasses prove less than possession of an enrolled device key.
	weakerClasses = []string{
		"urn:oasis:names:tc:SAML:2.0:ac:classes:InternetProtocol",
		"urn:oasis:names:tc:SAML:2.0:ac:classes:InternetProtocolPassword",
		"urn:oasis:names:tc:SAML:2.0:ac:classes:Password",
		"urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
		"urn:oasis:names:tc:SAML:2.0:ac:classes:PreviousSession",
	}
	// strongerClasses prove more: two factors, or a key in dedicated hardware.
	strongerClasses = []string{
		"urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorUnregistered",
		"urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorContract",
		"urn:oasis:names:tc:SAML:2.0:ac:classes:Smartcard",
		"urn:oasis:names:tc:SAML:2.0:ac:classes:SmartcardPKI",
		"urn:oasis:names:tc:SAML:2.0:ac:classes:TimeSyncToken",
	}
)

// Choose returns the authentication context class to state for an
// authentication of class ours under this requirement, or false when the
// requirement cannot be met (answer Responder/NoAuthnContext):
//
//   - exact: ours must be listed; a list holding "unspecified" is met by
//     stating "unspecified";
//   - minimum: ours is listed, or a weaker class is;
//   - better: every listed class is weaker;
//   - maximum: ours is listed, or a stronger class is.
//
// Declaration references (AuthnContextDeclRef) are never met: Passport
// publishes no authentication context declarations. A nil requirement is met
// by ours.
func (rc *RequestedAuthnContext) Choose(ours string) (string, bool) {
	if rc == nil {
		return ours, true
	}
	if len(rc.DeclRefs) > 0 {
		return "", false
	}
	listed := slices.Contains(rc.ClassRefs, ours)
	anyIn := func(set []string) bool {
		return slices.ContainsFunc(rc.ClassRefs, func(c string) bool { return slices.Contains(set, c) })
	}
	switch rc.Comparison {
	case "minimum":
		if listed || anyIn(weakerClasses) {
			return ours, true
		}
	case "better":
		if !slices.ContainsFunc(rc.ClassRefs, func(c string) bool { return !slices.Contains(weakerClasses, c) }) {
			return ours, true
		}
	case "maximum":
		if listed || anyIn(strongerClasses) {
			return ours, true
		}
	default: // exact
		if listed {
			return ours, true
		}
		if slices.Contains(rc.ClassRefs, AuthnContextUnspecified) {
			return AuthnContextUnspecified, true
		}
	}
	return "", false
}
