package authn_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"

	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/store/storetest"
)

// errors.Is matches on the code alone: a copy carrying a message or a cause is still the sentinel's kind, and
// another code never is.
func TestErrorIsMatchesTheCode(t *testing.T) {
	t.Parallel()
	cause := errors.New("store: connection refused")
	for _, tc := range []struct {
		name   string
		err    error
		target error
		want   bool
	}{
		{"the sentinel itself", authn.ErrNotFound, authn.ErrNotFound, true},
		{"a copy with a message", authn.ErrNotFound.WithMessage("No such app."), authn.ErrNotFound, true},
		{"a copy with a cause", &authn.Error{Code: "invalid_proof", Message: "the device proof does not verify", Err: cause}, authn.ErrInvalidProof, true},
		{"wrapped", fmt.Errorf("load app: %w", authn.ErrNotFound.WithMessage("No such app.")), authn.ErrNotFound, true},
		{"a sentinel that carries a message", &authn.Error{Code: authn.ErrKeyUnopenable.Code, Message: "other words", Err: cause}, authn.ErrKeyUnopenable, true},
		{"its cause too", &authn.Error{Code: "internal", Message: "try again later", Err: cause}, cause, true},
		{"another code", authn.ErrNotFound.WithMessage("No such app."), authn.ErrForbidden, false},
		{"another code, same message", &authn.Error{Code: "conflict", Message: "x"}, &authn.Error{Code: "not_found", Message: "x"}, false},
		{"not an authn error", errors.New("not_found"), authn.ErrNotFound, false},
		{"a nil target of the type", authn.ErrNotFound, (*authn.Error)(nil), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := errors.Is(tc.err, tc.target); got != tc.want {
				t.Errorf("errors.Is(%v, %v) = %v, want %v", tc.err, tc.target, got, tc.want)
			}
		})
	}
	e := authn.ErrRateLimited.WithMessage("Slow down.")
	if e.Code != authn.ErrRateLimited.Code || e.Message != "Slow down." || e.Err != nil || e == authn.ErrRateLimited {
		t.Errorf("WithMessage = %#v", e)
	}
	if authn.ErrRateLimited.Message != "" {
		t.Error("WithMessage changed the sentinel")
	}
}

// Activating a staged key this server cannot open is refused with the sentinel's code and message, and the
// cause kept for the log; activating with nothing staged is ErrNoNextKey.
func TestActivateRefusals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.Open(t)
	kek, other := make([]byte, 32), make([]byte, 32)
	rand.Read(kek)
	rand.Read(other)
	sealed := serviceOn(st, kek)
	defer sealed.Close()
	if _, err := sealed.Keys.Ring(ctx, "IdP"); err != nil {
		t.Fatal(err)
	}
	if _, err := sealed.Keys.Activate(ctx, 0); !errors.Is(err, authn.ErrNoNextKey) {
		t.Fatalf("activate with nothing staged: %v, want %v", err, authn.ErrNoNextKey)
	}
	if _, err := sealed.Keys.Stage(ctx, "IdP"); err != nil {
		t.Fatal(err)
	}
	stranger := serviceOn(st, other)
	defer stranger.Close()
	_, err := stranger.Keys.Activate(ctx, 0)
	if !errors.Is(err, authn.ErrKeyUnopenable) {
		t.Fatalf("activate a key sealed under another key-encryption key: %v, want %v", err, authn.ErrKeyUnopenable)
	}
	de, _ := errors.AsType[*authn.Error](err)
	if de.Message != authn.ErrKeyUnopenable.Message || de.Err == nil {
		t.Errorf("refusal %#v: want the sentinel's message and the cause", de)
	}
	// Nothing changed: the key that opens still activates.
	if _, err := sealed.Keys.Activate(ctx, 0); err != nil {
		t.Errorf("activate with the right key-encryption key: %v", err)
	}
}
