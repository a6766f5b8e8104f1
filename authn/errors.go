package authn

import (
	"errors"
	"fmt"
	"strings"

	"github.com/winkk/passport/store"
)

// Error is Passport's one error model, used by this package and by the api package alike. Code is stable and
// machine-readable: clients see it, and the api package answers it with the HTTP status of its one table.
// Message is safe to show to a client, person or program. Err, when set, is the internal cause: it goes to
// the log, never to a client.
//
// Compare with errors.Is against a sentinel below: an *Error matches every *Error of the same Code, whatever
// its Message and Err.
type Error struct {
	Code    string
	Message string
	Err     error
	// Fields, on an invalid_request, holds each field's problem, for a form to show beside its field and a
	// program to report them all at once; Message then says them all in one sentence.
	Fields []FieldError
}

// FieldError is one field's problem: the field as the client named it (JSON name, with an index for a list
// entry: "acs_urls[2].url") and what is wrong with it, in words.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// invalidFields is the invalid_request error of fields, nil when there are none.
func invalidFields(fields []FieldError) error {
	if len(fields) == 0 {
		return nil
	}
	msgs := make([]string, len(fields))
	for i, f := range fields {
		msgs[i] = f.Message
	}
	return &Error{Code: ErrInvalid.Code, Message: strings.Join(msgs, "; "), Fields: fields}
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Code + ": " + e.Message + ": " + e.Err.Error()
	}
	return e.Code + ": " + e.Message
}

// Unwrap returns the internal cause, if any.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is an *Error with the same Code, so that errors.Is(err, ErrNotFound) holds for
// any not_found error, whatever its message.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t != nil && t.Code == e.Code
}

// WithMessage returns a new error with e's code and the public message msg.
func (e *Error) WithMessage(msg string) *Error {
	return &Error{Code: e.Code, Message: msg}
}

// Sentinel errors; compare with errors.Is. Errors returned by Service carry one of these codes.
var (
	ErrInvalid         = &Error{Code: "invalid_request"}
	ErrNotFound        = &Error{Code: "not_found"}
	ErrConflict        = &Error{Code: "conflict"}
	ErrRateLimited     = &Error{Code: "rate_limited"}
	ErrForbidden       = &Error{Code: "forbidden"}
	ErrChallengeClosed = &Error{Code: "challenge_closed"}
	ErrNumberMismatch  = &Error{Code: "number_mismatch"}
	// ErrNoMatchingChallenge: no open sign-in of the user shows the number an approval carries.
	ErrNoMatchingChallenge = &Error{Code: "no_matching_challenge"}
	ErrInvitation          = &Error{Code: "invitation_invalid"}
	ErrInvalidProof        = &Error{Code: "invalid_proof"}
	ErrProofReplayed       = &Error{Code: "proof_replayed"}
	ErrUnknownDevice       = &Error{Code: "unknown_device"}
	ErrNotConfigured       = &Error{Code: "app_not_configured"}
	ErrEmailNotAllowed     = &Error{Code: "email_not_allowed"}
	// ErrContextChanged: the context hash a phone signed is not the one of the login the server holds.
	ErrContextChanged = &Error{Code: "context_changed"}
	// ErrInternal: the service failed on its side (a mail server out of reach, a fault of ours); its Message
	// says only what a client may know.
	ErrInternal = &Error{Code: "internal"}
	// ErrUnavailable: the store is out of reach, did not answer within the request's deadline, or is failing
	// over (see store.Unavailable). Nothing stored was lost; the same request a moment later may succeed.
	ErrUnavailable = &Error{Code: "temporarily_unavailable", Message: "Passport can't reach its store right now; try again in a moment."}
)

// Unavailable reports whether err means the store could not serve the request for now: an ErrUnavailable, or
// a store error that store.Unavailable classifies so (a refused or broken connection, a deadline passed, a
// replica that is not yet master, a Cluster resharding). Such a request may be tried again in a moment.
func Unavailable(err error) bool {
	return errors.Is(err, ErrUnavailable) || store.Unavailable(err)
}

// ErrCodeInvalid and ErrCodeLocked are the email-code refusals.
var (
	ErrCodeInvalid = &Error{Code: "code_invalid"}
	ErrCodeLocked  = &Error{Code: "code_locked"}
)

// Refusals of the signing-key rollover.
var (
	// ErrNoNextKey is returned when activating without a staged key.
	ErrNoNextKey = &Error{Code: "no_next_key", Message: "no next key is staged: stage one first"}
	// ErrKeyUnopenable: the staged key does not open with this server's key-encryption key (missing or
	// wrong); nothing was changed.
	ErrKeyUnopenable = &Error{Code: "key_unopenable", Message: "the staged key does not open with this server's key-encryption key (PASSPORT_KEY_ENCRYPTION_KEY missing or different); nothing was changed"}
	// ErrNoKeyRing: the store holds no signing keys. A running server never makes new ones to fill the gap
	// (every SP would stop trusting it): the ring is created only when a server starts on a store that never
	// had one.
	ErrNoKeyRing = &Error{Code: "no_key_ring", Message: "the store holds no signing keys: start passport-idp on it once to create them, or restore them"}
)

func newErr(sentinel *Error, format string, args ...any) *Error {
	return &Error{Code: sentinel.Code, Message: fmt.Sprintf(format, args...)}
}
