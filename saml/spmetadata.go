package saml

import (
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/beevik/etree"
)

// MaxMetadataSize is the largest SP metadata document ParseSPMetadata reads.
const MaxMetadataSize = 1 << 20

// maxEntityIDLength is the longest entityID saml-metadata §2.3.2 allows.
const maxEntityIDLength = 1024

// Endpoint is an md:EndpointType or md:IndexedEndpointType element
// (saml-metadata §2.2.2, §2.2.3). Index and IsDefault are zero for endpoints
// that are not indexed (SingleLogoutService).
type Endpoint struct {
	Binding, Location string
	// ResponseLocation is where responses to this endpoint go when it
	// differs from Location (saml-metadata §2.2.2); SingleLogoutService
	// only, and usually empty.
	ResponseLocation string
	Index            int
	IsDefault        bool

	// notDefault records isDefault="false" written out, which DefaultACS
	// treats differently from an absent isDefault.
	notDefault bool
}

// SPMetadata is what Passport reads from a service provider's metadata
// (saml-metadata §2.4.4): its entity ID, endpoints and keys.
type SPMetadata struct {
	EntityID string
	ACS      []Endpoint // AssertionConsumerService, all bindings, in document order
	SLO      []Endpoint // SingleLogoutService, all bindings, in document order
	// SigningCertificates and EncryptionCertificates come from the
	// KeyDescriptors with use="signing" and use="encryption"; one without
	// use lists its certificates in both (saml-metadata §2.4.1.1).
	SigningCertificates, EncryptionCertificates []*x509.Certificate
	NameIDFormats                               []string
	// AuthnRequestsSigned says the SP signs its AuthnRequests
	// (saml-metadata §2.4.4), so they may be required signed
	// (SignaturePolicy.Require).
	AuthnRequestsSigned bool
	// WantAssertionsSigned says the SP wants the Assertions it receives
	// signed (saml-metadata §2.4.4): see Signing.
	WantAssertionsSigned bool
}

// Signing returns how to sign Responses to this SP: preferred, except that
// an SP whose metadata says WantAssertionsSigned gets its Assertion signed
// whatever else is: SignResponse then becomes SignBoth (the Response
// signature preferred is kept, in case the SP checks it too).
func (m *SPMetadata) Signing(preferred Signing) Signing {
	if m.WantAssertionsSigned && !preferred.SignsAssertion() {
		return SignBoth
	}
	return preferred
}

// ParseSPMetadata reads a service provider's metadata: an md:EntityDescriptor,
// or an md:EntitiesDescriptor (nested ones too) that holds exactly one
// service provider. A service provider is an SPSSODescriptor whose
// protocolSupportEnumeration lists SAML 2.0; an entity with several such
// descriptors counts as several.
//
// The document is checked as CheckXML checks messages, but with a
// MaxMetadataSize limit. Signatures on the metadata are not verified and
// validUntil and cacheDuration are not enforced: the document is one an
// administrator uploads, not one fetched from a federation.
//
// Errors are *Error: message_too_large and malformed_xml from those checks;
// no_sp_descriptor when no SAML 2.0 SPSSODescriptor is present; several_sps
// when more than one is; malformed_metadata for a root that is not SAML
// metadata, an entityID that is absent or over 1024 characters
// (saml-metadata §2.3.2), an AssertionConsumerService without Binding,
// Location or a valid, unique index (saml-metadata §2.2.3), none at all
// (the schema requires one), a SingleLogoutService without Binding or
// Location, a KeyDescriptor with an unknown use, a certificate that does
// not parse, or a malformed xs:boolean.
func ParseSPMetadata(xml []byte) (*SPMetadata, error) {
	doc, err := parseMetadataXML(xml)
	if err != nil {
		return nil, err
	}
	entity, sp, err := findServiceProvider(doc.Root())
	if err != nil {
		return nil, err
	}
	m := &SPMetadata{EntityID: strings.TrimSpace(attr(entity, "entityID"))}
	if m.EntityID == "" || len(m.EntityID) > maxEntityIDLength {
		return nil, errMetadata("the entityID is missing or too long", nil)
	}
	if err := m.readSPDescriptor(sp); err != nil {
		return nil, err
	}
	return m, nil
}

// parseMetadataXML applies the CheckXML checks to a metadata document, with
// the MaxMetadataSize limit and errors that speak of metadata.
func parseMetadataXML(xml []byte) (*etree.Document, error) {
	doc, err := parseXMLLimit(xml, MaxMetadataSize)
	if err != nil {
		if e, ok := err.(*Error); ok {
			switch e.Code {
			case CodeTooLarge:
				e.Message = "The metadata is too large."
			case CodeMalformedXML:
				e.Message = "The metadata is not valid XML."
			}
		}
		return nil, err
	}
	return doc, nil
}

// findServiceProvider returns the one SAML 2.0 SPSSODescriptor under root, an
// EntityDescriptor or EntitiesDescriptor (saml-metadata §2.3.1, §2.3.2,
// §2.4.4), and the EntityDescriptor that holds it.
func findServiceProvider(root *etree.Element) (entity, sp *etree.Element, err error) {
	var entities []*etree.Element
	switch {
	case root.NamespaceURI() != NamespaceMetadata:
		return nil, nil, errMetadata("the document is not SAML metadata", fmt.Errorf("root <%s> in %q", root.Tag, root.NamespaceURI()))
	case root.Tag == "EntityDescriptor":
		entities = []*etree.Element{root}
	case root.Tag == "EntitiesDescriptor":
		entities = entityDescriptors(root, nil)
	default:
		return nil, nil, errMetadata("the document is not SAML metadata", fmt.Errorf("root <%s>", root.Tag))
	}
	n := 0
	for _, e := range entities {
		for _, c := range e.ChildElements() {
			if c.Tag == "SPSSODescriptor" && c.NamespaceURI() == NamespaceMetadata && supportsSAML2(c) {
				n++
				entity, sp = e, c
			}
		}
	}
	switch {
	case n == 0:
		return nil, nil, newError(CodeNoSPDescriptor, "The metadata describes no SAML 2.0 service provider.", nil)
	case n > 1:
		return nil, nil, newError(CodeSeveralSPs, "The metadata describes more than one SAML 2.0 service provider; upload the metadata of one.", fmt.Errorf("%d SPSSODescriptors", n))
	}
	return entity, sp, nil
}

// readSPDescriptor reads an SPSSODescriptor (saml-metadata §2.4.4): its two
// signing flags, then its KeyDescriptors, endpoints and NameID formats in
// document order, so that the first malformed element is the one reported.
func (m *SPMetadata) readSPDescriptor(sp *etree.Element) error {
	var err error
	if m.AuthnRequestsSigned, err = metadataBool(sp, "AuthnRequestsSigned"); err != nil {
		return err
	}
	if m.WantAssertionsSigned, err = metadataBool(sp, "WantAssertionsSigned"); err != nil {
		return err
	}
	indexes := map[int]bool{}
	for _, c := range sp.ChildElements() {
		if c.NamespaceURI() != NamespaceMetadata {
			continue
		}
		switch c.Tag {
		case "KeyDescriptor":
			err = m.addKeys(c)
		case "AssertionConsumerService":
			err = m.addACS(c, indexes)
		case "SingleLogoutService":
			err = m.addSLO(c)
		case "NameIDFormat":
			err = m.addNameIDFormat(c)
		}
		if err != nil {
			return err
		}
	}
	if len(m.ACS) == 0 {
		return errMetadata("the service provider lists no AssertionConsumerService", nil)
	}
	return nil
}

// addACS adds an AssertionConsumerService, an indexed endpoint whose index
// must be unique among them (saml-metadata §2.2.3, §2.4.4); indexes holds
// those seen so far.
func (m *SPMetadata) addACS(el *etree.Element, indexes map[int]bool) error {
	e, err := endpoint(el, true)
	if err != nil {
		return err
	}
	if indexes[e.Index] {
		return errMetadata("two AssertionConsumerServices share an index", fmt.Errorf("index %d", e.Index))
	}
	indexes[e.Index] = true
	m.ACS = append(m.ACS, e)
	return nil
}

// addSLO adds a SingleLogoutService endpoint (saml-metadata §2.4.2).
func (m *SPMetadata) addSLO(el *etree.Element) error {
	e, err := endpoint(el, false)
	if err != nil {
		return err
	}
	m.SLO = append(m.SLO, e)
	return nil
}

// addNameIDFormat adds a NameIDFormat, a URI as text (saml-metadata §2.4.1).
func (m *SPMetadata) addNameIDFormat(el *etree.Element) error {
	f, err := textOnly(el)
	if err != nil || f == "" {
		return errMetadata("a NameIDFormat is malformed", err)
	}
	m.NameIDFormats = append(m.NameIDFormats, f)
	return nil
}

// DefaultACS returns the default HTTP-POST AssertionConsumerService, the one
// a Response goes to when the AuthnRequest names none (or for IdP-initiated
// login), by the rule of saml-metadata §2.2.3 applied to the HTTP-POST
// endpoints, the only binding Passport answers with: the first with
// isDefault="true"; else the first without an isDefault attribute; else the
// first of them. It reports false when there is no HTTP-POST endpoint.
// (For endpoints built by hand rather than parsed, IsDefault false counts
// as no isDefault attribute.)
func (m *SPMetadata) DefaultACS() (Endpoint, bool) {
	var post []Endpoint
	for _, e := range m.ACS {
		if e.Binding == BindingPOST {
			post = append(post, e)
		}
	}
	if len(post) == 0 {
		return Endpoint{}, false
	}
	for _, e := range post {
		if e.IsDefault {
			return e, true
		}
	}
	for _, e := range post {
		if !e.notDefault {
			return e, true
		}
	}
	return post[0], true
}

// errMetadata is a malformed_metadata error whose public message says what
// is wrong (metadata comes from an administrator, who can fix it); err, the
// parser's detail, is for logs.
func errMetadata(detail string, err error) error {
	return newError(CodeMalformedMetadata, "The metadata is not usable: "+detail+".", err)
}

// entityDescriptors appends the EntityDescriptors in an EntitiesDescriptor,
// descending into nested EntitiesDescriptors (saml-metadata §2.3.1).
func entityDescriptors(el *etree.Element, out []*etree.Element) []*etree.Element {
	for _, c := range el.ChildElements() {
		if c.NamespaceURI() != NamespaceMetadata {
			continue
		}
		switch c.Tag {
		case "EntityDescriptor":
			out = append(out, c)
		case "EntitiesDescriptor":
			out = entityDescriptors(c, out)
		}
	}
	return out
}

// supportsSAML2 reports whether a role descriptor's protocolSupportEnumeration
// (a whitespace-separated list of URIs) lists the SAML 2.0 protocol.
func supportsSAML2(el *etree.Element) bool {
	for _, p := range strings.Fields(attr(el, "protocolSupportEnumeration")) {
		if p == NamespaceProtocol {
			return true
		}
	}
	return false
}

func metadataBool(el *etree.Element, key string) (bool, error) {
	v, ok := attrOK(el, key)
	if !ok {
		return false, nil
	}
	b, err := parseBool(key, v)
	if err != nil {
		return false, errMetadata("an attribute is malformed", err)
	}
	return b, nil
}

// endpoint reads an EndpointType element, and when indexed the index and
// isDefault of an IndexedEndpointType.
func endpoint(el *etree.Element, indexed bool) (Endpoint, error) {
	e := Endpoint{
		Binding:          strings.TrimSpace(attr(el, "Binding")),
		Location:         strings.TrimSpace(attr(el, "Location")),
		ResponseLocation: strings.TrimSpace(attr(el, "ResponseLocation")),
	}
	if e.Binding == "" || e.Location == "" {
		return Endpoint{}, errMetadata("an endpoint has no Binding or Location", fmt.Errorf("<%s>", el.Tag))
	}
	if !indexed {
		return e, nil
	}
	v, ok := attrOK(el, "index")
	if !ok {
		return Endpoint{}, errMetadata("an AssertionConsumerService has no index", nil)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 16)
	if err != nil {
		return Endpoint{}, errMetadata("an AssertionConsumerService index is not valid", err)
	}
	e.Index = int(n)
	if d, ok := attrOK(el, "isDefault"); ok {
		if e.IsDefault, err = parseBool("isDefault", d); err != nil {
			return Endpoint{}, errMetadata("an attribute is malformed", err)
		}
		e.notDefault = !e.IsDefault
	}
	return e, nil
}

// addKeys adds the X.509 certificates of a KeyDescriptor (saml-metadata
// §2.4.1.1) by its use. KeyInfo forms without a certificate (KeyName,
// KeyValue) are skipped.
func (m *SPMetadata) addKeys(kd *etree.Element) error {
	use := strings.TrimSpace(attr(kd, "use"))
	if use != "" && use != "signing" && use != "encryption" {
		return errMetadata("a KeyDescriptor has an unknown use", fmt.Errorf("use %q", use))
	}
	for _, xc := range dsigPath(kd, nil, "KeyInfo", "X509Data", "X509Certificate") {
		cert, err := parseX509Certificate(xc)
		if err != nil {
			return err
		}
		if use != "encryption" {
			m.SigningCertificates = append(m.SigningCertificates, cert)
		}
		if use != "signing" {
			m.EncryptionCertificates = append(m.EncryptionCertificates, cert)
		}
	}
	return nil
}

// dsigPath appends to out the elements reached from el through children in
// the xmldsig namespace named by path, in document order.
func dsigPath(el *etree.Element, out []*etree.Element, path ...string) []*etree.Element {
	if len(path) == 0 {
		return append(out, el)
	}
	for _, c := range el.ChildElements() {
		if c.Tag == path[0] && c.NamespaceURI() == NamespaceDSig {
			out = dsigPath(c, out, path[1:]...)
		}
	}
	return out
}

// parseX509Certificate reads a ds:X509Certificate: base64 DER, whitespace
// allowed (xmldsig-core §4.4.4).
func parseX509Certificate(el *etree.Element) (*x509.Certificate, error) {
	text, err := textOnly(el)
	if err != nil {
		return nil, errMetadata("a certificate is malformed", err)
	}
	der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(text), ""))
	if err != nil {
		return nil, errMetadata("a certificate is not valid base64", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, errMetadata("a certificate does not parse", err)
	}
	return cert, nil
}
