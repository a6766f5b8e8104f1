package saml

import "fmt"

// Error codes carried by *Error. They are stable identifiers that callers may
// map to HTTP statuses or SAML status codes.
const (
	// Binding level (saml-bindings §3.4, §3.5).
	CodeMissingParameter   = "missing_parameter"   // the SAMLRequest/SAMLResponse parameter is absent or empty
	CodeDuplicateParameter = "duplicate_parameter" // a binding parameter appears more than once
	CodeMalformedQuery     = "malformed_query"     // the query string cannot be percent-decoded
	CodeMalformedBase64    = "malformed_base64"    // a parameter is not valid base64
	CodeNotDeflated        = "not_deflated"        // an HTTP-Redirect message is not raw DEFLATE data
	CodeTooLarge           = "message_too_large"   // a message, RelayState or metadata document is over its limit
	CodeMalformedXML       = "malformed_xml"       // not well-formed, not round-trippable, or has a DTD

	// Message level (saml-core §3.2.1, §3.4.1, §3.7.1).
	CodeMalformedRequest    = "malformed_request"     // well-formed XML that is not a usable AuthnRequest or LogoutRequest
	CodeDuplicateElement    = "duplicate_element"     // an element that may appear once appears twice
	CodeVersionMismatch     = "version_mismatch"      // Version is not "2.0"
	CodeMissingID           = "missing_id"            // ID is absent or not an xs:ID (NCName)
	CodeIssuerMismatch      = "issuer_mismatch"       // Issuer is absent or not the registered SP entity ID
	CodeACSMismatch         = "acs_mismatch"          // AssertionConsumerServiceURL is not the registered ACS URL
	CodeDestinationMismatch = "destination_mismatch"  // Destination is not this SSO endpoint
	CodeMissingIssueInstant = "missing_issue_instant" // IssueInstant is absent
	CodeRequestExpired      = "request_expired"       // IssueInstant is too old, or a LogoutRequest's NotOnOrAfter has passed
	CodeRequestFromFuture   = "request_from_future"   // IssueInstant is ahead of our clock beyond the skew
	CodeUnsupportedBinding  = "unsupported_binding"   // ProtocolBinding asks for something other than HTTP-POST

	// SP metadata (saml-metadata §2.3, §2.4.4).
	CodeMalformedMetadata = "malformed_metadata" // well-formed XML that is not usable SAML 2.0 SP metadata
	CodeNoSPDescriptor    = "no_sp_descriptor"   // no SPSSODescriptor supporting SAML 2.0
	CodeSeveralSPs        = "several_sps"        // more than one SAML 2.0 service provider in the document

	// Signatures (xmldsig-core; saml-bindings §3.4.4.1).
	CodeSignatureMissing     = "signature_missing"     // a signature is required and there is none
	CodeSignatureInvalid     = "signature_invalid"     // the signature does not verify or does not cover the message
	CodeUnsupportedAlgorithm = "unsupported_algorithm" // SHA-1 (when not allowed) or an unknown algorithm
)

// Error is the typed error of this package. Code is one of the Code*
// constants; Message is a short English sentence that is safe to show to end
// users: it never carries internals such as key material, stack traces or
// signature-verification detail. Err, when set, holds that detail for logs.
type Error struct {
	Code    string
	Message string
	Err     error
}

// Error implements error. It includes the wrapped detail, so log it, but show
// users only Message.
func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("saml: %s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("saml: %s: %s", e.Code, e.Message)
}

// Unwrap returns the internal detail, if any.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is an *Error with the same Code, so that
// errors.Is(err, &saml.Error{Code: saml.CodeTooLarge}) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

func newError(code, msg string, err error) *Error {
	return &Error{Code: code, Message: msg, Err: err}
}
