package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
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
		case errors.As(err, &te):
			return errorf(http.StatusBadRequest, "invalid_request", fmt.Sprintf("Field %q must be a %s.", te.Field, te.Type.String()))
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
