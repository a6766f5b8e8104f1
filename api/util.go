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
	"strings"

	"github.com/labstack/echo/v4"
)

// decodeJSON decodes exactly one JSON value into v, refusing unknown fields, with a message a client can act on.
func decodeJSON(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &mbe):
			return errorf(http.StatusRequestEntityTooLarge, "too_large", "The request body is too large.")
		case errors.Is(err, io.EOF):
			return errorf(http.StatusBadRequest, "invalid_request", "The request body is empty; send a JSON object.")
		case errors.As(err, &se):
			return errorf(http.StatusBadRequest, "invalid_request", fmt.Sprintf("The request body is not valid JSON (at byte %d).", se.Offset))
		case errors.As(err, &te) && te.Field == "":
			return errorf(http.StatusBadRequest, "invalid_request", "The request body must be a JSON object.")
		case errors.As(err, &te):
			return errorf(http.StatusBadRequest, "invalid_request", fmt.Sprintf("Field %q must be %s.", te.Field, jsonKind(te.Type)))
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			return errorf(http.StatusBadRequest, "invalid_request", "Unknown field "+strings.TrimPrefix(err.Error(), "json: unknown field ")+".")
		default:
			return errorf(http.StatusBadRequest, "invalid_request", "The request body could not be read as JSON.")
		}
	}
	if dec.More() {
		return errorf(http.StatusBadRequest, "invalid_request", "The request body must hold a single JSON object.")
	}
	return nil
}

func decodeJSONBytes(b []byte, v any) error { return decodeJSON(bytes.NewReader(b), v) }

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
