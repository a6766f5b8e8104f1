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

// decodeJSONBytes decodes exactly one JSON value into v, refusing unknown fields, with a message a client can
// act on. Text that is not valid UTF-8, or a \u escape of half a surrogate pair, is refused before decoding:
// encoding/json would silently turn it into U+FFFD, and an address or name would be kept as something other
// than what was sent.
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
			return authn.ErrInvalid.WithMessage(fmt.Sprintf("Field %q must be %s.", te.Field, jsonKind(te.Type)))
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			return authn.ErrInvalid.WithMessage("Unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ") + ".")
		default:
			return authn.ErrInvalid.WithMessage("The request body could not be read as JSON.")
		}
	}
	if dec.More() {
		return authn.ErrInvalid.WithMessage("The request body must hold a single JSON object.")
	}
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
