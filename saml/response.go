package saml

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"
	"time"
	"unicode/utf8"
)

// timeFormat is the one format of every time this package writes: UTC, whole
// seconds (saml-core §1.3.3).
const timeFormat = "2006-01-02T15:04:05Z"

// Attribute is one saml:Attribute of the AttributeStatement (saml-core
// §2.7.3.1). Every value is written as xsi:type="xs:string".
type Attribute struct {
	Name, NameFormat, FriendlyName string
	Values                         []string
}

// ResponseParams describes one successful Web Browser SSO Response
// (saml-profiles §4.1.4.2).
type ResponseParams struct {
	InResponseTo string // request ID; empty for IdP-initiated (unsolicited) responses
	Destination  string // ACS URL, verbatim (query included); also the bearer Recipient
	Audience     string // SP entity ID, verbatim
	NameID       string
	NameIDFormat string // default NameIDFormatEmailAddress
	SessionIndex string // default: a fresh random ID
	AuthnInstant time.Time
	// AuthnContextClassRef defaults to AuthnContextMobileOneFactorUnregistered,
	// which is what a Passport push approval is (see its doc).
	AuthnContextClassRef string
	Attributes           []Attribute
	SessionNotOnOrAfter  time.Time // optional
	// EncryptTo, when set, is the SP's encryption certificate (RSA key):
	// the (signed) Assertion is then sent as an EncryptedAssertion
	// (saml-core §2.3.4) encrypted to it with AES-256-GCM (AlgAES256GCM),
	// the key wrapped with RSA-OAEP (AlgRSAOAEPMGF1P).
	EncryptTo *x509.Certificate
	// Signing says what to sign; the zero value signs both the Response
	// and the Assertion.
	Signing Signing
}

// Signing says which elements of a successful Response carry a signature.
// saml-profiles §4.1.3.5 (as the SAML 2.0 errata word it) wants every
// assertion delivered by HTTP-POST protected by a signature, its own or the
// Response's: each choice does that, and each is accepted by xmlsec1,
// gosaml2 and crewjam/saml, encrypted or not (tests hold this).
type Signing uint8

const (
	// SignBoth signs the Assertion and the Response: two RSA signatures,
	// and what every SP accepts, whichever of the two it checks. The zero
	// value.
	SignBoth Signing = iota
	// SignAssertion signs the Assertion only: one RSA signature, for SPs
	// that check the assertion's signature (those whose metadata says
	// WantAssertionsSigned). The Response's Status, Destination and
	// InResponseTo are then unsigned; the assertion's signed
	// SubjectConfirmationData names the ACS URL and the request answered.
	// Encrypted, the signed Assertion is inside the EncryptedAssertion.
	SignAssertion
	// SignResponse signs the Response only: one RSA signature, covering
	// the Assertion (or the EncryptedAssertion) it carries. An SP that
	// checks only assertion signatures refuses it. Encrypted, the decrypted
	// Assertion carries no signature of its own: an SP can trust it only
	// through the Response it came in, as gosaml2 and crewjam/saml do.
	SignResponse
)

// String names s as the admin API does: "both", "assertion" or "response".
func (s Signing) String() string {
	switch s {
	case SignBoth:
		return "both"
	case SignAssertion:
		return "assertion"
	case SignResponse:
		return "response"
	}
	return fmt.Sprintf("Signing(%d)", uint8(s))
}

// ParseSigning reads a Signing from its String form; "" is SignBoth.
func ParseSigning(s string) (Signing, error) {
	switch s {
	case "", "both":
		return SignBoth, nil
	case "assertion":
		return SignAssertion, nil
	case "response":
		return SignResponse, nil
	}
	return SignBoth, fmt.Errorf("saml: signing %q is none of both, assertion, response", s)
}

// SignsAssertion reports whether a Response made with s carries a signed Assertion.
func (s Signing) SignsAssertion() bool { return s == SignBoth || s == SignAssertion }

// SignsResponse reports whether a Response made with s is itself signed.
func (s Signing) SignsResponse() bool { return s == SignBoth || s == SignResponse }

// MakeResponse builds a signed samlp:Response carrying one signed
// saml:Assertion (saml-core §3.3.3, §2.3.3; saml-profiles §4.1.4.2), or only
// one of the two signed, as p.Signing says:
//
//   - Response: a fresh ID, Version 2.0, IssueInstant = Clock(), Destination,
//     InResponseTo (omitted when empty), Issuer (EntityID, entity format),
//     ds:Signature (when signed) right after the Issuer, Status Success, the
//     Assertion;
//   - Assertion: Issuer, ds:Signature (when signed), Subject (NameID; bearer
//     SubjectConfirmation with Recipient = Destination, NotOnOrAfter and
//     InResponseTo), Conditions (NotBefore = now-ClockSkew, NotOnOrAfter =
//     now+AssertionLifetime, AudienceRestriction to Audience), AuthnStatement
//     and, when there are attributes, an AttributeStatement whose values are
//     xs:string (xmlns:xs on the Assertion, xmlns:xsi on each value).
//
// Each signature is RSA-SHA256 over a SHA-256 digest with exclusive C14N
// and KeyInfo holding exactly Certificate. The document is written directly
// in exclusive canonical form, so each digest is taken over the very bytes
// sent (less the xmlns:xs declaration, which exclusive C14N drops because
// the prefix is used only in attribute values) without re-parsing or
// re-canonicalizing; tests check the result against goxmldsig's
// canonicalizer, xmlsec1, gosaml2 and crewjam/saml.
//
// With p.EncryptTo the Assertion is signed first (unless p.Signing is
// SignResponse) and then encrypted (saml-core §2.3.4, §6.2), and the
// Response signature, if any, covers the EncryptedAssertion. Encryption
// draws its key and nonce from crypto/rand (not Rand), so such output is
// never byte-stable.
//
// Destination, Audience and NameID are required; every string must be valid
// UTF-8 made of XML characters.
func (idp *IdentityProvider) MakeResponse(p ResponseParams) ([]byte, error) {
	if err := idp.checkResponseParams(&p); err != nil {
		return nil, err
	}
	w := getWriter()
	defer putWriter(w)
	now, rnd := idp.now(), idp.rand()

	a, err := idp.writeAssertion(w, &p, now, rnd)
	if err != nil {
		return nil, err
	}
	if p.Signing.SignsAssertion() {
		if err := idp.signAssertion(w, &a); err != nil {
			return nil, err
		}
	}
	var encrypted []byte
	if p.EncryptTo != nil {
		if encrypted, err = encryptAssertion(a.standalone(w), p.EncryptTo); err != nil {
			return nil, fmt.Errorf("saml: make response: %w", err)
		}
	}
	r, err := idp.writeResponseHead(w, &p, now, rnd)
	if err != nil {
		return nil, err
	}
	if p.Signing.SignsResponse() {
		if err := idp.signResponse(w, &r, &a, encrypted); err != nil {
			return nil, err
		}
	}
	return r.assemble(w, &a, encrypted), nil
}

// checkResponseParams refuses what MakeResponse cannot write and fills in
// p's defaults.
func (idp *IdentityProvider) checkResponseParams(p *ResponseParams) error {
	if p.Destination == "" || p.Audience == "" || p.NameID == "" {
		return errors.New("saml: make response: destination, audience and name id are required")
	}
	if p.Signing > SignResponse {
		return fmt.Errorf("saml: make response: unknown %v", p.Signing)
	}
	if p.NameIDFormat == "" {
		p.NameIDFormat = NameIDFormatEmailAddress
	}
	if p.AuthnContextClassRef == "" {
		p.AuthnContextClassRef = AuthnContextMobileOneFactorUnregistered
	}
	if err := idp.checkSigner(); err != nil {
		return fmt.Errorf("saml: make response: %w", err)
	}
	if p.EncryptTo != nil {
		if _, ok := p.EncryptTo.PublicKey.(*rsa.PublicKey); !ok {
			return errors.New("saml: make response: encryption certificate has no RSA key")
		}
	}
	if !validXML(idp.EntityID, p.InResponseTo, p.Destination, p.Audience, p.NameID, p.NameIDFormat, p.SessionIndex, p.AuthnContextClassRef) {
		return errors.New("saml: make response: parameter is not valid XML text")
	}
	for _, a := range p.Attributes {
		if a.Name == "" || !validXML(a.Name, a.NameFormat, a.FriendlyName) || !validXML(a.Values...) {
			return fmt.Errorf("saml: make response: attribute %q: empty name or not valid XML text", a.Name)
		}
	}
	return nil
}

// span is the bytes w.b[start:end] of a writer.
type span struct{ start, end int }

func (s span) of(w *writer) []byte { return w.b[s.start:s.end] }

// mark starts a span at the end of what w holds; close ends it there.
func mark(w *writer) span       { return span{len(w.b), len(w.b)} }
func (s *span) close(w *writer) { s.end = len(w.b) }

// writtenAssertion locates an Assertion written in a writer. In the document
// it is head, then sig (empty while unsigned), then body. The head is the
// start tag and Issuer, after which the signature goes (saml-core §2.3.3:
// ds:Signature follows the Issuer); xs is the xmlns:xs declaration inside the
// start tag, which exclusive C14N leaves out of the canonical form (the
// prefix appears only in attribute values); id is the value of the ID
// attribute.
type writtenAssertion struct {
	head, xs, id, body, sig span
}

// digest feeds w.h the assertion's canonical form: everything but xmlns:xs.
func (a *writtenAssertion) digest(w *writer) {
	w.h.Write(w.b[a.head.start:a.xs.start])
	w.h.Write(w.b[a.xs.end:a.head.end])
	w.h.Write(a.sig.of(w))
	w.h.Write(a.body.of(w))
}

// standalone returns the assertion as a document of its own, as sent: the
// plaintext of an EncryptedAssertion.
func (a *writtenAssertion) standalone(w *writer) []byte {
	plain := make([]byte, 0, (a.head.end-a.head.start)+(a.sig.end-a.sig.start)+(a.body.end-a.body.start))
	plain = append(plain, a.head.of(w)...)
	plain = append(plain, a.sig.of(w)...)
	return append(plain, a.body.of(w)...)
}

// writeAssertion writes the saml:Assertion of a Response (saml-core §2.3.3),
// unsigned, in canonical form: ID and IssueInstant, Issuer, then the
// Subject, Conditions, AuthnStatement and AttributeStatement.
func (idp *IdentityProvider) writeAssertion(w *writer, p *ResponseParams, now time.Time, rnd io.Reader) (writtenAssertion, error) {
	var a writtenAssertion
	var err error
	a.head = mark(w)
	w.s(`<saml:Assertion xmlns:saml="` + NamespaceAssertion + `"`)
	a.xs = mark(w)
	if len(p.Attributes) > 0 {
		w.s(` xmlns:xs="` + NamespaceXS + `"`)
	}
	a.xs.close(w)
	w.s(` ID="`)
	a.id = mark(w)
	if w.b, err = appendID(w.b, rnd); err != nil {
		return a, err
	}
	a.id.close(w)
	w.s(`" IssueInstant="`)
	w.time(now)
	w.s(`" Version="2.0"><saml:Issuer Format="` + NameIDFormatEntity + `">`)
	w.text(idp.EntityID)
	w.s(`</saml:Issuer>`)
	a.head.close(w)

	a.body = mark(w)
	idp.writeSubject(w, p, now)
	idp.writeConditions(w, p, now)
	if err := writeAuthnStatement(w, p, now, rnd); err != nil {
		return a, err
	}
	writeAttributeStatement(w, p.Attributes)
	w.s(`</saml:Assertion>`)
	a.body.close(w)
	a.sig = mark(w)
	return a, nil
}

// writeSubject writes the assertion's saml:Subject (saml-core §2.4): the
// NameID, and the bearer SubjectConfirmation of Web Browser SSO
// (saml-profiles §4.1.4.2) whose data names the request answered, the ACS
// URL as Recipient and the end of the assertion's life.
func (idp *IdentityProvider) writeSubject(w *writer, p *ResponseParams, now time.Time) {
	w.s(`<saml:Subject><saml:NameID Format="`)
	w.attr(p.NameIDFormat)
	w.s(`">`)
	w.text(p.NameID)
	w.s(`</saml:NameID><saml:SubjectConfirmation Method="` + ConfirmationMethodBearer + `"><saml:SubjectConfirmationData`)
	if p.InResponseTo != "" {
		w.s(` InResponseTo="`)
		w.attr(p.InResponseTo)
		w.s(`"`)
	}
	w.s(` NotOnOrAfter="`)
	w.time(now.Add(idp.assertionLifetime()))
	w.s(`" Recipient="`)
	w.attr(p.Destination)
	w.s(`"></saml:SubjectConfirmationData></saml:SubjectConfirmation></saml:Subject>`)
}

// writeConditions writes the assertion's saml:Conditions (saml-core §2.5):
// valid from now-ClockSkew until now+AssertionLifetime, for Audience only.
func (idp *IdentityProvider) writeConditions(w *writer, p *ResponseParams, now time.Time) {
	w.s(`<saml:Conditions NotBefore="`)
	w.time(now.Add(-idp.clockSkew()))
	w.s(`" NotOnOrAfter="`)
	w.time(now.Add(idp.assertionLifetime()))
	w.s(`"><saml:AudienceRestriction><saml:Audience>`)
	w.text(p.Audience)
	w.s(`</saml:Audience></saml:AudienceRestriction></saml:Conditions>`)
}

// writeAuthnStatement writes the saml:AuthnStatement (saml-core §2.7.2):
// when and how the user authenticated, and the session's index (a fresh ID
// unless p names one) and end.
func writeAuthnStatement(w *writer, p *ResponseParams, now time.Time, rnd io.Reader) error {
	w.s(`<saml:AuthnStatement AuthnInstant="`)
	if p.AuthnInstant.IsZero() {
		w.time(now)
	} else {
		w.time(p.AuthnInstant)
	}
	w.s(`" SessionIndex="`)
	if p.SessionIndex == "" {
		var err error
		if w.b, err = appendID(w.b, rnd); err != nil {
			return err
		}
	} else {
		w.attr(p.SessionIndex)
	}
	if !p.SessionNotOnOrAfter.IsZero() {
		w.s(`" SessionNotOnOrAfter="`)
		w.time(p.SessionNotOnOrAfter)
	}
	w.s(`"><saml:AuthnContext><saml:AuthnContextClassRef>`)
	w.text(p.AuthnContextClassRef)
	w.s(`</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>`)
	return nil
}

// writeAttributeStatement writes the saml:AttributeStatement (saml-core
// §2.7.3), every value an xs:string; nothing when there are no attributes
// (the schema wants at least one).
func writeAttributeStatement(w *writer, attrs []Attribute) {
	if len(attrs) == 0 {
		return
	}
	w.s(`<saml:AttributeStatement>`)
	for _, a := range attrs {
		w.s(`<saml:Attribute`)
		if a.FriendlyName != "" {
			w.s(` FriendlyName="`)
			w.attr(a.FriendlyName)
			w.s(`"`)
		}
		w.s(` Name="`)
		w.attr(a.Name)
		w.s(`"`)
		if a.NameFormat != "" {
			w.s(` NameFormat="`)
			w.attr(a.NameFormat)
			w.s(`"`)
		}
		w.s(`>`)
		for _, v := range a.Values {
			w.s(`<saml:AttributeValue xmlns:xsi="` + NamespaceXSI + `" xsi:type="xs:string">`)
			w.text(v)
			w.s(`</saml:AttributeValue>`)
		}
		w.s(`</saml:Attribute>`)
	}
	w.s(`</saml:AttributeStatement>`)
}

// signAssertion appends the assertion's enveloped signature (saml-core
// §5.4) to w and records it as a.sig. The assertion must be unsigned.
func (idp *IdentityProvider) signAssertion(w *writer, a *writtenAssertion) error {
	w.h.Reset()
	a.digest(w)
	a.sig = mark(w)
	if err := idp.appendSignature(w, a.id.start, a.id.end); err != nil {
		return err
	}
	a.sig.close(w)
	return nil
}

// writtenResponse locates the head of a Response written in a writer: its
// start tag and Issuer, after which its signature (sig, empty while
// unsigned) goes (saml-core §3.2.2); id is the value of its ID attribute.
type writtenResponse struct {
	head, id, sig span
}

// Fixed parts of a successful Response, after its head and signature.
const (
	responseStatus = `<samlp:Status><samlp:StatusCode Value="` + StatusSuccess + `"></samlp:StatusCode></samlp:Status>`
	responseEnd    = `</samlp:Response>`
)

// writeResponseHead writes the start tag and Issuer of a samlp:Response
// (saml-core §3.2.2, §3.3.3) in canonical form.
func (idp *IdentityProvider) writeResponseHead(w *writer, p *ResponseParams, now time.Time, rnd io.Reader) (writtenResponse, error) {
	var r writtenResponse
	var err error
	r.head = mark(w)
	w.s(`<samlp:Response xmlns:samlp="` + NamespaceProtocol + `" Destination="`)
	w.attr(p.Destination)
	w.s(`" ID="`)
	r.id = mark(w)
	if w.b, err = appendID(w.b, rnd); err != nil {
		return r, err
	}
	r.id.close(w)
	if p.InResponseTo != "" {
		w.s(`" InResponseTo="`)
		w.attr(p.InResponseTo)
	}
	w.s(`" IssueInstant="`)
	w.time(now)
	w.s(`" Version="2.0"><saml:Issuer xmlns:saml="` + NamespaceAssertion + `" Format="` + NameIDFormatEntity + `">`)
	w.text(idp.EntityID)
	w.s(`</saml:Issuer>`)
	r.head.close(w)
	r.sig = mark(w)
	return r, nil
}

// signResponse appends the Response's enveloped signature (saml-core §5.4)
// to w and records it as r.sig. Its digest covers the head, the Status, the
// assertion as sent (encrypted when encrypted is not nil, with its own
// signature otherwise) and the end tag.
func (idp *IdentityProvider) signResponse(w *writer, r *writtenResponse, a *writtenAssertion, encrypted []byte) error {
	w.h.Reset()
	w.h.Write(r.head.of(w))
	w.h.Write([]byte(responseStatus))
	if encrypted != nil {
		w.h.Write(encrypted)
	} else {
		a.digest(w)
	}
	w.h.Write([]byte(responseEnd))
	r.sig = mark(w)
	if err := idp.appendSignature(w, r.id.start, r.id.end); err != nil {
		return err
	}
	r.sig.close(w)
	return nil
}

// assemble returns the Response document: the XML declaration, head,
// signature, Status, the assertion (encrypted when encrypted is not nil)
// and the end tag.
func (r *writtenResponse) assemble(w *writer, a *writtenAssertion, encrypted []byte) []byte {
	size := len(xmlDecl) + (r.head.end - r.head.start) + (r.sig.end - r.sig.start) + len(responseStatus) + len(responseEnd)
	if encrypted != nil {
		size += len(encrypted)
	} else {
		size += (a.head.end - a.head.start) + (a.sig.end - a.sig.start) + (a.body.end - a.body.start)
	}
	out := make([]byte, 0, size)
	out = append(out, xmlDecl...)
	out = append(out, r.head.of(w)...)
	out = append(out, r.sig.of(w)...)
	out = append(out, responseStatus...)
	if encrypted != nil {
		out = append(out, encrypted...)
	} else {
		out = append(out, a.head.of(w)...)
		out = append(out, a.sig.of(w)...)
		out = append(out, a.body.of(w)...)
	}
	return append(out, responseEnd...)
}

// ErrorParams describes a Response that reports a failure (saml-core §3.2.2).
type ErrorParams struct {
	InResponseTo  string // request ID; empty when answering no request
	Destination   string // ACS URL, verbatim; required
	StatusCode    string // top-level code: StatusRequester, StatusResponder or StatusVersionMismatch; required
	SubStatusCode string // optional second-level code, e.g. StatusAuthnFailed
	Message       string // optional StatusMessage, shown by some SPs: keep internals out
}

// MakeErrorResponse builds a signed samlp:Response with no Assertion whose
// Status carries p's codes and message (saml-core §3.2.2). Signature as in
// MakeResponse.
func (idp *IdentityProvider) MakeErrorResponse(p ErrorParams) ([]byte, error) {
	if p.Destination == "" || p.StatusCode == "" {
		return nil, errors.New("saml: make error response: destination and status code are required")
	}
	if p.StatusCode == StatusSuccess {
		return nil, errors.New("saml: make error response: status must not be success")
	}
	return idp.makeStatusResponse("make error response", "Response", true, p.InResponseTo, p.Destination, p.StatusCode, p.SubStatusCode, p.Message)
}

// makeStatusResponse builds a samlp:<root> of StatusResponseType (saml-core
// §3.2.2) holding only Issuer and Status: an error Response or a
// LogoutResponse. When sign is set, an enveloped signature (as in
// MakeResponse) follows the Issuer. what names the operation in errors.
func (idp *IdentityProvider) makeStatusResponse(what, root string, sign bool, inResponseTo, destination, code, subCode, message string) ([]byte, error) {
	if !validXML(idp.EntityID, inResponseTo, destination, code, subCode, message) {
		return nil, fmt.Errorf("saml: %s: parameter is not valid XML text", what)
	}
	if sign {
		if err := idp.checkSigner(); err != nil {
			return nil, fmt.Errorf("saml: %s: %w", what, err)
		}
	} else if idp.EntityID == "" {
		return nil, fmt.Errorf("saml: %s: no entity id", what)
	}
	w := getWriter()
	defer putWriter(w)
	var err error
	rStart := len(w.b)
	w.s(`<samlp:` + root + ` xmlns:samlp="` + NamespaceProtocol + `" Destination="`)
	w.attr(destination)
	w.s(`" ID="`)
	idStart := len(w.b)
	if w.b, err = appendID(w.b, idp.rand()); err != nil {
		return nil, err
	}
	idEnd := len(w.b)
	if inResponseTo != "" {
		w.s(`" InResponseTo="`)
		w.attr(inResponseTo)
	}
	w.s(`" IssueInstant="`)
	w.time(idp.now())
	w.s(`" Version="2.0"><saml:Issuer xmlns:saml="` + NamespaceAssertion + `" Format="` + NameIDFormatEntity + `">`)
	w.text(idp.EntityID)
	w.s(`</saml:Issuer>`)
	headEnd := len(w.b)
	w.s(`<samlp:Status><samlp:StatusCode Value="`)
	w.attr(code)
	w.s(`">`)
	if subCode != "" {
		w.s(`<samlp:StatusCode Value="`)
		w.attr(subCode)
		w.s(`"></samlp:StatusCode>`)
	}
	w.s(`</samlp:StatusCode>`)
	if message != "" {
		w.s(`<samlp:StatusMessage>`)
		w.text(message)
		w.s(`</samlp:StatusMessage>`)
	}
	w.s(`</samlp:Status></samlp:` + root + `>`)
	rEnd := len(w.b)
	if !sign {
		return append([]byte(xmlDecl), w.b[rStart:rEnd]...), nil
	}
	w.h.Reset()
	w.h.Write(w.b[rStart:rEnd])
	sigStart := len(w.b)
	if err := idp.appendSignature(w, idStart, idEnd); err != nil {
		return nil, err
	}
	sigEnd := len(w.b)
	out := make([]byte, 0, len(xmlDecl)+len(w.b)-rStart)
	out = append(out, xmlDecl...)
	out = append(out, w.b[rStart:headEnd]...)
	out = append(out, w.b[sigStart:sigEnd]...)
	out = append(out, w.b[headEnd:rEnd]...)
	return out, nil
}

const xmlDecl = `<?xml version="1.0" encoding="UTF-8"?>` + "\n"

func (idp *IdentityProvider) checkSigner() error {
	switch {
	case idp.EntityID == "":
		return errors.New("no entity id")
	case idp.Key == nil && idp.Signer == nil:
		return errors.New("no signing key")
	case idp.Certificate == nil:
		return errors.New("no signing certificate")
	}
	var pub crypto.PublicKey
	if idp.Signer != nil {
		pub = idp.Signer.Public()
	} else {
		pub = &idp.Key.PublicKey
	}
	if rsaPub, ok := pub.(*rsa.PublicKey); !ok || !rsaPub.Equal(idp.Certificate.PublicKey) {
		return errors.New("signing key does not match certificate")
	}
	return nil
}

// Fixed parts of every signature we write (xmldsig-core §4). In the document
// the SignedInfo inherits xmlns:ds from Signature; its exclusive canonical
// form declares it itself.
const (
	sigOpen        = `<ds:Signature xmlns:ds="` + NamespaceDSig + `">`
	signedInfoDoc  = `<ds:SignedInfo>`
	signedInfoC14N = `<ds:SignedInfo xmlns:ds="` + NamespaceDSig + `">`
	signedInfoHead = `<ds:CanonicalizationMethod Algorithm="` + AlgExcC14N + `"></ds:CanonicalizationMethod>` +
		`<ds:SignatureMethod Algorithm="` + AlgRSASHA256 + `"></ds:SignatureMethod><ds:Reference URI="#`
	signedInfoMid = `"><ds:Transforms><ds:Transform Algorithm="` + AlgEnveloped + `"></ds:Transform>` +
		`<ds:Transform Algorithm="` + AlgExcC14N + `"></ds:Transform></ds:Transforms>` +
		`<ds:DigestMethod Algorithm="` + AlgDigestSHA256 + `"></ds:DigestMethod><ds:DigestValue>`
	signedInfoTail = `</ds:DigestValue></ds:Reference></ds:SignedInfo>`
	sigValueOpen   = `<ds:SignatureValue>`
	sigValueClose  = `</ds:SignatureValue><ds:KeyInfo><ds:X509Data><ds:X509Certificate>`
	sigClose       = `</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>`
)

// appendSignature appends a ds:Signature whose Reference names the ID at
// w.b[idStart:idEnd] and whose DigestValue is the sum of w.h, which holds the
// referenced element's canonical form less the signature.
func (idp *IdentityProvider) appendSignature(w *writer, idStart, idEnd int) error {
	var digest [sha256.Size]byte
	w.h.Sum(digest[:0])
	sigStart := len(w.b)
	w.s(sigOpen + signedInfoDoc)
	siInner := len(w.b)
	w.s(signedInfoHead)
	w.b = append(w.b, w.b[idStart:idEnd]...)
	w.s(signedInfoMid)
	w.b = base64.StdEncoding.AppendEncode(w.b, digest[:])
	w.s(signedInfoTail)

	w.h.Reset()
	w.h.Write([]byte(signedInfoC14N))
	w.h.Write(w.b[siInner:])
	var siDigest [sha256.Size]byte
	w.h.Sum(siDigest[:0])
	sig, err := idp.sign(siDigest[:])
	if err != nil {
		w.b = w.b[:sigStart]
		return fmt.Errorf("saml: sign: %w", err)
	}
	w.s(sigValueOpen)
	w.b = base64.StdEncoding.AppendEncode(w.b, sig)
	w.s(sigValueClose)
	w.b = append(w.b, idp.certificateBase64()...)
	w.s(sigClose)
	return nil
}

// writer appends XML that is already in exclusive canonical form (W3C
// xml-exc-c14n, C14N 1.0 §2.3): no XML declaration, start and end tags for
// empty elements, attributes in canonical order (the callers write them so),
// and text and attribute values escaped as C14N escapes them.
type writer struct {
	b []byte
	h hash.Hash
}

var writerPool = sync.Pool{New: func() any {
	return &writer{b: make([]byte, 0, 16<<10), h: sha256.New()}
}}

func getWriter() *writer { return writerPool.Get().(*writer) }

func putWriter(w *writer) {
	if cap(w.b) > 1<<20 {
		return
	}
	w.b = w.b[:0]
	writerPool.Put(w)
}

func (w *writer) s(s string) { w.b = append(w.b, s...) }

func (w *writer) time(t time.Time) { w.b = t.UTC().AppendFormat(w.b, timeFormat) }

// C14N escaping (Canonical XML §2.3): character data escapes & < > and CR; attribute values escape & < "
// TAB LF and CR.
var (
	textEscapes = escapeTable(map[byte]string{'&': "&amp;", '<': "&lt;", '>': "&gt;", '\r': "&#xD;"})
	attrEscapes = escapeTable(map[byte]string{'&': "&amp;", '<': "&lt;", '"': "&quot;", '\t': "&#x9;", '\n': "&#xA;", '\r': "&#xD;"})
)

func escapeTable(m map[byte]string) *[256]string {
	var t [256]string
	for b, e := range m {
		t[b] = e
	}
	return &t
}

// text appends character data escaped as C14N does.
func (w *writer) text(s string) { w.escape(s, textEscapes) }

// attr appends an attribute value escaped as C14N does.
func (w *writer) attr(s string) { w.escape(s, attrEscapes) }

func (w *writer) escape(s string, table *[256]string) {
	last := 0
	for i := 0; i < len(s); i++ {
		esc := table[s[i]]
		if esc == "" {
			continue
		}
		w.b = append(w.b, s[last:i]...)
		w.b = append(w.b, esc...)
		last = i + 1
	}
	w.b = append(w.b, s[last:]...)
}

// validXML reports whether every string is valid UTF-8 made only of
// characters XML 1.0 allows (§2.2 Char).
func validXML(ss ...string) bool {
	for _, s := range ss {
		for i := 0; i < len(s); {
			c := s[i]
			if c < utf8.RuneSelf {
				if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
					return false
				}
				i++
				continue
			}
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 || r == 0xFFFE || r == 0xFFFF {
				return false
			}
			i += size
		}
	}
	return true
}
