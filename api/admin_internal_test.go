package api

import (
	"crypto/sha256"
	"strings"
	"testing"
)

// TestAuthorizationMatches: the admin credential is accepted exactly, and refused whatever the length of what
// is sent instead (shorter, longer, empty, a prefix or an extension of the right one).
func TestAuthorizationMatches(t *testing.T) {
	t.Parallel()
	const token = "s3cret-admin-token"
	want := sha256.Sum256([]byte("Bearer " + token))
	for _, tc := range []struct {
		got string
		ok  bool
	}{
		{"Bearer " + token, true},
		{"", false},
		{"Bearer ", false},
		{"Bearer " + token[:len(token)-1], false},
		{"Bearer " + token + "x", false},
		{"Bearer " + token + " ", false},
		{"Bearer " + strings.Repeat("x", len(token)), false},
		{"Bearer " + strings.Repeat(token, 100), false},
		{"bearer " + token, false},
		{token, false},
	} {
		if got := authorizationMatches(tc.got, want); got != tc.ok {
			t.Errorf("authorizationMatches(%q) = %v, want %v", tc.got, got, tc.ok)
		}
	}
}

// BenchmarkAuthorizationMatches times the comparison for credentials of several lengths: refusing a short
// guess costs what refusing a long one of the same length as the token does, bar the hashing of the guess.
func BenchmarkAuthorizationMatches(b *testing.B) {
	const token = "s3cret-admin-token-of-a-realistic-length-000000"
	want := sha256.Sum256([]byte("Bearer " + token))
	for _, tc := range []struct{ name, got string }{
		{"right", "Bearer " + token},
		{"wrong-same-length", "Bearer " + strings.Repeat("x", len(token))},
		{"one-byte", "B"},
		{"prefix", "Bearer " + token[:10]},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				authorizationMatches(tc.got, want)
			}
		})
	}
}
