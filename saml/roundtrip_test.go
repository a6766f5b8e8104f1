package saml

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	xrv "github.com/mattermost/xml-roundtrip-validator"
)

// roundTripDocs are documents on both sides of xml-roundtrip-validator's line: those of its own tests
// (colons in names, empty names and attribute names, directives, unparseable XML), and SAML messages.
var roundTripDocs = []string{
	`<Root></Root>`,
	`<x:Root></x:Root>`,
	`<x:Root xmlns:x="http://example.com/"></x:Root>`,
	`<x:Root xmlns="http://example.com/"></x:Root>`,
	`<Root xmlns="http://example.com/1" xmlns="http://example.com/2"></Root>`,
	`<?xml version="1.0" encoding="EUC-JP"?><Root></Root>`,
	`<Root>text &quot;hello&quot;</Root>`,
	`<Root><![CDATA[text "hello"]]></Root>`,
	`<!-- comment --><Root/>`,
	`<Root xmlns="http://example.com/1" x:attr="y"/>`,
	`<x:Root xmlns="http://example.com/1" x:attr="y" x:attr2="z"/>`,
	`<x:Root xmlns:x="http://example.com/"><Element xmlns:x="http://example.com/"/></x:Root>`,
	`&reference;`,
	`<x::Root/>`,
	`<Root><x::Element></::Element></Root>`,
	`<Root><Element ::attr="foo"></Element></Root>`,
	`<Root></x::Element></Root>`,
	`<x:>`,
	`</x:>`,
	`<Root :="value"/>`,
	`<Root x:="value"/>`,
	`<Root xmlns="x" xmlns:="y"></Root>`,
	`<Root xmlns="http://example.com/"/>`,
	"<Root>\n\t\t\t<! <<!-- -->!-->\"--> \" >\n\t\t\t<! \">\" <X/>>\n\t\t</Root>",
	`<Root><! <<!-- -->!-- x --> y></Root>`,
	`<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">`,
	`<! ">" <X/>>`,
	`<!name <!-- comment --><nesting <more nesting>>>`,
	`<Root><!--`,
	`<Root>]]></Root>`,
	"<Root>\r\n    <! <<!-- -->!-- x --> y>\r\n    <Element ::attr=\"foo\"></x::Element>\r\n</Root>",
	authnRequestXML,
	richRequestXML,
	// The same tokens once refused, once in a document that passes: what fails is never remembered.
	`<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"><saml::Issuer>a</saml::Issuer></samlp:AuthnRequest>`,
	`<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"><Issuer>a</Issuer></samlp:AuthnRequest>`,
	`<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"><saml::Issuer>a</saml::Issuer></samlp:AuthnRequest>`,
}

// TestRoundTripCheckAsXRV: checkRoundTrip accepts exactly what xrv.Validate accepts, with nothing remembered,
// after each document's own tokens are, and after every other document's are.
func TestRoundTripCheckAsXRV(t *testing.T) {
	docs := append([]string(nil), roundTripDocs...)
	for _, doc := range hostileCorpus(t) {
		docs = append(docs, string(doc))
	}
	for _, forget := range []bool{true, false} {
		for round := range 2 {
			for _, doc := range docs {
				if forget {
					passed.reset()
				}
				mustCheckLikeXRV(t, []byte(doc))
				if round == 1 && strings.Contains(doc, "::") && checkRoundTrip([]byte(doc)) == nil {
					t.Fatalf("a name with two colons passed once its document's other tokens were remembered: %q", doc)
				}
			}
		}
	}
}

// mustCheckLikeXRV fails t when checkRoundTrip and xrv.Validate disagree on b, checking it twice: the second
// time its tokens that passed are remembered.
func mustCheckLikeXRV(t *testing.T, b []byte) {
	t.Helper()
	want := xrv.Validate(bytes.NewReader(b))
	for i := range 2 {
		if got := checkRoundTrip(b); (got == nil) != (want == nil) {
			t.Fatalf("%q, check %d: checkRoundTrip says %v, xml-roundtrip-validator %v", b, i+1, got, want)
		}
	}
}

// TestTokenKeys: tokens that differ in any field, or in kind, never share a key, whatever their bytes.
func TestTokenKeys(t *testing.T) {
	docs := []string{
		`<a b="c"/>`, `<a b="c" />`, `<a bc=""/>`, `<ab c=""/>`, `<a:b c="d"/>`, `<a b:c="d"/>`, `<a b="c" d="e"/>`,
		`<a d="e" b="c"/>`, `<a/>`, `<b/>`, `<a></a>`, `<a>text</a>`, `<a>tex<!---->t</a>`, `<a><!--text--></a>`,
		`<a><?text?></a>`, `<a><?te xt?></a>`, `<a><!text></a>`, `<a><![CDATA[text]]></a>`, `<a>&lt;</a>`, `<a><</a>`,
		"<a>\n</a>", "<a>\r\n</a>",
	}
	seen := map[string]string{}
	for _, doc := range docs {
		d := newRawDecoder([]byte(doc))
		for {
			tok, err := d.RawToken()
			if err != nil {
				break
			}
			kb, _ := tokenKey(nil, tok)
			k := string(kb)
			desc := fmt.Sprintf("%T %v", tok, tok)
			if other, ok := seen[k]; ok && other != desc {
				t.Errorf("%s and %s share a key", other, desc)
			}
			seen[k] = desc
		}
	}
	if len(seen) < 20 {
		t.Fatalf("only %d distinct tokens read", len(seen))
	}
}

// TestPassedBounded: the remembered tokens start over when passedMax are held, and long tokens are never
// remembered.
func TestPassedBounded(t *testing.T) {
	passed.reset()
	for i := range passedMax + 10 {
		if err := checkRoundTrip(fmt.Appendf(nil, `<r%d/>`, i)); err != nil {
			t.Fatal(err)
		}
	}
	passed.mu.RLock()
	n := len(passed.set)
	passed.mu.RUnlock()
	if n == 0 || n > passedMax {
		t.Fatalf("%d tokens remembered, want 1 to %d", n, passedMax)
	}
	passed.reset()
	long := `<r a="` + strings.Repeat("x", passedMaxKey) + `"/>`
	if err := checkRoundTrip([]byte(long)); err != nil {
		t.Fatal(err)
	}
	if key, _ := tokenKey(nil, mustFirstToken(t, long)); passed.has(key) {
		t.Fatal("a token longer than passedMaxKey was remembered")
	}
}

func mustFirstToken(t *testing.T, doc string) any {
	t.Helper()
	tok, err := newRawDecoder([]byte(doc)).RawToken()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// BenchmarkRoundTripCheck compares the check of an Atlassian-shaped AuthnRequest (a new ID each time, as
// every real request has, the rest as the SP always sends it) by checkRoundTrip with xrv.Validate's.
func BenchmarkRoundTripCheck(b *testing.B) {
	doc := []byte(strings.Replace(authnRequestXML, `_req-4f2a9c`, "_"+strings.Repeat("0", 16), 1))
	id := bytes.Index(doc, []byte(`ID="_`)) + len(`ID="_`)
	n := uint64(0)
	next := func() []byte { // the same buffer with the next ID written in place
		n++
		copy(doc[id:id+16], fmt.Appendf(nil, "%016x", n))
		return doc
	}
	b.Run("xml-roundtrip-validator", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := xrv.Validate(bytes.NewReader(next())); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("checkRoundTrip", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := checkRoundTrip(next()); err != nil {
				b.Fatal(err)
			}
		}
	})
}
