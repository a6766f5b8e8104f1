package apierr_test

import (
	"net/http"
	"slices"
	"testing"

	"github.com/winkk/passport/api/apierr"
)

// Every code is a refusal (4xx) but internal, the one fault of ours (500), and temporarily_unavailable, the
// store out of reach for now (503); a code the table lacks is answered
// as internal.
func TestStatuses(t *testing.T) {
	codes := apierr.Codes()
	if len(codes) == 0 || !slices.IsSorted(codes) || len(slices.Compact(slices.Clone(codes))) != len(codes) {
		t.Fatalf("Codes() = %v: want sorted, distinct codes", codes)
	}
	for _, code := range codes {
		st := apierr.Status(code)
		switch {
		case !apierr.Known(code):
			t.Errorf("Codes() lists %q, Known says no", code)
		case code == "internal":
			if st != http.StatusInternalServerError {
				t.Errorf("internal answers %d", st)
			}
		case code == "temporarily_unavailable":
			if st != http.StatusServiceUnavailable {
				t.Errorf("temporarily_unavailable answers %d", st)
			}
		case st < 400 || st > 499:
			t.Errorf("%s answers %d, want a 4xx", code, st)
		}
	}
	if apierr.Known("no_such_code") || apierr.Status("no_such_code") != http.StatusInternalServerError {
		t.Error("an unknown code is not answered as internal (500)")
	}
}
