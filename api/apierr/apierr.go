// Package apierr is the one table of the error codes Passport answers with and the HTTP status of each:
// pages, the admin API and the device API all take their statuses from it. It imports nothing of ours, so
// the server (package api), the device API client (deviceapi) and its fake (deviceapitest) share it.
//
// A code has one meaning and one status wherever it is answered. A test in package api holds the table
// complete: every authn sentinel, every code package api creates and every code package saml returns has
// an entry.
package apierr

import (
	"maps"
	"net/http"
	"slices"
)

var statuses = map[string]int{
	// Domain refusals: authn's sentinels.
	"invalid_request":       http.StatusBadRequest,
	"not_found":             http.StatusNotFound,
	"conflict":              http.StatusConflict,
	"rate_limited":          http.StatusTooManyRequests,
	"forbidden":             http.StatusForbidden,
	"challenge_closed":      http.StatusConflict,
	"number_mismatch":       http.StatusUnprocessableEntity,
	"no_matching_challenge": http.StatusNotFound,
	"invitation_invalid":    http.StatusGone,
	"invalid_proof":         http.StatusUnauthorized,
	"proof_replayed":        http.StatusUnauthorized,
	"unknown_device":        http.StatusUnauthorized,
	"app_not_configured":    http.StatusConflict,
	"email_not_allowed":     http.StatusForbidden,
	"context_changed":       http.StatusConflict,
	"code_invalid":          http.StatusBadRequest,
	"code_locked":           http.StatusTooManyRequests,
	"no_next_key":           http.StatusBadRequest,
	"key_unopenable":        http.StatusConflict,
	"no_key_ring":           http.StatusConflict,
	"internal":              http.StatusInternalServerError,
	// The store is out of reach, stalled or failing over: try again in a moment (with Retry-After).
	"temporarily_unavailable": http.StatusServiceUnavailable,

	// The device API's own (see api/openapi.yaml).
	"device_revoked":      http.StatusUnauthorized,
	"challenge_not_found": http.StatusNotFound,

	// The request itself: credential, method, body.
	"unauthorized":           http.StatusUnauthorized,
	"method_not_allowed":     http.StatusMethodNotAllowed,
	"too_large":              http.StatusRequestEntityTooLarge,
	"unsupported_media_type": http.StatusUnsupportedMediaType,

	// SAML endpoints, the login page and the admin API's SAML settings.
	"relay_state_not_allowed": http.StatusBadRequest,
	"no_passive":              http.StatusConflict,
	"sign_in_ended":           http.StatusForbidden,
	"slo_not_configured":      http.StatusConflict,
	"static_key":              http.StatusConflict,
	"no_acs":                  http.StatusBadRequest,

	// SAML messages and SP metadata refused by package saml: the sender's fault, never a Response.
	"missing_parameter":     http.StatusBadRequest,
	"duplicate_parameter":   http.StatusBadRequest,
	"malformed_query":       http.StatusBadRequest,
	"malformed_base64":      http.StatusBadRequest,
	"not_deflated":          http.StatusBadRequest,
	"message_too_large":     http.StatusBadRequest,
	"malformed_xml":         http.StatusBadRequest,
	"malformed_request":     http.StatusBadRequest,
	"duplicate_element":     http.StatusBadRequest,
	"version_mismatch":      http.StatusBadRequest,
	"missing_id":            http.StatusBadRequest,
	"issuer_mismatch":       http.StatusBadRequest,
	"acs_mismatch":          http.StatusBadRequest,
	"destination_mismatch":  http.StatusBadRequest,
	"missing_issue_instant": http.StatusBadRequest,
	"request_expired":       http.StatusBadRequest,
	"request_from_future":   http.StatusBadRequest,
	"unsupported_binding":   http.StatusBadRequest,
	"malformed_metadata":    http.StatusBadRequest,
	"no_sp_descriptor":      http.StatusBadRequest,
	"several_sps":           http.StatusBadRequest,
	"signature_missing":     http.StatusBadRequest,
	"signature_invalid":     http.StatusBadRequest,
	"unsupported_algorithm": http.StatusBadRequest,
}

// Status returns the HTTP status that answers code, or 500 for a code not in the table: a code without a
// status is a fault of ours, and is answered as internal.
func Status(code string) int {
	if s, ok := statuses[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Known reports whether code is in the table.
func Known(code string) bool {
	_, ok := statuses[code]
	return ok
}

// Codes returns every code in the table, sorted.
func Codes() []string {
	return slices.Sorted(maps.Keys(statuses))
}
