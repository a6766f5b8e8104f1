// Package saml is Passport's pure SAML 2.0 Identity Provider protocol layer:
// it decodes the HTTP-Redirect and HTTP-POST bindings, parses, verifies and
// validates AuthnRequests and LogoutRequests, builds signed (optionally
// encrypted) Responses, error Responses, LogoutRequests and LogoutResponses,
// encodes signed HTTP-Redirect URLs, writes IdP metadata and reads SP
// metadata.
//
// It knows nothing of HTTP frameworks, storage or login state: callers hand it
// bytes and get bytes back. Clock, randomness and keys are fields of
// IdentityProvider so that tests can freeze them and output is byte-stable
// (encrypted assertions excepted: their keys always come from crypto/rand).
//
// References in doc comments name the OASIS SAML 2.0 specifications:
// saml-core (core), saml-bindings (bindings), saml-profiles (profiles) and
// saml-metadata (metadata), plus xmldsig-core for XML signatures and
// xmlenc-core1 for XML encryption.
package saml

// XML namespaces (saml-core §1.2).
const (
	NamespaceProtocol  = "urn:oasis:names:tc:SAML:2.0:protocol"
	NamespaceAssertion = "urn:oasis:names:tc:SAML:2.0:assertion"
	NamespaceMetadata  = "urn:oasis:names:tc:SAML:2.0:metadata"
	NamespaceDSig      = "http://www.w3.org/2000/09/xmldsig#"
	NamespaceXS        = "http://www.w3.org/2001/XMLSchema"
	NamespaceXSI       = "http://www.w3.org/2001/XMLSchema-instance"
)

// Binding URNs (saml-bindings §3.4, §3.5).
const (
	BindingRedirect = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
	BindingPOST     = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
)

// Top-level and second-level status codes (saml-core §3.2.2.2).
const (
	StatusSuccess             = "urn:oasis:names:tc:SAML:2.0:status:Success"
	StatusRequester           = "urn:oasis:names:tc:SAML:2.0:status:Requester"
	StatusResponder           = "urn:oasis:names:tc:SAML:2.0:status:Responder"
	StatusVersionMismatch     = "urn:oasis:names:tc:SAML:2.0:status:VersionMismatch"
	StatusAuthnFailed         = "urn:oasis:names:tc:SAML:2.0:status:AuthnFailed"
	StatusRequestDenied       = "urn:oasis:names:tc:SAML:2.0:status:RequestDenied"
	StatusNoPassive           = "urn:oasis:names:tc:SAML:2.0:status:NoPassive"
	StatusInvalidNameIDPolicy = "urn:oasis:names:tc:SAML:2.0:status:InvalidNameIDPolicy"
	StatusRequestUnsupported  = "urn:oasis:names:tc:SAML:2.0:status:RequestUnsupported"
	StatusNoAuthnContext      = "urn:oasis:names:tc:SAML:2.0:status:NoAuthnContext"
	StatusUnknownPrincipal    = "urn:oasis:names:tc:SAML:2.0:status:UnknownPrincipal"
	// StatusPartialLogout says a LogoutResponse's sender could not end every
	// session it propagated the logout to (saml-core §3.2.2.2, §3.7.3.2).
	StatusPartialLogout = "urn:oasis:names:tc:SAML:2.0:status:PartialLogout"
)

// NameID formats (saml-core §8.3).
const (
	NameIDFormatEmailAddress = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
	NameIDFormatPersistent   = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
	NameIDFormatTransient    = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
	NameIDFormatUnspecified  = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
	// NameIDFormatEntity is the format of an Issuer naming a SAML entity (saml-core §8.3.6).
	NameIDFormatEntity = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"
)

// Authentication context classes (saml-authn-context §3.4).
const (
	// AuthnContextMobileOneFactorUnregistered is Passport's default class:
	// the user is authenticated by possession of an enrolled phone whose
	// device key signs the approval (one factor: something you have). The
	// server cannot see whether the phone also demanded a PIN or biometric,
	// so the two-factor classes would overclaim; enrollment is by e-mailed
	// invitation or code, not a mobile-operator contract, hence
	// "Unregistered" rather than "Contract".
	AuthnContextMobileOneFactorUnregistered = "urn:oasis:names:tc:SAML:2.0:ac:classes:MobileOneFactorUnregistered"
	// AuthnContextUnspecified says nothing about how the user authenticated.
	AuthnContextUnspecified = "urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified"
)

// Subject confirmation method for Web Browser SSO (saml-profiles §3.3, §4.1.4.2).
const ConfirmationMethodBearer = "urn:oasis:names:tc:SAML:2.0:cm:bearer"

// Attribute name formats (saml-core §8.2).
const (
	AttrNameFormatBasic       = "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"
	AttrNameFormatURI         = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
	AttrNameFormatUnspecified = "urn:oasis:names:tc:SAML:2.0:attrname-format:unspecified"
)
