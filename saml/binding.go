package saml

import (
	"bytes"
	"compress/flate"
	"encoding/base64"
	"errors"
	"github.com/beevik/etree"
	"io"
	"net/url"
	"strings"
	"sync"
)

// Limits applied by the binding decoders.
const (
	// MaxEncodedSize is the largest accepted encoded (base64, and for
	// HTTP-Redirect still percent-encoded) SAML message parameter.
	MaxEncodedSize = 64 << 10
	// MaxInflatedSize is the largest accepted XML message after base64
	// decoding and, for HTTP-Redirect, inflation. Inflation reads through a
	// limit, so a deflate bomb costs at most this much.
	MaxInflatedSize = 128 << 10
	// MaxRelayStateSize is the longest accepted RelayState. saml-bindings
	// §3.4.3 and §3.5.3 say a RelayState MUST NOT exceed 80 bytes, but
	// Atlassian sends longer ones, so up to 1024 bytes are accepted.
	MaxRelayStateSize = 1024
)

// InboundMessage is a SAML protocol message taken off a binding.
type InboundMessage struct {
	// XML is the decoded (and, for HTTP-Redirect, inflated) message. It has
	// passed CheckXML.
	XML []byte
	// RelayState is the decoded RelayState parameter, if any.
	RelayState string
	// Binding is BindingRedirect or BindingPOST.
	Binding string

	// For HTTP-Redirect signatures (saml-bindings §3.4.4.1): SigAlg and the
	// base64-decoded Signature, and SignedOctets, the octets the signature
	// covers: "SAMLRequest=v&RelayState=v&SigAlg=v" (RelayState only when the
	// query carries it) built in that order, which the binding mandates,
	// from the raw, still percent-encoded values as they appeared in the
	// query. Empty when the message is unsigned or came by HTTP-POST.
	SigAlg       string
	Signature    []byte
	SignedOctets []byte

	// doc is XML as CheckXML parsed it, so that reading the message does not
	// parse (and check) it a second time. Nil for a message built by hand.
	doc *etree.Document
}

// DecodeRedirect decodes an HTTP-Redirect binding message (saml-bindings
// §3.4.4.1) from rawQuery, the raw (percent-encoded) query string. param is
// "SAMLRequest" or "SAMLResponse". Each of param, RelayState, SigAlg and
// Signature may appear at most once. The message is base64-decoded, inflated
// (raw DEFLATE, RFC 1951) through a MaxInflatedSize limit and checked with
// CheckXML. Errors are *Error with codes missing_parameter,
// duplicate_parameter, malformed_query, message_too_large, malformed_base64,
// not_deflated or malformed_xml.
func DecodeRedirect(rawQuery string, param string) (*InboundMessage, error) {
	if len(rawQuery) > MaxEncodedSize+4*MaxRelayStateSize+4096 {
		return nil, newError(CodeTooLarge, "The SAML message is too large.", nil)
	}
	raw, err := redirectParams(rawQuery, param)
	if err != nil {
		return nil, err
	}
	encoded, ok := raw[param]
	if !ok || encoded == "" {
		return nil, newError(CodeMissingParameter, "The request carries no SAML message.", errors.New(param))
	}
	if len(encoded) > MaxEncodedSize {
		return nil, newError(CodeTooLarge, "The SAML message is too large.", nil)
	}
	values := map[string]string{}
	for k, v := range raw {
		dv, err := url.QueryUnescape(v)
		if err != nil {
			return nil, newError(CodeMalformedQuery, "The request's query string is malformed.", err)
		}
		values[k] = dv
	}
	m := &InboundMessage{Binding: BindingRedirect}
	deflated, err := decodeBase64(values[param], true)
	if err != nil {
		return nil, err
	}
	if m.XML, err = inflate(deflated); err != nil {
		return nil, err
	}
	if m.RelayState, err = relayState(values["RelayState"]); err != nil {
		return nil, err
	}
	if err := m.readRedirectSignature(param, raw, values); err != nil {
		return nil, err
	}
	if m.doc, err = parseXML(m.XML); err != nil {
		return nil, err
	}
	return m, nil
}

// redirectParams returns the raw (still percent-encoded) values of the query
// parameters the HTTP-Redirect binding defines (saml-bindings §3.4.4.1):
// param, RelayState, SigAlg and Signature, each at most once. Others are
// ignored.
func redirectParams(rawQuery, param string) (map[string]string, error) {
	raw := map[string]string{}
	for part := range strings.SplitSeq(rawQuery, "&") {
		if part == "" {
			continue
		}
		k, v, hasValue := strings.Cut(part, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			return nil, newError(CodeMalformedQuery, "The request's query string is malformed.", err)
		}
		switch key {
		case param, "RelayState", "SigAlg", "Signature":
		default:
			continue
		}
		if !hasValue {
			// The signed octets are "key=value" as the query spells them: a bare key is not that.
			return nil, newError(CodeMalformedQuery, "The request's query string is malformed.", errors.New(key+" without a value"))
		}
		if _, dup := raw[key]; dup {
			return nil, newError(CodeDuplicateParameter, "A SAML parameter appears more than once.", errors.New(key))
		}
		raw[key] = v
	}
	return raw, nil
}

// readRedirectSignature fills m's SigAlg, Signature and SignedOctets from a
// redirect query's raw and decoded values (saml-bindings §3.4.4.1). A SigAlg
// without a Signature is refused, and so is a Signature without a SigAlg: the
// signed octets end with the SigAlg parameter, so without it there are none to
// verify.
func (m *InboundMessage) readRedirectSignature(param string, raw, values map[string]string) error {
	sig, ok := values["Signature"]
	_, hasAlg := values["SigAlg"]
	switch {
	case !ok && hasAlg:
		return newError(CodeMissingParameter, "The request names a signature algorithm but carries no signature.", nil)
	case !ok:
		return nil
	case !hasAlg:
		return newError(CodeMissingParameter, "The request carries a signature but names no signature algorithm.", nil)
	}
	m.SigAlg = values["SigAlg"]
	var err error
	if m.Signature, err = decodeBase64(sig, true); err != nil {
		return err
	}
	if len(m.Signature) == 0 {
		return newError(CodeMalformedBase64, "The request's signature is empty.", nil)
	}
	m.SignedOctets = redirectSignedOctets(param, raw)
	return nil
}

// redirectSignedOctets builds what a redirect signature covers:
// "param=v[&RelayState=v]&SigAlg=v" from the raw values, in that order.
func redirectSignedOctets(param string, raw map[string]string) []byte {
	encoded := raw[param]
	octets := make([]byte, 0, len(param)+len(encoded)+len(raw["RelayState"])+len(raw["SigAlg"])+32)
	octets = append(octets, param...)
	octets = append(octets, '=')
	octets = append(octets, encoded...)
	if rs, ok := raw["RelayState"]; ok {
		octets = append(octets, "&RelayState="...)
		octets = append(octets, rs...)
	}
	octets = append(octets, "&SigAlg="...)
	return append(octets, raw["SigAlg"]...)
}

// DecodePOST decodes an HTTP-POST binding message (saml-bindings §3.5.4) from
// a parsed form. param is "SAMLRequest" or "SAMLResponse"; it and RelayState
// may appear at most once. The message is base64-decoded (line breaks
// tolerated) and checked with CheckXML. Errors are *Error with codes
// missing_parameter, duplicate_parameter, message_too_large, malformed_base64 or
// malformed_xml.
func DecodePOST(form url.Values, param string) (*InboundMessage, error) {
	vs := form[param]
	switch {
	case len(vs) == 0 || vs[0] == "":
		return nil, newError(CodeMissingParameter, "The request carries no SAML message.", errors.New(param))
	case len(vs) > 1:
		return nil, newError(CodeDuplicateParameter, "A SAML parameter appears more than once.", errors.New(param))
	case len(vs[0]) > MaxEncodedSize:
		return nil, newError(CodeTooLarge, "The SAML message is too large.", nil)
	}
	if len(form["RelayState"]) > 1 {
		return nil, newError(CodeDuplicateParameter, "A SAML parameter appears more than once.", errors.New("RelayState"))
	}
	m := &InboundMessage{Binding: BindingPOST}
	var err error
	if m.XML, err = decodeBase64(vs[0], false); err != nil {
		return nil, err
	}
	if len(m.XML) > MaxInflatedSize {
		return nil, newError(CodeTooLarge, "The SAML message is too large.", nil)
	}
	if m.RelayState, err = relayState(form.Get("RelayState")); err != nil {
		return nil, err
	}
	if m.doc, err = parseXML(m.XML); err != nil {
		return nil, err
	}
	return m, nil
}

func relayState(s string) (string, error) {
	if len(s) > MaxRelayStateSize {
		return "", newError(CodeTooLarge, "The RelayState is too long.", nil)
	}
	return s, nil
}

// decodeBase64 decodes standard base64, ignoring ASCII whitespace (POST
// bodies are often line-wrapped). For the Redirect binding a space is turned
// back into '+', since some senders do not percent-encode '+'.
func decodeBase64(s string, spaceIsPlus bool) ([]byte, error) {
	if spaceIsPlus {
		s = strings.ReplaceAll(s, " ", "+")
	}
	s = strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n':
			return -1
		}
		return r
	}, s)
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, newError(CodeMalformedBase64, "The SAML message is not valid base64.", err)
	}
	return b, nil
}

// inflate inflates raw DEFLATE data, reading at most MaxInflatedSize+1 bytes.
// inflaters keeps DEFLATE readers (each holds a 32 KB window) for reuse.
var inflaters sync.Pool

func inflate(b []byte) ([]byte, error) {
	var r io.ReadCloser
	if pooled, ok := inflaters.Get().(io.ReadCloser); ok {
		if err := pooled.(flate.Resetter).Reset(bytes.NewReader(b), nil); err == nil {
			r = pooled
		}
	}
	if r == nil {
		r = flate.NewReader(bytes.NewReader(b))
	}
	defer inflaters.Put(r)
	out, err := io.ReadAll(io.LimitReader(r, MaxInflatedSize+1))
	if err != nil {
		return nil, newError(CodeNotDeflated, "The SAML message is not DEFLATE-compressed.", err)
	}
	if len(out) > MaxInflatedSize {
		return nil, newError(CodeTooLarge, "The SAML message is too large.", nil)
	}
	return out, nil
}

// root returns the root element of m's XML, parsing it only if m was not
// made by DecodeRedirect or DecodePOST (which parsed and checked it).
func (m *InboundMessage) root() (*etree.Element, error) {
	if m.doc != nil {
		return m.doc.Root(), nil
	}
	doc, err := parseXML(m.XML)
	if err != nil {
		return nil, err
	}
	return doc.Root(), nil
}
