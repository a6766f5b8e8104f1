package saml

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
)

// Signature and digest algorithm URIs (xmldsig-core §6; RFC 6931).
const (
	AlgRSASHA1     = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
	AlgRSASHA256   = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
	AlgRSASHA384   = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384"
	AlgRSASHA512   = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"
	AlgECDSASHA1   = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1"
	AlgECDSASHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
	AlgECDSASHA384 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384"
	AlgECDSASHA512 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512"

	AlgDigestSHA1   = "http://www.w3.org/2000/09/xmldsig#sha1"
	AlgDigestSHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
	AlgDigestSHA384 = "http://www.w3.org/2001/04/xmldsig-more#sha384"
	AlgDigestSHA512 = "http://www.w3.org/2001/04/xmlenc#sha512"

	AlgExcC14N   = "http://www.w3.org/2001/10/xml-exc-c14n#"
	AlgEnveloped = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
)

type sigAlg struct {
	hash  crypto.Hash
	ecdsa bool
}

var signatureAlgs = map[string]sigAlg{
	AlgRSASHA1:     {crypto.SHA1, false},
	AlgRSASHA256:   {crypto.SHA256, false},
	AlgRSASHA384:   {crypto.SHA384, false},
	AlgRSASHA512:   {crypto.SHA512, false},
	AlgECDSASHA1:   {crypto.SHA1, true},
	AlgECDSASHA256: {crypto.SHA256, true},
	AlgECDSASHA384: {crypto.SHA384, true},
	AlgECDSASHA512: {crypto.SHA512, true},
}

var digestAlgs = map[string]crypto.Hash{
	AlgDigestSHA1:   crypto.SHA1,
	AlgDigestSHA256: crypto.SHA256,
	AlgDigestSHA384: crypto.SHA384,
	AlgDigestSHA512: crypto.SHA512,
}

func errUnsupportedAlg(detail error) error {
	return newError(CodeUnsupportedAlgorithm, "The request is signed with an algorithm this identity provider does not accept.", detail)
}

func errBadSignature(detail error) error {
	return newError(CodeSignatureInvalid, "The request's signature is not valid.", detail)
}

// VerifyRedirectSignature verifies the query-string signature of an
// HTTP-Redirect message (saml-bindings §3.4.4.1) over m.SignedOctets with
// m.SigAlg against certs, any of which may have signed. SHA-1 algorithms are
// refused unless allowSHA1. Certificate validity dates are ignored (pinned
// keys). Errors are *Error: signature_missing, unsupported_algorithm or
// signature_invalid.
func VerifyRedirectSignature(m *InboundMessage, certs []*x509.Certificate, allowSHA1 bool) error {
	if len(m.Signature) == 0 {
		return newError(CodeSignatureMissing, "The request must be signed.", nil)
	}
	alg, ok := signatureAlgs[m.SigAlg]
	if !ok {
		return errUnsupportedAlg(fmt.Errorf("SigAlg %q", m.SigAlg))
	}
	if alg.hash == crypto.SHA1 && !allowSHA1 {
		return errUnsupportedAlg(fmt.Errorf("SigAlg %q: SHA-1 not allowed", m.SigAlg))
	}
	if len(certs) == 0 {
		return errBadSignature(errors.New("no service provider certificate configured"))
	}
	h := alg.hash.New()
	h.Write(m.SignedOctets)
	digest := h.Sum(nil)
	for _, c := range certs {
		switch pub := c.PublicKey.(type) {
		case *rsa.PublicKey:
			if !alg.ecdsa && rsa.VerifyPKCS1v15(pub, alg.hash, digest, m.Signature) == nil {
				return nil
			}
		case *ecdsa.PublicKey:
			if alg.ecdsa && ecdsa.VerifyASN1(pub, digest, m.Signature) {
				return nil
			}
		}
	}
	return errBadSignature(errors.New("no configured certificate verifies the redirect signature"))
}

// VerifyPOSTSignature verifies the enveloped XML signature of a message
// received by HTTP-POST (saml-bindings §3.5.4; xmldsig-core) against certs and
// returns the verified root: the element as the signature covers it,
// re-parsed from the canonical bytes that were digested, with the
// signature removed. Only that element may be trusted; parse the message
// from it (ParseAuthnRequestElement).
//
// To keep signature wrapping out, the document must hold exactly one
// ds:Signature, a direct child of the root, whose SignedInfo has exactly
// one Reference, to "#" + the root's ID, an ID no other element carries;
// only the enveloped-signature and exclusive C14N transforms are allowed.
// The KeyInfo is ignored: the signature must verify under one of certs
// (validity dates ignored: pinned keys). SHA-1 signature or digest methods
// are refused unless allowSHA1.
//
// Errors are *Error: message_too_large or malformed_xml (CheckXML),
// signature_missing, duplicate_element (two signatures on the root),
// unsupported_algorithm, signature_invalid.
func VerifyPOSTSignature(xml []byte, certs []*x509.Certificate, allowSHA1 bool) (verifiedRoot *etree.Element, err error) {
	doc, err := parseXML(xml)
	if err != nil {
		return nil, err
	}
	root := doc.Root()
	sig, err := rootSignature(root)
	if err != nil {
		return nil, err
	}
	id, err := uniqueRootID(root)
	if err != nil {
		return nil, err
	}
	if err := checkSignatureShape(sig, id, allowSHA1); err != nil {
		return nil, err
	}
	if len(certs) == 0 {
		return nil, errBadSignature(errors.New("no service provider certificate configured"))
	}
	return verifyPinned(root, id, certs)
}

// rootSignature returns the one ds:Signature of a document, which must be a
// direct child of root: the only place an enveloped signature over the
// whole message can be without inviting signature wrapping.
func rootSignature(root *etree.Element) (*etree.Element, error) {
	var sigs, stray int
	var sig *etree.Element
	walk(root, func(el *etree.Element) {
		if el.Tag == "Signature" && el.NamespaceURI() == NamespaceDSig {
			if el.Parent() == root {
				sigs++
				sig = el
			} else {
				stray++
			}
		}
	})
	switch {
	case sigs == 0 && stray == 0:
		return nil, newError(CodeSignatureMissing, "The request must be signed.", nil)
	case sigs > 1:
		return nil, newError(CodeDuplicateElement, "The request carries more than one signature.", nil)
	case sigs == 0 || stray > 0:
		return nil, errBadSignature(errors.New("signature not a direct child of the root, or more than one signature"))
	}
	return sig, nil
}

// uniqueRootID returns root's ID, which must be an xs:ID (saml-core §1.3.4)
// that no other element of the document carries as ID, Id or id: otherwise
// a Reference to it could resolve to another element than the one read.
func uniqueRootID(root *etree.Element) (string, error) {
	id, _ := attrOK(root, "ID")
	if !isNCName(id) {
		return "", errBadSignature(errors.New("root has no valid ID"))
	}
	idCount := 0
	walk(root, func(el *etree.Element) {
		for _, a := range el.Attr {
			if a.Value == id && (a.Key == "ID" || a.Key == "Id" || a.Key == "id") {
				idCount++
			}
		}
	})
	if idCount != 1 {
		return "", errBadSignature(fmt.Errorf("ID %q is not unique", id))
	}
	return id, nil
}

// verifyPinned verifies root's enveloped signature against each of certs in
// turn, with KeyInfo removed so that goxmldsig uses the one certificate it
// is given, and returns the element the signature covers.
func verifyPinned(root *etree.Element, id string, certs []*x509.Certificate) (*etree.Element, error) {
	work := root.Copy()
	for _, c := range work.ChildElements() {
		if c.Tag == "Signature" && c.NamespaceURI() == NamespaceDSig {
			for _, k := range c.ChildElements() {
				if k.Tag == "KeyInfo" {
					c.RemoveChild(k)
				}
			}
		}
	}
	var lastErr error
	for _, cert := range certs {
		vc := dsig.NewDefaultValidationContext(&dsig.MemoryX509CertificateStore{Roots: []*x509.Certificate{cert}})
		vc.Clock = dsig.NewFakeClockAt(cert.NotBefore)
		verified, err := vc.Validate(work)
		if err != nil {
			lastErr = err
			continue
		}
		if v, _ := attrOK(verified, "ID"); v != id {
			return nil, errBadSignature(errors.New("verified element has another ID"))
		}
		return verified, nil
	}
	return nil, errBadSignature(fmt.Errorf("no configured certificate verifies the signature: %w", lastErr))
}

// checkSignatureShape checks the SignedInfo of an enveloped signature on the
// element with ID id: algorithms, one Reference to "#"+id, allowed
// transforms only, and no Object.
func checkSignatureShape(sig *etree.Element, id string, allowSHA1 bool) error {
	signedInfo, err := signedInfoOf(sig)
	if err != nil {
		return err
	}
	ref, err := checkSignedInfo(signedInfo, allowSHA1)
	if err != nil {
		return err
	}
	return checkReference(ref, id, allowSHA1)
}

// signedInfoOf returns the SignedInfo of a ds:Signature that holds exactly
// one SignedInfo and SignatureValue, at most one KeyInfo and nothing else
// (xmldsig-core §4.1; an Object is where wrapped content hides).
func signedInfoOf(sig *etree.Element) (*etree.Element, error) {
	var signedInfo *etree.Element
	counts := map[string]int{}
	for _, c := range sig.ChildElements() {
		if c.NamespaceURI() != NamespaceDSig {
			return nil, errBadSignature(fmt.Errorf("unexpected <%s> in Signature", c.Tag))
		}
		counts[c.Tag]++
		switch c.Tag {
		case "SignedInfo":
			signedInfo = c
		case "SignatureValue", "KeyInfo":
		default:
			return nil, errBadSignature(fmt.Errorf("unexpected <%s> in Signature", c.Tag))
		}
	}
	if counts["SignedInfo"] != 1 || counts["SignatureValue"] != 1 || counts["KeyInfo"] > 1 {
		return nil, errBadSignature(errors.New("malformed Signature"))
	}
	return signedInfo, nil
}

// checkSignedInfo checks a SignedInfo (xmldsig-core §4.4): one accepted
// CanonicalizationMethod, one accepted SignatureMethod and exactly one
// Reference, which it returns.
func checkSignedInfo(signedInfo *etree.Element, allowSHA1 bool) (*etree.Element, error) {
	var refs []*etree.Element
	var c14nMethods, sigMethods int
	for _, c := range signedInfo.ChildElements() {
		if c.NamespaceURI() != NamespaceDSig {
			return nil, errBadSignature(fmt.Errorf("unexpected <%s> in SignedInfo", c.Tag))
		}
		switch c.Tag {
		case "CanonicalizationMethod":
			c14nMethods++
			if a := attr(c, "Algorithm"); !requestC14N[a] {
				return nil, errUnsupportedAlg(fmt.Errorf("canonicalization %q", a))
			}
		case "SignatureMethod":
			sigMethods++
			a := attr(c, "Algorithm")
			alg, ok := signatureAlgs[a]
			if !ok || (alg.hash == crypto.SHA1 && !allowSHA1) {
				return nil, errUnsupportedAlg(fmt.Errorf("signature method %q", a))
			}
		case "Reference":
			refs = append(refs, c)
		default:
			return nil, errBadSignature(fmt.Errorf("unexpected <%s> in SignedInfo", c.Tag))
		}
	}
	if c14nMethods != 1 || sigMethods != 1 {
		return nil, errBadSignature(errors.New("SignedInfo needs exactly one CanonicalizationMethod and SignatureMethod"))
	}
	if len(refs) != 1 {
		return nil, errBadSignature(fmt.Errorf("%d references, want 1", len(refs)))
	}
	return refs[0], nil
}

// checkReference checks the Reference of an enveloped signature
// (xmldsig-core §4.4.3): its URI names "#"+id, its transforms are at most
// the enveloped-signature transform and an accepted canonicalization, and
// its DigestMethod is accepted.
func checkReference(ref *etree.Element, id string, allowSHA1 bool) error {
	if uri, ok := attrOK(ref, "URI"); !ok || uri != "#"+id {
		return errBadSignature(fmt.Errorf("reference %q does not name the root %q", uri, id))
	}
	for _, c := range ref.ChildElements() {
		switch c.Tag {
		case "Transforms":
			ts := c.ChildElements()
			if len(ts) > 2 {
				return errBadSignature(errors.New("too many transforms"))
			}
			for _, t := range ts {
				if a := attr(t, "Algorithm"); a != AlgEnveloped && !requestC14N[a] {
					return errUnsupportedAlg(fmt.Errorf("transform %q", a))
				}
			}
		case "DigestMethod":
			a := attr(c, "Algorithm")
			h, ok := digestAlgs[a]
			if !ok || (h == crypto.SHA1 && !allowSHA1) {
				return errUnsupportedAlg(fmt.Errorf("digest method %q", a))
			}
		}
	}
	return nil
}

// requestC14N are the canonicalizations accepted in request signatures. saml-core §5.4.3 says exclusive
// canonicalization SHOULD be used (and Passport signs with it); inclusive C14N 1.0 and 1.1 are accepted too
// because common SP libraries sign requests with them by default (gosaml2 uses C14N 1.1). The
// WithComments variants are refused: comments are where injection attacks hide.
var requestC14N = map[string]bool{
	AlgExcC14N: true,
	"http://www.w3.org/TR/2001/REC-xml-c14n-20010315": true,
	"http://www.w3.org/2006/12/xml-c14n11":            true,
}

// walk calls f for el and every descendant element, in document order.
func walk(el *etree.Element, f func(*etree.Element)) {
	f(el)
	for _, c := range el.ChildElements() {
		walk(c, f)
	}
}
