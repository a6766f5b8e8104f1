package saml

import (
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/beevik/etree"
)

// maxSessionIndexes bounds the SessionIndex elements read from a
// LogoutRequest; an SP names the one or few sessions it knows.
const maxSessionIndexes = 32

// LogoutRequest is the part of a <samlp:LogoutRequest> (saml-core §3.7.1)
// the IdP acts on. Absent attributes are zero values. The caller ends only
// the sessions of NameID at the issuing SP (those named by SessionIndexes
// when there are any, saml-core §3.7.3.1), and should refuse an ID it has
// seen before, as for AuthnRequests.
type LogoutRequest struct {
	ID, Version, Issuer, Destination, NameID, NameIDFormat string
	IssueInstant, NotOnOrAfter                             time.Time
	SessionIndexes                                         []string
	// Signed reports that an enveloped ds:Signature was present (or, from
	// ReadLogoutRequest, that a signature was present and verified).
	Signed bool
}

// ParseLogoutRequest parses a LogoutRequest after the CheckXML checks. It
// does not verify signatures nor judge values: ReadLogoutRequest does.
//
// Refused with *Error: a root other than samlp:LogoutRequest; an Issuer,
// NameID or SessionIndex holding anything but text, or an Issuer whose
// Format is not entity (saml-profiles §4.4.4.1); a principal named by
// saml:BaseID or saml:EncryptedID rather than saml:NameID, which Passport
// never issues; no NameID; more than maxSessionIndexes SessionIndexes;
// malformed xs:dateTime attributes (all malformed_request); two Issuer,
// Signature, Extensions or identifier elements (duplicate_element,
// saml-core §3.7.1).
func ParseLogoutRequest(xml []byte) (*LogoutRequest, error) {
	doc, err := parseXML(xml)
	if err != nil {
		return nil, err
	}
	return parseLogoutRequestElement(doc.Root())
}

// parseLogoutRequestElement is ParseLogoutRequest for a parsed element.
func parseLogoutRequestElement(el *etree.Element) (*LogoutRequest, error) {
	if el == nil || el.Tag != "LogoutRequest" || el.NamespaceURI() != NamespaceProtocol {
		return nil, newError(CodeMalformedRequest, "The SAML message is not a LogoutRequest.", nil)
	}
	r, err := readLogoutRequestAttrs(el)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, c := range el.ChildElements() {
		if err := r.readChild(c, seen); err != nil {
			return nil, err
		}
	}
	if r.NameID == "" {
		return nil, newError(CodeMalformedRequest, "The LogoutRequest does not name a user.", nil)
	}
	return r, nil
}

// readLogoutRequestAttrs reads the attributes of a LogoutRequest (saml-core
// §3.2.1, §3.7.1).
func readLogoutRequestAttrs(el *etree.Element) (*LogoutRequest, error) {
	r := &LogoutRequest{
		ID:          attr(el, "ID"),
		Version:     attr(el, "Version"),
		Destination: attr(el, "Destination"),
	}
	for _, a := range []struct {
		name string
		t    *time.Time
	}{{"IssueInstant", &r.IssueInstant}, {"NotOnOrAfter", &r.NotOnOrAfter}} {
		if v, ok := attrOK(el, a.name); ok {
			t, err := parseDateTime(v)
			if err != nil {
				return nil, newError(CodeMalformedRequest, "The LogoutRequest's "+a.name+" is not a valid time.", err)
			}
			*a.t = t
		}
	}
	return r, nil
}

// readChild reads one child element of a LogoutRequest into r (saml-core
// §3.7.1: Issuer, Signature and Extensions at most once, exactly one
// identifier); seen holds the once-only children met so far, and the
// identifiers under the key "identifier".
func (r *LogoutRequest) readChild(c *etree.Element, seen map[string]bool) error {
	key := c.NamespaceURI() + " " + c.Tag
	switch key {
	case NamespaceAssertion + " Issuer", NamespaceDSig + " Signature", NamespaceProtocol + " Extensions":
		if seen[key] {
			return newError(CodeDuplicateElement, "The LogoutRequest repeats an element that may appear only once.", errors.New(c.Tag))
		}
		seen[key] = true
	case NamespaceAssertion + " NameID", NamespaceAssertion + " BaseID", NamespaceAssertion + " EncryptedID":
		if seen["identifier"] {
			return newError(CodeDuplicateElement, "The LogoutRequest names more than one user.", errors.New(c.Tag))
		}
		seen["identifier"] = true
	}
	var err error
	switch key {
	case NamespaceAssertion + " Issuer":
		r.Issuer, err = readRequestIssuer(c, "LogoutRequest")
	case NamespaceDSig + " Signature":
		r.Signed = true
	case NamespaceAssertion + " NameID":
		if r.NameID, err = textOnly(c); err != nil {
			return newError(CodeMalformedRequest, "The LogoutRequest's NameID is malformed.", err)
		}
		r.NameIDFormat = attr(c, "Format")
	case NamespaceAssertion + " BaseID", NamespaceAssertion + " EncryptedID":
		return newError(CodeMalformedRequest, "The LogoutRequest identifies the user in a form this identity provider does not issue.", errors.New(c.Tag))
	case NamespaceProtocol + " SessionIndex":
		err = r.addSessionIndex(c)
	}
	return err
}

// addSessionIndex adds a SessionIndex, at most maxSessionIndexes of them.
func (r *LogoutRequest) addSessionIndex(c *etree.Element) error {
	if len(r.SessionIndexes) == maxSessionIndexes {
		return newError(CodeMalformedRequest, "The LogoutRequest names too many sessions.", nil)
	}
	si, err := textOnly(c)
	if err != nil {
		return newError(CodeMalformedRequest, "The LogoutRequest's SessionIndex is malformed.", err)
	}
	r.SessionIndexes = append(r.SessionIndexes, si)
	return nil
}

// LogoutCheck is what ValidateLogoutRequest compares a request against.
type LogoutCheck struct {
	Audience string // the app's SP entity ID: Issuer must equal it exactly
	SLOURL   string // this SLO endpoint: Destination, when present, must equal it exactly
}

// ValidateLogoutRequest checks r against saml-core §3.2.1 and §3.7.1 and the
// Single Logout profile (saml-profiles §4.4.4.1), returning the first failure
// as an *Error: version_mismatch, missing_id, missing_issue_instant,
// request_expired and request_from_future as in ValidateAuthnRequest;
// issuer_mismatch when Issuer is absent (the profile requires it) or not
// exactly c.Audience; destination_mismatch when Destination is present and
// not exactly c.SLOURL, or absent though the request is signed (as for
// AuthnRequests); request_expired when NotOnOrAfter is present and
// now is at or past NotOnOrAfter+ClockSkew. Signatures are not checked here.
func (idp *IdentityProvider) ValidateLogoutRequest(r *LogoutRequest, c LogoutCheck) error {
	if err := idp.checkRequestHeader(r.Version, r.ID, r.IssueInstant); err != nil {
		return err
	}
	if r.Issuer == "" || r.Issuer != c.Audience {
		return newError(CodeIssuerMismatch, "The logout request does not come from the service provider registered for this application.",
			fmt.Errorf("issuer %q, want %q", r.Issuer, c.Audience))
	}
	if err := checkDestination(r.Destination, c.SLOURL, r.Signed, "The logout request"); err != nil {
		return err
	}
	if now := idp.now(); !r.NotOnOrAfter.IsZero() && !now.Before(r.NotOnOrAfter.Add(idp.clockSkew())) {
		return newError(CodeRequestExpired, "The logout request has expired; check the service provider's clock and try again.",
			fmt.Errorf("not on or after %s, now %s", r.NotOnOrAfter.UTC().Format(time.RFC3339), now.Format(time.RFC3339)))
	}
	return nil
}

// ReadLogoutRequest runs the inbound pipeline on a decoded LogoutRequest, as
// ReadAuthnRequest does for AuthnRequests: parse the raw XML; verify the
// signature, which is required whatever p.Require says (saml-profiles
// §4.4.4.1: a LogoutRequest MUST be authenticated, and only a signature
// does that over a front channel) — for HTTP-Redirect the query signature
// (VerifyRedirectSignature; an enveloped signature in the XML is ignored),
// for HTTP-POST the enveloped one (VerifyPOSTSignature), after which the
// request is parsed again from the verified element only; then
// ValidateLogoutRequest.
//
// Errors are *Error: those of ParseLogoutRequest, VerifyRedirectSignature,
// VerifyPOSTSignature (signature_missing for an unsigned request) and
// ValidateLogoutRequest, and unsupported_binding. The returned request has
// Signed set.
func (idp *IdentityProvider) ReadLogoutRequest(m *InboundMessage, c LogoutCheck, p SignaturePolicy) (*LogoutRequest, error) {
	root, err := m.root()
	if err != nil {
		return nil, err
	}
	r, err := parseLogoutRequestElement(root)
	if err != nil {
		return nil, err
	}
	// Always signed: a POSTed one must carry its signature enveloped (VerifyPOSTSignature says what is wrong).
	root, signed, err := verifyInbound(m, root, r.Signed || m.Binding == BindingPOST, p)
	if err != nil {
		return nil, err
	}
	if !signed {
		return nil, newError(CodeSignatureMissing, "The request must be signed.", nil)
	}
	if r, err = parseLogoutRequestElement(root); err != nil {
		return nil, err
	}
	r.Signed = true
	if err := idp.ValidateLogoutRequest(r, c); err != nil {
		return nil, err
	}
	return r, nil
}

// LogoutResponseParams describes a samlp:LogoutResponse (saml-core §3.7.2).
type LogoutResponseParams struct {
	InResponseTo  string // the LogoutRequest's ID; empty only when answering no request
	Destination   string // the SP's SLO response URL, verbatim; required (saml-bindings §3.4.5.2 when signed)
	StatusCode    string // top-level code; default StatusSuccess
	SubStatusCode string // optional second-level code, e.g. StatusPartialLogout
	Message       string // optional StatusMessage: keep internals out
}

// MakeLogoutResponse builds an unsigned samlp:LogoutResponse (saml-core
// §3.7.2, saml-profiles §4.4.4.2): a fresh ID, Version 2.0, IssueInstant =
// Clock(), Destination, InResponseTo (omitted when empty), Issuer (EntityID,
// entity format) and Status. It is meant for the HTTP-Redirect binding,
// which signs the query rather than the XML: pass it to RedirectURL with
// "SAMLResponse".
func (idp *IdentityProvider) MakeLogoutResponse(p LogoutResponseParams) ([]byte, error) {
	return idp.makeLogoutResponse("make logout response", false, p)
}

// MakeSignedLogoutResponse is MakeLogoutResponse with an enveloped
// signature right after the Issuer, as in MakeResponse, for the HTTP-POST
// binding (saml-bindings §3.5.4), for SPs whose SLO endpoint takes only
// POST.
func (idp *IdentityProvider) MakeSignedLogoutResponse(p LogoutResponseParams) ([]byte, error) {
	return idp.makeLogoutResponse("make signed logout response", true, p)
}

func (idp *IdentityProvider) makeLogoutResponse(what string, sign bool, p LogoutResponseParams) ([]byte, error) {
	if p.Destination == "" {
		return nil, fmt.Errorf("saml: %s: destination is required", what)
	}
	if p.StatusCode == "" {
		p.StatusCode = StatusSuccess
	}
	return idp.makeStatusResponse(what, "LogoutResponse", sign, p.InResponseTo, p.Destination, p.StatusCode, p.SubStatusCode, p.Message)
}

// LogoutRequestParams describes a LogoutRequest the IdP sends to a session
// participant (saml-profiles §4.4.3.3, §4.4.4.1).
type LogoutRequestParams struct {
	Destination     string // the SP's SLO URL, verbatim; required
	NameID          string // as in the assertion the SP received; required
	NameIDFormat    string // default NameIDFormatEmailAddress
	SessionIndex    string // the assertion's SessionIndex; optional
	SPNameQualifier string // optional, as in the assertion
}

// MakeLogoutRequest builds an unsigned samlp:LogoutRequest from the IdP to
// an SP (saml-core §3.7.1; saml-profiles §4.4.4.1): a fresh ID (returned, to
// match the SP's LogoutResponse InResponseTo), Version 2.0, IssueInstant =
// Clock(), NotOnOrAfter = IssueInstant + AssertionLifetime, Destination,
// Issuer (EntityID, entity format), NameID and, when given, SessionIndex.
// Send it with RedirectURL and "SAMLRequest", which signs it.
func (idp *IdentityProvider) MakeLogoutRequest(p LogoutRequestParams) (id string, xml []byte, err error) {
	if p.Destination == "" || p.NameID == "" {
		return "", nil, errors.New("saml: make logout request: destination and name id are required")
	}
	if p.NameIDFormat == "" {
		p.NameIDFormat = NameIDFormatEmailAddress
	}
	if idp.EntityID == "" {
		return "", nil, errors.New("saml: make logout request: no entity id")
	}
	if !validXML(idp.EntityID, p.Destination, p.NameID, p.NameIDFormat, p.SessionIndex, p.SPNameQualifier) {
		return "", nil, errors.New("saml: make logout request: parameter is not valid XML text")
	}
	w := getWriter()
	defer putWriter(w)
	now := idp.now()
	w.s(xmlDecl + `<samlp:LogoutRequest xmlns:saml="` + NamespaceAssertion + `" xmlns:samlp="` + NamespaceProtocol + `" Destination="`)
	w.attr(p.Destination)
	w.s(`" ID="`)
	idStart := len(w.b)
	if w.b, err = appendID(w.b, idp.rand()); err != nil {
		return "", nil, err
	}
	id = string(w.b[idStart:])
	w.s(`" IssueInstant="`)
	w.time(now)
	w.s(`" NotOnOrAfter="`)
	w.time(now.Add(idp.assertionLifetime()))
	w.s(`" Version="2.0"><saml:Issuer Format="` + NameIDFormatEntity + `">`)
	w.text(idp.EntityID)
	w.s(`</saml:Issuer><saml:NameID Format="`)
	w.attr(p.NameIDFormat)
	if p.SPNameQualifier != "" {
		w.s(`" SPNameQualifier="`)
		w.attr(p.SPNameQualifier)
	}
	w.s(`">`)
	w.text(p.NameID)
	w.s(`</saml:NameID>`)
	if p.SessionIndex != "" {
		w.s(`<samlp:SessionIndex>`)
		w.text(p.SessionIndex)
		w.s(`</samlp:SessionIndex>`)
	}
	w.s(`</samlp:LogoutRequest>`)
	return id, bytes.Clone(w.b), nil
}

// flateWriters holds DEFLATE writers, each of which allocates most of a
// megabyte when made.
var flateWriters = sync.Pool{New: func() any {
	w, err := flate.NewWriter(nil, flate.BestCompression)
	if err != nil {
		panic(err) // only for an invalid level
	}
	return w
}}

// RedirectURL encodes a SAML message for the HTTP-Redirect binding and
// signs it with Signer or Key (saml-bindings §3.4.4.1): param ("SAMLRequest" or
// "SAMLResponse") carries the raw DEFLATE (RFC 1951) of xml in base64, then
// RelayState when not empty, SigAlg (RSA-SHA256) and Signature, each value
// URL-encoded. The signature is over the octets
// "param=v[&RelayState=v]&SigAlg=v", built from the URL-encoded values in
// that order. The query is appended to dest after "?", or after "&" when
// dest already has a query (Atlassian-style endpoints); dest must be an
// absolute URL without a fragment. Any XML signature inside xml should be
// absent: the binding says to remove it.
func (idp *IdentityProvider) RedirectURL(dest, param string, xml []byte, relayState string) (string, error) {
	if param != "SAMLRequest" && param != "SAMLResponse" {
		return "", fmt.Errorf("saml: redirect url: parameter %q is neither SAMLRequest nor SAMLResponse", param)
	}
	u, err := url.Parse(dest)
	if err != nil {
		return "", fmt.Errorf("saml: redirect url: %w", err)
	}
	if !u.IsAbs() || u.Host == "" || strings.Contains(dest, "#") {
		return "", fmt.Errorf("saml: redirect url: destination %q is not an absolute URL without fragment", dest)
	}
	if len(relayState) > MaxRelayStateSize {
		return "", errors.New("saml: redirect url: relay state too long")
	}
	if len(xml) == 0 || len(xml) > MaxInflatedSize {
		return "", errors.New("saml: redirect url: message empty or too large")
	}
	if err := idp.checkSigner(); err != nil {
		return "", fmt.Errorf("saml: redirect url: %w", err)
	}
	deflated, err := deflate(xml)
	if err != nil {
		return "", fmt.Errorf("saml: redirect url: %w", err)
	}
	var b strings.Builder
	b.Grow(len(dest) + len(deflated)*14/10 + len(relayState)*3 + 512)
	b.WriteString(dest)
	b.WriteString(querySeparator(dest, u.RawQuery))
	signedStart := b.Len()
	b.WriteString(param + "=" + url.QueryEscape(base64.StdEncoding.EncodeToString(deflated)))
	if relayState != "" {
		b.WriteString("&RelayState=" + url.QueryEscape(relayState))
	}
	b.WriteString("&SigAlg=" + url.QueryEscape(AlgRSASHA256))
	digest := sha256.Sum256([]byte(b.String()[signedStart:]))
	sig, err := idp.sign(digest[:])
	if err != nil {
		return "", fmt.Errorf("saml: redirect url: sign: %w", err)
	}
	b.WriteString("&Signature=" + url.QueryEscape(base64.StdEncoding.EncodeToString(sig)))
	return b.String(), nil
}

// deflate compresses a message for the HTTP-Redirect binding: raw DEFLATE,
// RFC 1951, without zlib header (saml-bindings §3.4.4.1).
func deflate(xml []byte) ([]byte, error) {
	var deflated bytes.Buffer
	fw := flateWriters.Get().(*flate.Writer)
	defer flateWriters.Put(fw)
	fw.Reset(&deflated)
	if _, err := fw.Write(xml); err != nil {
		return nil, fmt.Errorf("deflate: %w", err)
	}
	if err := fw.Close(); err != nil {
		return nil, fmt.Errorf("deflate: %w", err)
	}
	return deflated.Bytes(), nil
}

// querySeparator is what goes between dest and the SAML parameters: "?"
// when dest has no query, "&" when it has one (Atlassian-style endpoints),
// nothing when dest already ends in "?" or "&".
func querySeparator(dest, rawQuery string) string {
	switch {
	case strings.HasSuffix(dest, "?"), rawQuery != "" && strings.HasSuffix(dest, "&"):
		return ""
	case rawQuery != "":
		return "&"
	default:
		return "?"
	}
}
