package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/winkk/passport/authn"
)

// readAll reads a request body (size-limited by the route's BodyLimit), with an error a client can act on.
func readAll(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		var mbe *http.MaxBytesError
		var he *echo.HTTPError
		if errors.As(err, &mbe) || (errors.As(err, &he) && he.Code == http.StatusRequestEntityTooLarge) {
			return nil, errTooLarge
		}
		return nil, authn.ErrInvalid.WithMessage("The request body could not be read.")
	}
	return b, nil
}

// decodeJSON reads the body r and decodes it as decodeJSONBytes does.
func decodeJSON(r io.Reader, v any) error {
	b, err := readAll(r)
	if err != nil {
		return err
	}
	return decodeJSONBytes(b, v)
}

// decodeJSONBytes decodes a request body holding exactly one JSON object into v, a pointer to a struct, with
// a message a client can act on. Besides what encoding/json refuses (bad syntax, wrong types, numbers out of
// range, unknown fields), it refuses what encoding/json would let through: text that is not valid UTF-8 or
// a \u escape of half a surrogate pair (it substitutes U+FFFD, so an address or name would be kept as
// something other than what was sent), null or anything else that is not an object, a member named twice
// (it keeps the last) and a name that matches a field only when case is ignored (it takes "Decision" for
// "decision").
func decodeJSONBytes(b []byte, v any) error {
	if !utf8.Valid(b) {
		return authn.ErrInvalid.WithMessage("The request body is not valid UTF-8.")
	}
	if loneSurrogateEscape(b) {
		return authn.ErrInvalid.WithMessage("The request body holds a \\u escape of half a UTF-16 surrogate pair, which is not a character.")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.Is(err, io.EOF):
			return authn.ErrInvalid.WithMessage("The request body is empty; send a JSON object.")
		case errors.As(err, &se):
			return authn.ErrInvalid.WithMessage(fmt.Sprintf("The request body is not valid JSON (at byte %d).", se.Offset))
		case errors.As(err, &te) && te.Field == "":
			return authn.ErrInvalid.WithMessage("The request body must be a JSON object.")
		case errors.As(err, &te):
			return authn.ErrInvalid.WithMessage(fmt.Sprintf("Field %q must be %s.", jsonPath(reflect.TypeOf(v), te.Field), jsonKind(te.Type)))
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			return authn.ErrInvalid.WithMessage("Unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ") + ".")
		default:
			return authn.ErrInvalid.WithMessage("The request body could not be read as JSON.")
		}
	}
	// Not dec.More, which takes a stray "]" or "}" for the end of the input.
	if len(bytes.Trim(b[dec.InputOffset():], " \t\r\n")) > 0 {
		return authn.ErrInvalid.WithMessage("The request body must hold a single JSON object.")
	}
	if b = bytes.TrimLeft(b, " \t\r\n"); b[0] != '{' {
		return authn.ErrInvalid.WithMessage("The request body must be a JSON object.")
	}
	// The body is valid JSON that decoded: walk it again for what the decoder let through.
	return checkNames(json.NewDecoder(bytes.NewReader(b)), reflect.TypeOf(v))
}

// checkNames walks the JSON value dec is at, decoded into a t, refusing an object member named twice and, in
// an object decoded into a struct, a name that is not exactly a field's JSON name. dec must hold valid JSON.
func checkNames(dec *json.Decoder, t reflect.Type) error {
	tok, _ := dec.Token()
	delim, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var elem reflect.Type
	var fields map[string]reflect.Type
	switch {
	case t == nil:
	case t.Kind() == reflect.Struct:
		fields = jsonFields(t, map[string]reflect.Type{})
	case t.Kind() == reflect.Slice, t.Kind() == reflect.Array, t.Kind() == reflect.Map:
		elem = t.Elem()
	}
	seen := map[string]bool{}
	for dec.More() {
		if delim == '{' {
			tok, _ := dec.Token()
			name, _ := tok.(string)
			if seen[name] {
				return authn.ErrInvalid.WithMessage(fmt.Sprintf("Field %q appears more than once.", name))
			}
			seen[name] = true
			if fields != nil {
				if elem, ok = fields[name]; !ok {
					return authn.ErrInvalid.WithMessage(fmt.Sprintf("Unknown field %q.", name))
				}
			}
		}
		if err := checkNames(dec, elem); err != nil {
			return err
		}
	}
	dec.Token() // the closing delimiter
	return nil
}

// loneSurrogateEscape reports whether the JSON text b holds a \uD800–\uDFFF escape that is not half of a
// high-then-low pair. Backslashes occur only inside strings in valid JSON (anything else is a syntax error the
// decoder reports), so the escapes can be read without tracking where strings start.
func loneSurrogateEscape(b []byte) bool {
	hex4 := func(i int) (rune, bool) {
		if i+6 > len(b) || b[i] != '\\' || b[i+1] != 'u' {
			return 0, false
		}
		n, err := strconv.ParseUint(string(b[i+2:i+6]), 16, 16)
		return rune(n), err == nil
	}
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		r, ok := hex4(i)
		if !ok {
			i++ // another escape: skip the escaped byte (it may be a backslash)
			continue
		}
		switch {
		case utf16.IsSurrogate(r) && r < 0xDC00: // high: a low must follow
			lo, ok := hex4(i + 6)
			if !ok || !utf16.IsSurrogate(lo) || lo < 0xDC00 {
				return true
			}
			i += 11
		case utf16.IsSurrogate(r):
			return true
		default:
			i += 5
		}
	}
	return false
}

// jsonPath is the JSON member path of a decoding error's field path in t: encoding/json names the Go
// struct a field was promoted from too ("AnswerRequest.number"), which the client never wrote.
func jsonPath(t reflect.Type, field string) string {
	var out []string
	for name := range strings.SplitSeq(field, ".") {
		for t != nil && (t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map) {
			t = t.Elem()
		}
		var fields map[string]reflect.Type
		if t != nil && t.Kind() == reflect.Struct {
			fields = jsonFields(t, map[string]reflect.Type{})
		}
		if ft, ok := fields[name]; ok {
			out, t = append(out, name), ft
		}
	}
	return strings.Join(out, ".")
}

// jsonFields adds the JSON member names of struct type t, as encoding/json names them, and their types.
func jsonFields(t reflect.Type, into map[string]reflect.Type) map[string]reflect.Type {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		switch {
		case tag == "-" || (!f.IsExported() && !f.Anonymous):
		case f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct:
			jsonFields(f.Type, into)
		case f.Anonymous && name == "" && f.Type.Kind() == reflect.Pointer && f.Type.Elem().Kind() == reflect.Struct:
			jsonFields(f.Type.Elem(), into)
		case name == "":
			into[f.Name] = f.Type
		default:
			into[name] = f.Type
		}
	}
	return into
}

// clientKey names the client for per-client rate limits: its IPv4 address, or the /64 of its IPv6 address
// (one subscriber usually holds a whole /64, and could otherwise rotate through it to escape the limits).
func clientKey(c echo.Context) string {
	ip, err := netip.ParseAddr(c.RealIP())
	if err != nil {
		return c.RealIP()
	}
	ip = ip.Unmap()
	if ip.Is4() {
		return ip.String()
	}
	p, _ := ip.WithZone("").Prefix(64)
	return p.String()
}

// jsonKind names what a Go type holds in JSON's words, for error messages (never a Go type name).
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	default:
		return "an object"
	}
}
