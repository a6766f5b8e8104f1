package saml

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/beevik/etree"
)

// maxXMLDepth bounds element nesting in inbound messages; real AuthnRequests
// nest five or six deep.
const maxXMLDepth = 64

// maxXMLAttrs bounds the attributes (namespace declarations included) of
// one element; SAML elements carry a dozen at most. Namespace lookups and
// the duplicate check scan an element's attributes, so without a bound a
// hostile element with tens of thousands of them costs seconds.
const maxXMLAttrs = 128

// CheckXML applies the checks every inbound XML message must pass before it
// is parsed: at most MaxInflatedSize bytes, it survives an encoding/xml round
// trip unchanged (github.com/mattermost/xml-roundtrip-validator's check of
// each token, which catches the namespace confusions behind several XML
// signature bypasses; each distinct token once, see checkRoundTrip),
// it carries no DTD, entity declaration or other directive, no undeclared
// prefix, no duplicate attribute, no element with more than 128 attributes
// and no nesting deeper than 64. Errors are
// *Error with code message_too_large or malformed_xml.
func CheckXML(b []byte) error {
	_, err := parseXML(b)
	return err
}

// parseXML runs the CheckXML checks and returns the parsed document. Duplicate
// attributes on an element are refused as well: encoding/xml accepts them.
func parseXML(b []byte) (*etree.Document, error) {
	return parseXMLLimit(b, MaxInflatedSize)
}

// parseXMLLimit is parseXML with another size limit, for documents that are
// not protocol messages (SP metadata).
func parseXMLLimit(b []byte, limit int) (*etree.Document, error) {
	if len(b) > limit {
		return nil, newError(CodeTooLarge, "The SAML message is too large.", nil)
	}
	// XML 1.0 (section 4.3.3, appendix F) allows a UTF-8 byte order mark; some
	// servers (Entra ID and AD FS metadata among them) send one. Signatures
	// cover canonical elements, never the document's bytes, so dropping it
	// changes nothing they check.
	b = bytes.TrimPrefix(b, []byte("\xEF\xBB\xBF"))
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, newError(CodeMalformedXML, "The SAML message is not valid XML.", errors.New("empty document"))
	}
	if err := checkRoundTrip(b); err != nil {
		return nil, newError(CodeMalformedXML, "The SAML message is not valid XML.", err)
	}
	doc := etree.NewDocument()
	doc.ReadSettings = etree.ReadSettings{PreserveDuplicateAttrs: true, MaxDepth: maxXMLDepth}
	if err := doc.ReadFromBytes(b); err != nil {
		return nil, newError(CodeMalformedXML, "The SAML message is not valid XML.", err)
	}
	if err := checkTokens(doc.Child, true); err != nil {
		return nil, newError(CodeMalformedXML, "The SAML message is not valid XML.", err)
	}
	roots := 0
	for _, t := range doc.Child {
		switch t := t.(type) {
		case *etree.Element:
			roots++
		case *etree.CharData:
			if strings.Trim(t.Data, " \t\r\n") != "" {
				return nil, newError(CodeMalformedXML, "The SAML message is not valid XML.", errors.New("text outside the root element"))
			}
		}
	}
	if roots != 1 {
		return nil, newError(CodeMalformedXML, "The SAML message is not valid XML.", fmt.Errorf("%d root elements", roots))
	}
	return doc, nil
}

// checkTokens refuses directives (DOCTYPE, ENTITY, ...) anywhere, processing
// instructions other than the XML declaration, undeclared namespace prefixes
// and duplicate attributes.
func checkTokens(tokens []etree.Token, top bool) error {
	for _, t := range tokens {
		switch t := t.(type) {
		case *etree.Directive:
			return errors.New("directive (DTD or entity declaration) not allowed")
		case *etree.ProcInst:
			if !top || t.Target != "xml" {
				return fmt.Errorf("processing instruction %q not allowed", t.Target)
			}
		case *etree.Element:
			if err := checkElement(t); err != nil {
				return err
			}
			if err := checkTokens(t.Child, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkElement refuses an element with an undeclared namespace prefix, on
// itself or an attribute, more than maxXMLAttrs attributes, or one attribute
// twice (XML Namespaces §6.3).
func checkElement(t *etree.Element) error {
	if t.Space != "" && t.Space != "xml" && t.NamespaceURI() == "" {
		return fmt.Errorf("undeclared namespace prefix %q", t.Space)
	}
	// Bounded, because the checks below and every namespace lookup scan an
	// element's attributes.
	if len(t.Attr) > maxXMLAttrs {
		return fmt.Errorf("<%s> has %d attributes", t.Tag, len(t.Attr))
	}
	for i := range t.Attr {
		if sp := t.Attr[i].Space; sp != "" && sp != "xml" && sp != "xmlns" && t.Attr[i].NamespaceURI() == "" {
			return fmt.Errorf("undeclared namespace prefix %q", sp)
		}
		for j := i + 1; j < len(t.Attr); j++ {
			if t.Attr[i].Space == t.Attr[j].Space && t.Attr[i].Key == t.Attr[j].Key {
				return fmt.Errorf("duplicate attribute %q on <%s>", t.Attr[i].FullKey(), t.Tag)
			}
		}
	}
	return nil
}
