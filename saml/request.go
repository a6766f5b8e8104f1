package saml

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/beevik/etree"
)

// maxNameIDLength bounds the NameID a request's Subject names; it is kept with the parked login.
const maxNameIDLength = 1024

// maxIDLength bounds request IDs; they are echoed in InResponseTo and kept
// for replay detection.
const maxIDLength = 256

// AuthnRequest is the part of a <samlp:AuthnRequest> (saml-core §3.4.1) the
// IdP acts on. Absent attributes are zero values.
type AuthnRequest struct {
	ID, Version, Destination, AssertionConsumerServiceURL, ProtocolBinding, Issuer string
	IssueInstant                                                                   time.Time
	ForceAuthn, IsPassive                                                          bool
	AssertionConsumerServiceIndex                                                  *int
	NameIDPolicyFormat                                                             string
	AllowCreate                                                                    bool
	// Signed reports that an enveloped ds:Signature was present (or, from
	// ReadAuthnRequest, that a signature was present and verified).
	Signed bool
	// Subject is the principal the request is about (saml-core §3.4.1: the
	// assertions MUST be about a subject that strongly matches it); nil when
	// the request names none.
	Subject *NameID
	// RequestedAuthnContext is what the SP requires of the authentication
	// (saml-core §3.3.2.2.1); nil when it requires nothing.
	RequestedAuthnContext *RequestedAuthnContext
}

// NameID is a saml:NameID: a value in a format (empty: unspecified).
type NameID struct{ Value, Format string }

// RequestedAuthnContext is a samlp:RequestedAuthnContext: how the
// authentication must compare ("exact", "minimum", "maximum" or "better")
// with the classes or declarations listed.
type RequestedAuthnContext struct {
	Comparison string
	ClassRefs  []string
	DeclRefs   []string
}

// ParseAuthnRequest parses an AuthnRequest after the CheckXML checks. It does
// not verify signatures nor judge values against what the IdP expects: see
// VerifyPOSTSignature, VerifyRedirectSignature and ValidateAuthnRequest, or
// ReadAuthnRequest, which runs them all.
//
// Refused with *Error: a root other than samlp:AuthnRequest, an Issuer that
// holds anything but text (a comment inside an Issuer is the classic way to
// make a naive parser read a different value than the signer signed),
// malformed xs:boolean / xs:dateTime / index attributes (malformed_request);
// two Issuer, NameIDPolicy, Signature, Subject, Conditions,
// RequestedAuthnContext, Scoping or Extensions elements (duplicate_element,
// saml-core §3.4.1 allows each at most once).
func ParseAuthnRequest(xml []byte) (*AuthnRequest, error) {
	doc, err := parseXML(xml)
	if err != nil {
		return nil, err
	}
	return ParseAuthnRequestElement(doc.Root())
}

// ParseAuthnRequestElement is ParseAuthnRequest for an already parsed
// element, such as the verified root VerifyPOSTSignature returns.
func ParseAuthnRequestElement(el *etree.Element) (*AuthnRequest, error) {
	if el == nil || el.Tag != "AuthnRequest" || el.NamespaceURI() != NamespaceProtocol {
		return nil, newError(CodeMalformedRequest, "The SAML message is not an AuthnRequest.", nil)
	}
	r, err := readAuthnRequestAttrs(el)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, c := range el.ChildElements() {
		if err := r.readChild(c, seen); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// readAuthnRequestAttrs reads the attributes of an AuthnRequest (saml-core
// §3.2.1, §3.4.1).
func readAuthnRequestAttrs(el *etree.Element) (*AuthnRequest, error) {
	r := &AuthnRequest{
		ID:                          attr(el, "ID"),
		Version:                     attr(el, "Version"),
		Destination:                 attr(el, "Destination"),
		AssertionConsumerServiceURL: attr(el, "AssertionConsumerServiceURL"),
		ProtocolBinding:             attr(el, "ProtocolBinding"),
	}
	var err error
	if v, ok := attrOK(el, "IssueInstant"); ok {
		if r.IssueInstant, err = parseDateTime(v); err != nil {
			return nil, newError(CodeMalformedRequest, "The AuthnRequest's IssueInstant is not a valid time.", err)
		}
	}
	if r.ForceAuthn, err = boolAttr(el, "ForceAuthn"); err != nil {
		return nil, err
	}
	if r.IsPassive, err = boolAttr(el, "IsPassive"); err != nil {
		return nil, err
	}
	if v, ok := attrOK(el, "AssertionConsumerServiceIndex"); ok {
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 16)
		if err != nil {
			return nil, newError(CodeMalformedRequest, "The AuthnRequest's AssertionConsumerServiceIndex is not valid.", err)
		}
		i := int(n)
		r.AssertionConsumerServiceIndex = &i
	}
	return r, nil
}

// authnRequestOnce are the children saml-core §3.4.1 allows an AuthnRequest
// at most once, by namespace and local name.
var authnRequestOnce = map[string]bool{
	NamespaceAssertion + " Issuer": true, NamespaceDSig + " Signature": true,
	NamespaceProtocol + " NameIDPolicy": true, NamespaceProtocol + " Extensions": true,
	NamespaceAssertion + " Subject": true, NamespaceAssertion + " Conditions": true,
	NamespaceProtocol + " RequestedAuthnContext": true, NamespaceProtocol + " Scoping": true,
}

// readChild reads one child element of an AuthnRequest into r; seen holds
// the once-only children met so far.
func (r *AuthnRequest) readChild(c *etree.Element, seen map[string]bool) error {
	key := c.NamespaceURI() + " " + c.Tag
	if authnRequestOnce[key] {
		if seen[key] {
			return newError(CodeDuplicateElement, "The AuthnRequest repeats an element that may appear only once.", errors.New(c.Tag))
		}
		seen[key] = true
	}
	var err error
	switch key {
	case NamespaceAssertion + " Issuer":
		r.Issuer, err = readRequestIssuer(c, "AuthnRequest")
	case NamespaceDSig + " Signature":
		r.Signed = true
	case NamespaceProtocol + " NameIDPolicy":
		r.NameIDPolicyFormat = attr(c, "Format")
		r.AllowCreate, err = boolAttr(c, "AllowCreate")
	case NamespaceAssertion + " Subject":
		r.Subject, err = parseRequestSubject(c)
	case NamespaceProtocol + " RequestedAuthnContext":
		r.RequestedAuthnContext, err = parseRequestedAuthnContext(c)
	}
	return err
}

// readRequestIssuer reads the Issuer of a request, what names it in errors
// ("AuthnRequest"): text only, and in the entity format if it names one
// (saml-profiles §4.1.4.1, §4.4.4.1).
func readRequestIssuer(c *etree.Element, what string) (string, error) {
	issuer, err := textOnly(c)
	if err != nil {
		return "", newError(CodeMalformedRequest, "The "+what+"'s Issuer is malformed.", err)
	}
	if f, ok := attrOK(c, "Format"); ok && f != NameIDFormatEntity {
		return "", newError(CodeMalformedRequest, "The "+what+"'s Issuer is malformed.", fmt.Errorf("issuer format %q", f))
	}
	return issuer, nil
}

// parseRequestSubject reads the NameID of an AuthnRequest's Subject. A
// Subject Passport cannot compare — a BaseID, an EncryptedID, two
// identifiers — is refused rather than ignored, since the answer must match
// it. A Subject with no identifier at all names nobody: nil.
func parseRequestSubject(el *etree.Element) (*NameID, error) {
	var id *NameID
	for _, c := range el.ChildElements() {
		if c.NamespaceURI() != NamespaceAssertion || c.Tag == "SubjectConfirmation" {
			continue
		}
		if c.Tag != "NameID" || id != nil {
			return nil, newError(CodeMalformedRequest, "The AuthnRequest names its subject in a way this identity provider cannot match (only one plain NameID is supported).", fmt.Errorf("subject %s", c.Tag))
		}
		v, err := textOnly(c)
		if err != nil || v == "" || len(v) > maxNameIDLength {
			return nil, newError(CodeMalformedRequest, "The AuthnRequest's Subject NameID is malformed.", err)
		}
		id = &NameID{Value: v, Format: attr(c, "Format")}
	}
	return id, nil
}

// parseRequestedAuthnContext reads a samlp:RequestedAuthnContext.
func parseRequestedAuthnContext(el *etree.Element) (*RequestedAuthnContext, error) {
	rc := &RequestedAuthnContext{Comparison: "exact"}
	if v, ok := attrOK(el, "Comparison"); ok {
		switch v {
		case "exact", "minimum", "maximum", "better":
			rc.Comparison = v
		default:
			return nil, newError(CodeMalformedRequest, "The AuthnRequest's RequestedAuthnContext has an unknown Comparison.", fmt.Errorf("comparison %q", v))
		}
	}
	for _, c := range el.ChildElements() {
		if c.NamespaceURI() != NamespaceAssertion {
			continue
		}
		v, err := textOnly(c)
		if err != nil || v == "" {
			return nil, newError(CodeMalformedRequest, "The AuthnRequest's RequestedAuthnContext is malformed.", err)
		}
		switch c.Tag {
		case "AuthnContextClassRef":
			rc.ClassRefs = append(rc.ClassRefs, v)
		case "AuthnContextDeclRef":
			rc.DeclRefs = append(rc.DeclRefs, v)
		}
	}
	if len(rc.ClassRefs) == 0 && len(rc.DeclRefs) == 0 {
		return nil, newError(CodeMalformedRequest, "The AuthnRequest's RequestedAuthnContext lists no context.", nil)
	}
	return rc, nil
}

// RequestCheck is what ValidateAuthnRequest compares a request against: the
// application's registration and this endpoint.
type RequestCheck struct {
	Audience string // the app's SP entity ID: Issuer must equal it exactly
	ACSURL   string // registered ACS URL: AssertionConsumerServiceURL, when present, must equal it or one of ACSURLs exactly
	// ACSURLs are further registered ACS URLs (an SP whose metadata lists
	// several endpoints). An AssertionConsumerServiceIndex is not looked up
	// here: the caller resolves it against the SP's metadata itself.
	ACSURLs []string
	SSOURL  string // this endpoint: Destination, when present, must equal it exactly
}

// acsAllowed reports whether acs is one of the registered ACS URLs, compared
// verbatim (saml-core §3.4.1: the URL is a reference the IdP must check, not
// a string to normalise).
func (c RequestCheck) acsAllowed(acs string) bool {
	if acs == c.ACSURL {
		return true
	}
	for _, u := range c.ACSURLs {
		if acs == u {
			return true
		}
	}
	return false
}

// ValidateAuthnRequest checks r against the rules of saml-core §3.2.1 and
// §3.4.1 and the Web Browser SSO profile (saml-profiles §4.1.4.1), returning
// the first failure as an *Error:
//
//   - version_mismatch: Version is not "2.0" (saml-core §3.2.1, §4.1.2);
//   - missing_id: ID is empty or not an xs:ID (an NCName) (saml-core §1.3.4);
//   - missing_issue_instant, request_expired, request_from_future: IssueInstant
//     is absent or outside [now-RequestMaxAge-ClockSkew, now+ClockSkew];
//   - issuer_mismatch: Issuer is absent (saml-profiles §4.1.4.1 requires it) or
//     not exactly c.Audience;
//   - destination_mismatch: Destination is present and not exactly c.SSOURL
//     (saml-core §3.2.1), or absent from a signed request (saml-bindings
//     §3.4.5.2, §3.5.5.2: a signed message MUST name where it is going, so
//     that it cannot be replayed at another endpoint);
//   - acs_mismatch: AssertionConsumerServiceURL is present and neither
//     c.ACSURL nor one of c.ACSURLs, compared exactly (the IdP must not send
//     assertions to unregistered endpoints, saml-core §3.4.1,
//     saml-profiles §4.1.4.1);
//   - unsupported_binding: ProtocolBinding is present and not HTTP-POST, the
//     only binding Passport answers with.
//
// Signatures are not checked here.
func (idp *IdentityProvider) ValidateAuthnRequest(r *AuthnRequest, c RequestCheck) error {
	if err := idp.checkRequestHeader(r.Version, r.ID, r.IssueInstant); err != nil {
		return err
	}
	if r.Issuer == "" || r.Issuer != c.Audience {
		return newError(CodeIssuerMismatch, "The request does not come from the service provider registered for this application.",
			fmt.Errorf("issuer %q, want %q", r.Issuer, c.Audience))
	}
	if err := checkDestination(r.Destination, c.SSOURL, r.Signed, "The request"); err != nil {
		return err
	}
	if r.AssertionConsumerServiceURL != "" && !c.acsAllowed(r.AssertionConsumerServiceURL) {
		return newError(CodeACSMismatch, "The request asks for a response at an address that is not registered for this application.",
			fmt.Errorf("acs %q, want %q or one of %q", r.AssertionConsumerServiceURL, c.ACSURL, c.ACSURLs))
	}
	if r.ProtocolBinding != "" && r.ProtocolBinding != BindingPOST {
		return newError(CodeUnsupportedBinding, "The request asks for a response binding this identity provider does not support.",
			fmt.Errorf("binding %q", r.ProtocolBinding))
	}
	return nil
}

// checkDestination checks a request's Destination against endpoint: equal
// when present, and present when the request is signed. what names the
// request in the message ("The request").
func checkDestination(dest, endpoint string, signed bool, what string) error {
	switch {
	case dest == "" && signed:
		return newError(CodeDestinationMismatch, what+" is signed but does not say which endpoint it is addressed to.",
			errors.New("signed request without Destination"))
	case dest != "" && dest != endpoint:
		return newError(CodeDestinationMismatch, what+" was addressed to a different endpoint.",
			fmt.Errorf("destination %q, want %q", dest, endpoint))
	}
	return nil
}

// checkRequestHeader checks what every request carries (saml-core §3.2.1):
// Version 2.0, an xs:ID and an IssueInstant within
// [now-RequestMaxAge-ClockSkew, now+ClockSkew].
func (idp *IdentityProvider) checkRequestHeader(version, id string, issued time.Time) error {
	if version != "2.0" {
		return newError(CodeVersionMismatch, "The request is not a SAML 2.0 request.", fmt.Errorf("version %q", version))
	}
	if !isNCName(id) || len(id) > maxIDLength {
		return newError(CodeMissingID, "The request has no valid ID.", nil)
	}
	if issued.IsZero() {
		return newError(CodeMissingIssueInstant, "The request has no IssueInstant.", nil)
	}
	now := idp.now()
	if issued.Before(now.Add(-idp.requestMaxAge() - idp.clockSkew())) {
		return newError(CodeRequestExpired, "The request has expired; check the service provider's clock and try again.",
			fmt.Errorf("issued %s, now %s", issued.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339)))
	}
	if issued.After(now.Add(idp.clockSkew())) {
		return newError(CodeRequestFromFuture, "The request is dated in the future; check the service provider's clock.",
			fmt.Errorf("issued %s, now %s", issued.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339)))
	}
	return nil
}

// SignaturePolicy says how ReadAuthnRequest treats request signatures.
type SignaturePolicy struct {
	// Certificates are the SP's signing certificates. Their validity dates
	// are ignored: they are pinned keys (as in saml-metadata-iop).
	Certificates []*x509.Certificate
	// Require refuses unsigned requests (signature_missing).
	Require bool
	// AllowSHA1 accepts SHA-1 based signature and digest algorithms.
	AllowSHA1 bool
}

// ReadAuthnRequest runs the whole inbound pipeline on a decoded message:
// parse (ParseAuthnRequest, on the raw XML so that hostile structure is seen
// before canonicalization hides it); verify the signature when one is
// present and certificates are configured, or when p.Require is set — for
// HTTP-Redirect the query signature (VerifyRedirectSignature), for HTTP-POST
// the enveloped one (VerifyPOSTSignature), after which the request is parsed
// again from the verified element only; then ValidateAuthnRequest.
//
// For HTTP-Redirect the query signature is verified; a request without one
// but with an enveloped XML signature (which saml-bindings §3.4.4.1 says
// should have been removed, but some SPs send) has that one verified. The returned
// request's Signed is true only when a signature was verified.
func (idp *IdentityProvider) ReadAuthnRequest(m *InboundMessage, c RequestCheck, p SignaturePolicy) (*AuthnRequest, error) {
	root, err := m.root()
	if err != nil {
		return nil, err
	}
	r, err := ParseAuthnRequestElement(root)
	if err != nil {
		return nil, err
	}
	enveloped := r.Signed
	r.Signed = false
	if p.Require || len(p.Certificates) > 0 {
		verified, signed, err := verifyInbound(m, root, enveloped, p)
		if err != nil {
			return nil, err
		}
		if verified != root { // an enveloped signature: read only what it covers
			if r, err = ParseAuthnRequestElement(verified); err != nil {
				return nil, err
			}
		}
		r.Signed = signed
	} else if err := checkBinding(m); err != nil {
		return nil, err
	}
	if p.Require && !r.Signed {
		return nil, newError(CodeSignatureMissing, "The request must be signed.", nil)
	}
	if err := idp.ValidateAuthnRequest(r, c); err != nil {
		return nil, err
	}
	return r, nil
}

// checkBinding refuses a message that came by neither HTTP-Redirect nor HTTP-POST.
func checkBinding(m *InboundMessage) error {
	if m.Binding != BindingRedirect && m.Binding != BindingPOST {
		return newError(CodeUnsupportedBinding, "The request came by an unsupported binding.", fmt.Errorf("binding %q", m.Binding))
	}
	return nil
}

// verifyInbound checks the signature of an inbound request whose parsed root is root, and returns the
// element to read the request from and whether it was signed. A query signature (HTTP-Redirect,
// saml-bindings §3.4.4.1) covers the message as decoded: root. An enveloped ds:Signature — HTTP-POST, or
// deflated into a redirect query, as some SPs (gosaml2 among them) do although the binding wants it removed
// (DEFLATE is lossless, so it still verifies) — yields the verified element, never the unsigned rest. A
// message with neither is returned unsigned; a signature that does not verify is an error. enveloped says
// to look for an enveloped signature (the parsed root has a ds:Signature child, or the caller requires
// one: VerifyPOSTSignature then tells a missing signature from a misplaced one).
func verifyInbound(m *InboundMessage, root *etree.Element, enveloped bool, p SignaturePolicy) (*etree.Element, bool, error) {
	if err := checkBinding(m); err != nil {
		return nil, false, err
	}
	switch {
	case m.Binding == BindingRedirect && len(m.Signature) > 0:
		if err := VerifyRedirectSignature(m, p.Certificates, p.AllowSHA1); err != nil {
			return nil, false, err
		}
		return root, true, nil
	case enveloped:
		verified, err := VerifyPOSTSignature(m.XML, p.Certificates, p.AllowSHA1)
		return verified, err == nil, err
	default:
		return root, false, nil
	}
}

// attrOK returns the value of the unqualified attribute key.
func attrOK(el *etree.Element, key string) (string, bool) {
	for _, a := range el.Attr {
		if a.Space == "" && a.Key == key {
			return a.Value, true
		}
	}
	return "", false
}

func attr(el *etree.Element, key string) string {
	v, _ := attrOK(el, key)
	return v
}

// boolAttr parses an optional xs:boolean attribute.
func boolAttr(el *etree.Element, key string) (bool, error) {
	v, ok := attrOK(el, key)
	if !ok {
		return false, nil
	}
	b, err := parseBool(key, v)
	if err != nil {
		return false, newError(CodeMalformedRequest, "The request has a malformed attribute.", err)
	}
	return b, nil
}

// parseBool parses the xs:boolean value v of the attribute key.
func parseBool(key, v string) (bool, error) {
	switch strings.TrimSpace(v) {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return false, fmt.Errorf("%s=%q is not an xs:boolean", key, v)
}

// textOnly returns an element's character data, trimmed of XML whitespace,
// refusing child elements, comments and processing instructions.
func textOnly(el *etree.Element) (string, error) {
	var b strings.Builder
	for _, t := range el.Child {
		switch t := t.(type) {
		case *etree.CharData:
			b.WriteString(t.Data)
		default:
			return "", errors.New("element holds more than text")
		}
	}
	return strings.Trim(b.String(), " \t\r\n"), nil
}

// parseDateTime parses an xs:dateTime. SAML times are UTC (saml-core §1.3.3);
// a value without a zone is read as UTC.
func parseDateTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	return time.Parse("2006-01-02T15:04:05.999999999", s)
}

// isNCName reports whether s is an XML NCName (xs:ID's lexical space).
func isNCName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_' || unicode.IsLetter(r):
		case i > 0 && (r == '-' || r == '.' || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r) || unicode.Is(unicode.Mc, r) || r == 0xB7):
		default:
			return false
		}
	}
	return true
}
