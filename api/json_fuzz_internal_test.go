package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/winkk/passport/api/deviceapi"
	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/saml/samltest/fuzzcorpus"
)

// requestBodies are the types the server decodes request bodies into with decodeJSON: every body of the
// device API, and those of the admin API, which share the decoder.
var requestBodies = []reflect.Type{
	reflect.TypeFor[deviceapi.EnrollByInvitationRequest](),
	reflect.TypeFor[deviceapi.RequestEmailCodeRequest](),
	reflect.TypeFor[deviceapi.EnrollByEmailRequest](),
	reflect.TypeFor[deviceapi.RenameDeviceRequest](),
	reflect.TypeFor[deviceapi.UpdatePushTokenRequest](),
	reflect.TypeFor[deviceapi.AnswerRequest](),
	reflect.TypeFor[authn.AppPatch](),
	reflect.TypeFor[authn.UserPatch](),
	reflect.TypeFor[struct {
		Email string `json:"email"`
	}](), // createInvitation
	reflect.TypeFor[struct {
		Grace string `json:"grace"`
	}](), // activateKey
}

// jsonMessages are every message decodeJSON may answer with; %s marks the part taken from the request, a
// JSON name, quoted. Nothing else may reach a client: no Go type, no decoder internals.
var jsonMessages = []*regexp.Regexp{
	regexp.MustCompile(`^The request body is empty; send a JSON object\.$`),
	regexp.MustCompile(`^The request body is not valid JSON \(at byte \d+\)\.$`),
	regexp.MustCompile(`^The request body is not valid UTF-8\.$`),
	regexp.MustCompile(`^The request body holds a \\u escape of half a UTF-16 surrogate pair, which is not a character\.$`),
	regexp.MustCompile(`^The request body must be a JSON object\.$`),
	regexp.MustCompile(`^The request body must hold a single JSON object\.$`),
	regexp.MustCompile(`^The request body could not be read as JSON\.$`),
	regexp.MustCompile(`^Field ("(?:[^"\\]|\\.)*") must be (?:a string|true or false|a whole number|a number|an array|an object)\.$`),
	regexp.MustCompile(`^Unknown field ("(?:[^"\\]|\\.)*")\.$`),
	regexp.MustCompile(`^Field ("(?:[^"\\]|\\.)*") appears more than once\.$`),
}

// jsonNames are the member names of t's JSON form, at any depth.
func jsonNames(t reflect.Type, into map[string]bool) map[string]bool {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return into
	}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" {
			name = f.Name
		}
		into[name] = true
		jsonNames(f.Type, into)
	}
	return into
}

// strictMembers is what a decoded body may hold: an object whose members, at every depth, are named
// exactly as t's fields and each once.
func strictMembers(raw json.RawMessage, t reflect.Type) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) > 0 && raw[0] == '{' && t.Kind() == reflect.Struct:
		fields := map[string]reflect.Type{}
		for f := range t.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" {
				name = f.Name
			}
			fields[name] = f.Type
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.Token()
		seen := map[string]bool{}
		for dec.More() {
			tok, _ := dec.Token()
			name := tok.(string)
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				return err
			}
			ft, ok := fields[name]
			if !ok || seen[name] {
				return fmt.Errorf("member %q unknown or twice", name)
			}
			seen[name] = true
			if err := strictMembers(v, ft); err != nil {
				return err
			}
		}
	case len(raw) > 0 && raw[0] == '[' && t.Kind() == reflect.Slice:
		var elems []json.RawMessage
		if err := json.Unmarshal(raw, &elems); err != nil {
			return err
		}
		for _, e := range elems {
			if err := strictMembers(e, t.Elem()); err != nil {
				return err
			}
		}
	case len(raw) > 0 && (raw[0] == '{' || raw[0] == '['):
		return fmt.Errorf("%s where %s goes", raw[:1], t)
	}
	return nil
}

// sameValues reports whether decoding kept every value of the body: v, encoded again, holds each member the
// body gave, at every depth, with the same JSON value (null aside, which leaves a field as it was; fields
// the body did not give may appear with their zero values).
func sameValues(body []byte, v any) error {
	var in, out any
	if err := json.Unmarshal(body, &in); err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return err
	}
	if !kept(in, out) {
		return fmt.Errorf("decoded as %s", b)
	}
	return nil
}

func kept(in, out any) bool {
	switch in := in.(type) {
	case map[string]any:
		o, ok := out.(map[string]any)
		if !ok {
			return false
		}
		for name, v := range in {
			if v != nil && !kept(v, o[name]) {
				return false
			}
		}
		return true
	case []any:
		o, ok := out.([]any)
		if !ok || len(o) != len(in) {
			return false
		}
		for i := range in {
			if !kept(in[i], o[i]) {
				return false
			}
		}
		return true
	default:
		return in == nil || in == out
	}
}

func jsonSeeds() []fuzzcorpus.Seed {
	seed := func(name, body string) fuzzcorpus.Seed {
		return fuzzcorpus.Seed{Name: name, Values: []any{[]byte(body)}}
	}
	return []fuzzcorpus.Seed{
		seed("enroll", `{"token":"inv_abc","name":"Pixel 9","fcm_token":"f","platform":"android"}`),
		seed("email-code", `{"email":"alice@example.com"}`),
		seed("enroll-email", `{"email":"alice@example.com","code":"123456","name":"n","fcm_token":"","platform":"ios"}`),
		seed("rename", `{"name":"Work phone"}`),
		seed("push-token", `{"fcm_token":""}`),
		seed("answer", `{"decision":"approve","number":42,"report":false}`),
		seed("app", `{"name":"Jira","acs_urls":[{"url":"https://sp/acs","index":0}],"sp_certificates":["-----BEGIN CERTIFICATE-----"],"require_signed_requests":true}`),
		seed("user", `{"email":"a@b.c","groups":["eng"],"status":"active"}`),
		seed("grace", `{"grace":"720h"}`),
		seed("empty", ``),
		seed("whitespace", " \t\r\n"),
		seed("null", `null`),
		seed("array", `[{"name":"x"}]`),
		seed("string", `"name"`),
		seed("two-objects", `{"name":"a"}{"name":"b"}`),
		seed("trailing-garbage", `{"name":"a"} x`),
		seed("unknown-field", `{"name":"a","admin":true}`),
		seed("duplicate-key", `{"decision":"deny","decision":"approve","number":42}`),
		seed("case-variant-key", `{"Decision":"approve","NUMBER":42}`),
		seed("case-variant-duplicate", `{"number":42,"Number":43}`),
		seed("nested-duplicate", `{"acs_urls":[{"url":"https://a/","url":"https://b/"}]}`),
		seed("wrong-type-string", `{"number":"42"}`),
		seed("wrong-type-bool", `{"report":"yes"}`),
		seed("wrong-type-object", `{"name":{"first":"a"}}`),
		seed("wrong-type-nested", `{"acs_urls":[{"url":1}]}`),
		seed("number-huge", `{"number":1e999}`),
		seed("number-overflow", `{"number":9223372036854775808}`),
		seed("number-fraction", `{"number":42.0}`),
		seed("number-negative-zero", `{"number":-0}`),
		seed("invalid-utf8-value", "{\"name\":\"\xff\xfe\"}"),
		seed("invalid-utf8-key", "{\"\xc3\":\"x\"}"),
		seed("lone-surrogate", `{"name":"\ud800"}`),
		seed("nul-escape", `{"name":"a\u0000b"}`),
		seed("bom", "\xef\xbb\xbf{\"name\":\"a\"}"),
		seed("deep-nesting", strings.Repeat("[", 10001)+strings.Repeat("]", 10001)),
		seed("null-field", `{"name":null}`),
		seed("unterminated", `{"name":"a`),
		seed("go-type-name-as-field", `{"deviceapi.AnswerRequest":1}`),
	}
}

// FuzzDecodeJSON decodes bodies as the server does, into every request type. Whatever the body: no panic;
// a refusal is a 400 invalid_request whose message is one of jsonMessages, naming only fields of the type
// or names the body gave; and a body accepted is valid UTF-8, one object whose members at every depth are
// named exactly as the type's fields and each once, with every value kept as given.
func FuzzDecodeJSON(f *testing.F) {
	fuzzcorpus.Use(f, jsonSeeds())
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, typ := range requestBodies {
			v := reflect.New(typ).Interface()
			err := decodeJSONBytes(body, v)
			if err != nil {
				var ae *authn.Error
				if !errors.As(err, &ae) || ae != err {
					t.Fatalf("%v: error %v (%T) is not the API's", typ, err, err)
				}
				if _, status := classify(err); status != 400 || ae.Code != "invalid_request" || ae.Err != nil {
					t.Fatalf("%v: %d %s (detail %v), want 400 invalid_request and nothing for the log", typ, status, ae.Code, ae.Err)
				}
				mustBeJSONMessage(t, typ, body, ae.Message)
				continue
			}
			if !utf8.Valid(body) {
				t.Fatalf("%v: accepted invalid UTF-8 %q", typ, body)
			}
			if !json.Valid(body) || bytes.TrimSpace(body)[0] != '{' {
				t.Fatalf("%v: accepted %q, not one JSON object", typ, body)
			}
			if err := strictMembers(body, typ); err != nil {
				t.Fatalf("%v: accepted %q: %v", typ, body, err)
			}
			if err := sameValues(body, v); err != nil {
				t.Fatalf("%v: accepted %q: %v", typ, body, err)
			}
		}
	})
}

// bodyStrings are the strings of body, as far as it is JSON: the names it gave among them.
func bodyStrings(body []byte) map[string]bool {
	out := map[string]bool{}
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := dec.Token()
		if err != nil {
			return out
		}
		if s, ok := tok.(string); ok {
			out[s] = true
		}
	}
}

func mustBeJSONMessage(t *testing.T, typ reflect.Type, body []byte, msg string) {
	t.Helper()
	for _, re := range jsonMessages {
		m := re.FindStringSubmatch(msg)
		if m == nil {
			continue
		}
		if len(m) < 2 {
			return
		}
		name, err := strconv.Unquote(m[1])
		if err != nil {
			t.Fatalf("%v: message %q quotes a name badly: %v", typ, msg, err)
		}
		known := jsonNames(typ, map[string]bool{})
		given := bodyStrings(body)
		for _, part := range strings.Split(name, ".") {
			if !known[part] && !given[part] && !given[name] {
				t.Fatalf("%v: message %q names %q, neither a field nor in the body", typ, msg, part)
			}
		}
		return
	}
	t.Fatalf("%v: message %q is not one of decodeJSON's", typ, msg)
}

// TestDecodeJSONRefuses pins what encoding/json alone would have let through.
func TestDecodeJSONRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, body, want string }{
		{"member twice", `{"decision":"deny","decision":"approve","number":42}`, `Field "decision" appears more than once.`},
		{"member twice, nested", `{"acs_urls":[{"url":"https://a/","url":"https://b/"}]}`, `Field "url" appears more than once.`},
		{"name in another case", `{"Decision":"approve","number":42}`, `Unknown field "Decision".`},
		{"case variant of a member given", `{"number":42,"Number":43}`, `Unknown field "Number".`},
		{"invalid UTF-8", "{\"decision\":\"\xff\"}", "The request body is not valid UTF-8."},
		{"half a surrogate pair", `{"decision":"\ud800"}`, "The request body holds a \\u escape of half a UTF-16 surrogate pair, which is not a character."},
		{"null", ` null `, "The request body must be a JSON object."},
		{"a stray closing brace", `{"decision":"deny"} }`, "The request body must hold a single JSON object."},
		{"unknown field", `{"decision":"approve","admin":true}`, `Unknown field "admin".`},
		{"number out of range", `{"number":1e999}`, `Field "number" must be a whole number.`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v struct {
				deviceapi.AnswerRequest
				ACSURLs []authn.ACSEndpoint `json:"acs_urls"`
			}
			err := decodeJSONBytes([]byte(tc.body), &v)
			var ae *authn.Error
			if _, status := classify(err); !errors.As(err, &ae) || status != 400 || ae.Code != "invalid_request" || ae.Message != tc.want {
				t.Fatalf("decodeJSONBytes(%q) = %v, want 400 invalid_request %q", tc.body, err, tc.want)
			}
		})
	}
}
