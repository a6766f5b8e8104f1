package api

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/authn/audit"
)

// errNoAudit: this server keeps no audit log (a test server wired without one).
var errNoAudit = authn.ErrNotFound.WithMessage("This server keeps no audit log.")

// eventPage is an answer of GET /api/v1/admin/events.
type eventPage struct {
	Events     []audit.Event `json:"events"`
	NextCursor string        `json:"next_cursor,omitempty"`
}

// handleListEvents pages through the audit log, newest first, with the filters of the query.
func (s *Server) handleListEvents(c echo.Context) error {
	if s.cfg.Audit == nil {
		return errNoAudit
	}
	q := c.QueryParams()
	f := audit.Filter{Type: q.Get("type"), Email: q.Get("email"), AppID: q.Get("app_id"), Cursor: q.Get("cursor")}
	var err error
	if f.Since, err = queryTime(q.Get("since"), "since"); err != nil {
		return err
	}
	if f.Until, err = queryTime(q.Get("until"), "until"); err != nil {
		return err
	}
	if l := q.Get("limit"); l != "" {
		if f.Limit, err = strconv.Atoi(l); err != nil || f.Limit < 1 || f.Limit > audit.MaxLimit {
			return authn.ErrInvalid.WithMessage("limit must be a whole number from 1 to " + strconv.Itoa(audit.MaxLimit) + ".")
		}
	}
	events, next, err := s.cfg.Audit.List(s.ctx(c), f)
	if err != nil {
		return err
	}
	if events == nil {
		events = []audit.Event{}
	}
	return c.JSON(http.StatusOK, eventPage{Events: events, NextCursor: next})
}

// handleExportEvents streams the audit log as JSON lines, oldest first, from the query's since (for a SIEM).
func (s *Server) handleExportEvents(c echo.Context) error {
	if s.cfg.Audit == nil {
		return errNoAudit
	}
	since, err := queryTime(c.QueryParam("since"), "since")
	if err != nil {
		return err
	}
	// Once the stream has started its status is sent: a store out of reach is told now, as a 503.
	pctx, cancel := s.storeCtx(s.ctx(c))
	err = s.svc.Ping(pctx)
	cancel()
	if err != nil {
		return err
	}
	w := c.Response()
	w.Header().Set(echo.HeaderContentType, "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	out := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(out)
	err = s.cfg.Audit.Export(s.ctx(c), since, func(e audit.Event) error {
		s.extendWriteDeadline(c)
		return enc.Encode(e)
	})
	if ferr := out.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		// The status is sent: the client sees a truncated stream; the log says why.
		s.log.Warn("audit export ended early", "err", err)
	}
	return nil
}

// queryTime reads a time parameter: RFC 3339 (2026-12-01T00:00:00Z) or a date (2026-12-01, midnight UTC);
// empty is the zero time.
func queryTime(v, name string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, authn.ErrInvalid.WithMessage(name + " must be a time such as 2026-12-01T09:00:00Z or a date such as 2026-12-01.")
}
