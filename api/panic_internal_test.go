package api

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

// TestPanicIsLoggedWithItsStack: a panicking handler answers a plain 500 (no stack to the client) and the
// log says it was a panic, where.
func TestPanicIsLoggedWithItsStack(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	s := &Server{log: slog.New(slog.NewJSONHandler(&logs, nil))}
	e := echo.New()
	e.HTTPErrorHandler = s.handleError
	e.Use(s.recoverPanics())
	e.GET("/api/v1/boom", func(echo.Context) error {
		var m map[string]int
		//lint:ignore SA5000 the panic is the point: the kind of bug that panics in a handler
		m["x"] = 1
		return nil
	})
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/boom", nil))
	if rec.Code != http.StatusInternalServerError || strings.Contains(rec.Body.String(), "goroutine") || strings.Contains(rec.Body.String(), ".go:") {
		t.Fatalf("client got %d %s", rec.Code, rec.Body.String())
	}
	var entry struct{ Msg, Err, Stack string }
	for line := range strings.Lines(logs.String()) {
		var e struct{ Msg, Err, Stack string }
		if json.Unmarshal([]byte(line), &e) == nil && e.Msg == "panic" {
			entry = e
		}
	}
	if !strings.Contains(entry.Err, "nil map") || !strings.Contains(entry.Stack, "panic_internal_test.go") {
		t.Fatalf("no panic line with its stack in the log:\n%s", logs.String())
	}
}
