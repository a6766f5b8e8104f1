package saml

import (
	"bytes"
	"encoding/base64"
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestDecodeRedirect(t *testing.T) {
	t.Parallel()
	msg := []byte(authnRequestXML)
	relay := "https://start.atlassian.com/?a=1&b=" + strings.Repeat("x", 200)
	t.Run("unsigned", func(t *testing.T) {
		t.Parallel()
		m, err := DecodeRedirect(redirectQuery(t, msg, relay, nil, ""), "SAMLRequest")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(m.XML, msg) || m.RelayState != relay || m.Binding != BindingRedirect {
			t.Fatalf("got %+v", m)
		}
		if m.Signature != nil || m.SignedOctets != nil || m.SigAlg != "" {
			t.Fatal("unsigned message has signature fields")
		}
	})
	t.Run("signed keeps raw octets in binding order", func(t *testing.T) {
		t.Parallel()
		q := redirectQuery(t, msg, relay, mustKey(t, "sp-key.pem"), AlgRSASHA256)
		// Move Signature first and add an unrelated parameter: the signed
		// octets must still be SAMLRequest, RelayState, SigAlg, raw.
		i := strings.Index(q, "&Signature=")
		shuffled := q[i+1:] + "&foo=bar&" + q[:i]
		m, err := DecodeRedirect(shuffled, "SAMLRequest")
		if err != nil {
			t.Fatal(err)
		}
		if string(m.SignedOctets) != q[:i] {
			t.Fatalf("signed octets\n%s\nwant\n%s", m.SignedOctets, q[:i])
		}
		if m.SigAlg != AlgRSASHA256 || len(m.Signature) != 256 {
			t.Fatalf("SigAlg %q, %d signature bytes", m.SigAlg, len(m.Signature))
		}
	})
	t.Run("unescaped plus in base64", func(t *testing.T) {
		t.Parallel()
		b64 := base64.StdEncoding.EncodeToString(mustDeflate(t, msg))
		m, err := DecodeRedirect("SAMLRequest="+strings.ReplaceAll(url.QueryEscape(b64), "%2B", "+"), "SAMLRequest")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(m.XML, msg) {
			t.Fatal("message differs")
		}
	})
	t.Run("SAMLResponse parameter", func(t *testing.T) {
		t.Parallel()
		q := strings.Replace(redirectQuery(t, msg, "", nil, ""), "SAMLRequest=", "SAMLResponse=", 1)
		if _, err := DecodeRedirect(q, "SAMLResponse"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("relay state at limit", func(t *testing.T) {
		t.Parallel()
		m, err := DecodeRedirect(redirectQuery(t, msg, strings.Repeat("r", MaxRelayStateSize), nil, ""), "SAMLRequest")
		if err != nil || len(m.RelayState) != MaxRelayStateSize {
			t.Fatalf("err %v", err)
		}
	})
}

func TestDecodeRedirectRefuses(t *testing.T) {
	t.Parallel()
	msg := []byte(authnRequestXML)
	good := redirectQuery(t, msg, "", nil, "")
	b64 := func(b []byte) string { return url.QueryEscape(base64.StdEncoding.EncodeToString(b)) }
	// A deflate bomb: 64 MiB of zeros compress to about 64 KiB, under the
	// encoded limit; inflation must stop at MaxInflatedSize.
	bomb := mustDeflate(t, bytes.Repeat([]byte{0}, 16<<20))
	tests := []struct {
		name, query, code string
	}{
		{"empty query", "", CodeMissingParameter},
		{"empty parameter", "SAMLRequest=", CodeMissingParameter},
		{"other parameter", strings.Replace(good, "SAMLRequest=", "SAMLResponse=", 1), CodeMissingParameter},
		{"duplicate message", good + "&" + good, CodeDuplicateParameter},
		{"duplicate relay state", good + "&RelayState=a&RelayState=b", CodeDuplicateParameter},
		{"duplicate by escaped key", good + "&SAML%52equest=x", CodeDuplicateParameter},
		{"bad percent escape", "SAMLRequest=%zz", CodeMalformedQuery},
		{"bad percent escape in key", good + "&Relay%zz=1", CodeMalformedQuery},
		{"not base64", "SAMLRequest=%%%%", CodeMalformedQuery},
		{"not base64 after unescape", "SAMLRequest=abc*def", CodeMalformedBase64},
		{"not deflated", "SAMLRequest=" + b64(msg), CodeNotDeflated},
		{"zlib not raw deflate", "SAMLRequest=" + b64(append([]byte{0x78, 0x9c}, mustDeflate(t, msg)...)), CodeNotDeflated},
		{"encoded too large", "SAMLRequest=" + strings.Repeat("A", MaxEncodedSize+4), CodeTooLarge},
		{"deflate bomb", "SAMLRequest=" + b64(bomb), CodeTooLarge},
		{"relay state too long", redirectQuery(t, msg, strings.Repeat("r", MaxRelayStateSize+1), nil, ""), CodeTooLarge},
		{"signature not base64", good + "&SigAlg=x&Signature=***", CodeMalformedBase64},
		{"signature empty", good + "&SigAlg=x&Signature=", CodeMalformedBase64},
		{"SigAlg without Signature", good + "&SigAlg=" + url.QueryEscape(AlgRSASHA256), CodeMissingParameter},
		{"SigAlg without =", good + "&SigAlg&Signature=" + url.QueryEscape(b64([]byte("signature"))), CodeMalformedQuery},
		{"RelayState without =", good + "&RelayState", CodeMalformedQuery},
		{"Signature without SigAlg", good + "&Signature=" + url.QueryEscape(b64([]byte("signature"))), CodeMissingParameter},
		{"not xml", "SAMLRequest=" + b64(mustDeflate(t, []byte("hello"))), CodeMalformedXML},
		{"empty xml", "SAMLRequest=" + b64(mustDeflate(t, nil)), CodeMalformedXML},
		{"doctype", "SAMLRequest=" + b64(mustDeflate(t, []byte(`<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>`))), CodeMalformedXML},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, err := DecodeRedirect(tt.query, "SAMLRequest")
			if m != nil {
				t.Fatal("got a message with an error")
			}
			wantCode(t, err, tt.code)
		})
	}
}

func TestDecodePOST(t *testing.T) {
	t.Parallel()
	msg := []byte(authnRequestXML)
	t.Run("plain", func(t *testing.T) {
		t.Parallel()
		m, err := DecodePOST(postForm(msg, "rs"), "SAMLRequest")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(m.XML, msg) || m.RelayState != "rs" || m.Binding != BindingPOST {
			t.Fatalf("got %+v", m)
		}
	})
	t.Run("line-wrapped base64", func(t *testing.T) {
		t.Parallel()
		b := base64.StdEncoding.EncodeToString(msg)
		var wrapped strings.Builder
		for i := 0; i < len(b); i += 76 {
			wrapped.WriteString(b[i:min(i+76, len(b))] + "\r\n")
		}
		m, err := DecodePOST(url.Values{"SAMLRequest": {wrapped.String()}}, "SAMLRequest")
		if err != nil || !bytes.Equal(m.XML, msg) {
			t.Fatalf("err %v", err)
		}
	})
}

func TestDecodePOSTRefuses(t *testing.T) {
	t.Parallel()
	msg := []byte(authnRequestXML)
	enc := base64.StdEncoding.EncodeToString
	tests := []struct {
		name string
		form url.Values
		code string
	}{
		{"missing", url.Values{}, CodeMissingParameter},
		{"empty", url.Values{"SAMLRequest": {""}}, CodeMissingParameter},
		{"twice", url.Values{"SAMLRequest": {enc(msg), enc(msg)}}, CodeDuplicateParameter},
		{"relay state twice", url.Values{"SAMLRequest": {enc(msg)}, "RelayState": {"a", "b"}}, CodeDuplicateParameter},
		{"not base64", url.Values{"SAMLRequest": {"not*base64"}}, CodeMalformedBase64},
		{"encoded too large", url.Values{"SAMLRequest": {strings.Repeat("A", MaxEncodedSize+1)}}, CodeTooLarge},
		{"relay state too long", postForm(msg, strings.Repeat("r", MaxRelayStateSize+1)), CodeTooLarge},
		{"deflated (that is Redirect encoding)", postForm(mustDeflate(t, msg), ""), CodeMalformedXML},
		{"truncated xml", postForm(msg[:len(msg)-5], ""), CodeMalformedXML},
		{"doctype", postForm([]byte(`<!DOCTYPE x><x/>`), ""), CodeMalformedXML},
		{"processing instruction", postForm([]byte(`<x><?evil x?></x>`), ""), CodeMalformedXML},
		{"duplicate attribute", postForm([]byte(`<x a="1" a="2"/>`), ""), CodeMalformedXML},
		{"two roots", postForm([]byte(`<x/><y/>`), ""), CodeMalformedXML},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, err := DecodePOST(tt.form, "SAMLRequest")
			if m != nil {
				t.Fatal("got a message with an error")
			}
			wantCode(t, err, tt.code)
		})
	}
}

func TestCheckXML(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, doc, code string
	}{
		{"ok with declaration", `<?xml version="1.0" encoding="UTF-8"?><x/>`, ""},
		{"too large", "<x>" + strings.Repeat("a", MaxInflatedSize) + "</x>", CodeTooLarge},
		{"billion laughs", `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><lolz>&lol2;</lolz>`, CodeMalformedXML},
		{"external entity", `<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>`, CodeMalformedXML},
		{"too deep", strings.Repeat("<a>", 100) + strings.Repeat("</a>", 100), CodeMalformedXML},
		{"colon in attribute name", `<x xmlns:a="urn:a" a:b:c="1"/>`, CodeMalformedXML},
		{"whitespace only", " \n", CodeMalformedXML},
		{"UTF-8 byte order mark", "\xEF\xBB\xBF" + `<?xml version="1.0" encoding="UTF-8"?><x/>`, ""},
		{"byte order mark only", "\xEF\xBB\xBF", CodeMalformedXML},
		{"byte order mark inside", `<x/>` + "\xEF\xBB\xBF", CodeMalformedXML},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := CheckXML([]byte(tt.doc))
			if tt.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantCode(t, err, tt.code)
		})
	}
}

func TestErrorIs(t *testing.T) {
	t.Parallel()
	_, err := DecodePOST(url.Values{}, "SAMLRequest")
	if !errors.Is(err, &Error{Code: CodeMissingParameter}) {
		t.Fatal("errors.Is does not match on code")
	}
	if errors.Is(err, &Error{Code: CodeTooLarge}) {
		t.Fatal("errors.Is matches another code")
	}
	var e *Error
	if !errors.As(err, &e) || strings.Contains(e.Message, "SAMLRequest") {
		t.Fatalf("public message leaks detail: %q", e.Message)
	}
}
