package authn_test

import (
	"errors"
	"net/mail"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/saml/samltest/fuzzcorpus"
)

// bidiControls are the characters that reorder the text around them (Unicode's Bidi_Control): an address
// holding one can show on a page, in a mail or in the audit log as another address.
var bidiControls = []rune{0x061C, 0x200E, 0x200F, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069}

func emailSeeds() []fuzzcorpus.Seed {
	seed := func(name, s string) fuzzcorpus.Seed { return fuzzcorpus.Seed{Name: name, Values: []any{s}} }
	return []fuzzcorpus.Seed{
		seed("plain", "alice@example.com"),
		seed("mixed-case-and-spaces", "  Alice.Smith+jira@Example.COM \t"),
		seed("unicode-local-part", "jürgen@example.de"),
		seed("unicode-domain", "alice@bücher.example"),
		seed("display-name", "Alice <alice@example.com>"),
		seed("angle-brackets", "<alice@example.com>"),
		seed("quoted-local-part", `"alice smith"@example.com`),
		seed("quoted-plain", `"alice"@example.com`),
		seed("comment", "alice@example.com (Alice)"),
		seed("two-addresses", "alice@example.com, bob@example.com"),
		seed("no-at", "alice.example.com"),
		seed("two-ats", "alice@@example.com"),
		seed("domain-literal", "alice@[192.0.2.1]"),
		seed("empty", ""),
		seed("only-spaces", " \u00a0 "),
		seed("inner-space", "al ice@example.com"),
		seed("nbsp", "alice\u00a0@example.com"),
		seed("nul", "alice\x00@example.com"),
		seed("newline-header-injection", "alice@example.com\r\nBcc: eve@example.com"),
		seed("del", "alice\x7f@example.com"),
		seed("c1-control", "alice\u0085@example.com"),
		seed("invalid-utf8", "alice\xff@example.com"),
		seed("truncated-utf8", "alice@example.co\xc3"),
		seed("noncharacter", "alice\uffff@example.com"),
		seed("rtl-override", "alice\u202e@example.com"),
		seed("rtl-override-spoof", "moc.elpmaxe@\u202eecila"),
		seed("ltr-isolate", "alice\u2066@example.com"),
		seed("pop-isolate", "alice@example.com\u2069"),
		seed("rlm", "alice\u200f@example.com"),
		seed("arabic-letter-mark", "alice\u061c@example.com"),
		seed("zero-width-space", "alice\u200b@example.com"),
		seed("zero-width-joiner", "alice\u200d@example.com"),
		seed("bom-inside", "alice\ufeff@example.com"),
		seed("soft-hyphen", "al\u00adice@example.com"),
		seed("kelvin-sign", "\u212aevin@example.com"),
		seed("dotted-capital-i", "\u0130stanbul@example.com"),
		seed("long-254", strings.Repeat("a", 64)+"@"+strings.Repeat("b", 185)+".com"),
		seed("long-255", strings.Repeat("a", 64)+"@"+strings.Repeat("b", 186)+".com"),
		seed("grows-when-lowered", strings.Repeat("\u023a", 60)+"@"+strings.Repeat("b", 129)+".com"),
	}
}

// FuzzNormalizeEmail: an address NormalizeEmail returns is its own normal form (normalizing it again gives
// it back), is lower case, at most 254 bytes, valid UTF-8, one plain address with an @ and no display name,
// and holds no white space, control character, noncharacter or bidi control. Everything else is refused
// with the invalid-request error.
func FuzzNormalizeEmail(f *testing.F) {
	fuzzcorpus.Use(f, emailSeeds())
	f.Fuzz(func(t *testing.T, s string) {
		email, err := authn.NormalizeEmail(s)
		if err != nil {
			var de *authn.Error
			if !errors.As(err, &de) || !errors.Is(err, authn.ErrInvalid) || de.Message == "" {
				t.Fatalf("NormalizeEmail(%q): error %v (%T), want an invalid_request with a message", s, err, err)
			}
			if email != "" {
				t.Fatalf("NormalizeEmail(%q) = %q with error %v", s, email, err)
			}
			return
		}
		if again, err := authn.NormalizeEmail(email); err != nil || again != email {
			t.Fatalf("NormalizeEmail(%q) = %q, but NormalizeEmail(%q) = %q, %v", s, email, email, again, err)
		}
		if !utf8.ValidString(email) || len(email) > 254 || strings.ToLower(email) != email || !strings.Contains(email, "@") {
			t.Fatalf("NormalizeEmail(%q) = %q", s, email)
		}
		if a, err := mail.ParseAddress(email); err != nil || a.Address != email || a.Name != "" {
			t.Fatalf("NormalizeEmail(%q) = %q, which net/mail reads as %v, %v", s, email, a, err)
		}
		for _, r := range email {
			if unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Noncharacter_Code_Point, r) || unicode.Is(unicode.Bidi_Control, r) {
				t.Fatalf("NormalizeEmail(%q) = %q, which holds %U", s, email, r)
			}
		}
	})
}

// TestNormalizeEmailRefusesBidiControls: each bidi control, anywhere in an address, is refused, so that no
// address can be shown as another (U+202E turns "moc.elpmaxe@ecila" into what reads as alice@example.com).
func TestNormalizeEmailRefusesBidiControls(t *testing.T) {
	t.Parallel()
	if len(bidiControls) != 12 {
		t.Fatalf("%d bidi controls listed", len(bidiControls))
	}
	for _, r := range bidiControls {
		if !unicode.Is(unicode.Bidi_Control, r) {
			t.Fatalf("%U is not a bidi control", r)
		}
		for _, s := range []string{string(r) + "alice@example.com", "ali" + string(r) + "ce@example.com", "alice@exam" + string(r) + "ple.com", "alice@example.com" + string(r)} {
			if email, err := authn.NormalizeEmail(s); !errors.Is(err, authn.ErrInvalid) {
				t.Errorf("NormalizeEmail(%q) = %q, %v; want the invalid-request error", s, email, err)
			}
		}
	}
}
