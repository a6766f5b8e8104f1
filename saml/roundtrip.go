package saml

import (
	"bytes"
	"encoding/binary"
	"encoding/xml"
	"io"
	"sync"

	xrv "github.com/mattermost/xml-roundtrip-validator"
)

// checkRoundTrip is xrv.Validate(bytes.NewReader(b)), accepting and refusing the same documents, at a
// fraction of its cost for the messages an IdP sees over and over.
//
// xrv.Validate reads the document a byte at a time through a copying reader and runs xrv.CheckToken on each
// token, which builds a fresh encoding/xml encoder (a 4 KiB buffer) and decoder to round-trip it: 20% of the
// bytes an IdP allocates per login. CheckToken's verdict depends on the token alone, and an SP's
// AuthnRequests repeat all their tokens but the root's start tag (its ID and IssueInstant) — the same Issuer,
// NameIDPolicy and end tags every time. So the tokens that passed are remembered (passed.has), and only new
// ones are round-tripped. A token is remembered by an unambiguous encoding of all its fields, never by its
// position or its raw bytes (a self-closing tag's end token has none), and only tokens that passed: a token
// that fails is checked again each time and refused as xrv refuses it.
func checkRoundTrip(b []byte) error {
	d := newRawDecoder(b)
	var key []byte
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		var known bool
		key, known = tokenKey(key[:0], tok)
		remember := known && len(key) <= passedMaxKey
		if remember && passed.has(key) {
			continue
		}
		if err := xrv.CheckToken(tok); err != nil {
			return err
		}
		if remember {
			passed.add(key)
		}
	}
}

// newRawDecoder reads b as xrv.Validate reads a document: not strictly, any declared charset taken as UTF-8.
// bytes.Reader is an io.ByteReader, so the decoder reads it without a buffer of its own.
func newRawDecoder(b []byte) *xml.Decoder {
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = false
	d.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	return d
}

// passedMaxKey bounds the tokens remembered: SAML's repeating tokens are short (an end tag, an Issuer, a
// NameIDPolicy: 13–102 bytes of key in an Atlassian request); a long one is most likely unique (a root's
// start tag with its ID and instant, 399 there; a signature value), and remembering it would only take the
// set's write lock on every message and push out the tokens that do repeat.
const passedMaxKey = 256

// passedMax bounds the tokens remembered at once: about 1 MB at most. When full the set starts over, so a
// client sending endless distinct tokens costs only what xrv itself costs.
const passedMax = 4096

// passed is the set of tokens that survived xrv.CheckToken, shared by every message.
var passed tokenSet

type tokenSet struct {
	mu  sync.RWMutex
	set map[string]struct{}
}

func (s *tokenSet) has(key []byte) bool {
	s.mu.RLock()
	_, ok := s.set[string(key)] // no allocation: the compiler looks up by the bytes
	s.mu.RUnlock()
	return ok
}

// reset forgets every token.
func (s *tokenSet) reset() {
	s.mu.Lock()
	s.set = nil
	s.mu.Unlock()
}

func (s *tokenSet) add(key []byte) {
	s.mu.Lock()
	if s.set == nil || len(s.set) >= passedMax {
		s.set = make(map[string]struct{}, 64)
	}
	s.set[string(key)] = struct{}{}
	s.mu.Unlock()
}

// tokenKey appends to dst an encoding of tok that two tokens share only when every field of theirs is equal:
// a kind byte, then each field as its length and its bytes. known is false for a kind RawToken never
// returns, which is then never remembered.
func tokenKey(dst []byte, tok xml.Token) (key []byte, known bool) {
	field := func(s []byte) { dst = binary.AppendUvarint(dst, uint64(len(s))); dst = append(dst, s...) }
	str := func(s string) { dst = binary.AppendUvarint(dst, uint64(len(s))); dst = append(dst, s...) }
	switch t := tok.(type) {
	case xml.StartElement:
		dst = append(dst, 'S')
		str(t.Name.Space)
		str(t.Name.Local)
		dst = binary.AppendUvarint(dst, uint64(len(t.Attr)))
		for _, a := range t.Attr {
			str(a.Name.Space)
			str(a.Name.Local)
			str(a.Value)
		}
	case xml.EndElement:
		dst = append(dst, 'E')
		str(t.Name.Space)
		str(t.Name.Local)
	case xml.CharData:
		dst = append(dst, 'C')
		field(t)
	case xml.Comment:
		dst = append(dst, 'M')
		field(t)
	case xml.ProcInst:
		dst = append(dst, 'P')
		str(t.Target)
		field(t.Inst)
	case xml.Directive:
		dst = append(dst, 'D')
		field(t)
	default:
		return dst, false
	}
	return dst, true
}
