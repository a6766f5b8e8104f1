package api

import (
	"net/http/httptest"
	"testing"

	"github.com/labstack/echo/v4"
)

func TestClientKey(t *testing.T) {
	t.Parallel()
	e := echo.New()
	e.IPExtractor = echo.ExtractIPDirect()
	for _, tc := range []struct{ remote, want string }{
		{"192.0.2.10:5000", "192.0.2.10"},
		{"[::ffff:192.0.2.10]:5000", "192.0.2.10"},
		{"[2001:db8:1:2:3:4:5:6]:5000", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1]:443", "2001:db8:1:2::/64"}, // same subscriber, another address
		{"[2001:db8:1:3::1]:443", "2001:db8:1:3::/64"},
	} {
		req := httptest.NewRequest("GET", "/", nil)
		req.RemoteAddr = tc.remote
		if got := clientKey(e.NewContext(req, httptest.NewRecorder())); got != tc.want {
			t.Errorf("clientKey(%s) = %q, want %q", tc.remote, got, tc.want)
		}
	}
}
