package api

import (
	"runtime"

	"github.com/labstack/echo/v4"
)

// A goroutine starts with a small stack (2 KiB, or the average the runtime last saw) that grows by doubling,
// each time copying the whole stack and adjusting every frame on it. A login's heavy requests (the SAML
// request's parse, the signed Response, its record's JSON and compression, the page's template) run 20–30
// KiB deep, each on a new connection's goroutine, so each grew three or four times, deep in the call chain:
// 4.3% of the IdP's CPU at 16 logins in flight. deepStack grows the stack once, at the top of the handler
// chain where it is shallow and cheap to copy: 0.8% of the same profile (docs/performance.md, 2026-12-03
// evening). The runtime shrinks an idle stack again at the next collections.

// deepStackBytes is the frame growStack reserves: the stack then doubles to 64 KiB, past what the login's
// requests use (a 16 KiB frame left half the growth in place).
const deepStackBytes = 32 << 10

// growStack needs a frame of deepStackBytes, so calling it grows the goroutine's stack to fit one. KeepAlive
// keeps the compiler from dropping the unused buffer, and with it the frame.
//
//go:noinline
func growStack() {
	var buf [deepStackBytes]byte
	runtime.KeepAlive(&buf)
}

// deepStack is the middleware of the routes whose handlers run deep: it grows the goroutine's stack before
// the handler runs.
func deepStack(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		growStack()
		return next(c)
	}
}
