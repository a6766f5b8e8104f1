package api

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"
)

// handleSLO is the SingleLogoutService (see sso.IdP.SingleLogout): the browser's IdP session ends, the other
// applications of the ended sessions are told in frames, and the asking SP gets its LogoutResponse.
func (s *Server) handleSLO(c echo.Context) error {
	in, err := inbound(c)
	if err != nil {
		return err
	}
	out, err := s.idp.SingleLogout(s.ctx(c), c.Param("appID"), in, sessionCookieValue(c))
	if err != nil {
		return err
	}
	if out.Acknowledged {
		return c.HTML(http.StatusOK, "<!doctype html><title>Signed out</title><p>Signed out.</p>")
	}
	s.setSessionCookie(c, "", 0)
	if len(out.Frames) == 0 {
		return c.Redirect(http.StatusSeeOther, out.Back)
	}
	return renderPage(c, http.StatusOK, logoutView{AppName: out.AppName, Frames: out.Frames, Continue: out.Back})
}

// frameOrigins lists the origins of front-channel logout frames, for the page's frame-src policy.
func frameOrigins(frames []string) string {
	seen := map[string]bool{}
	var out []string
	for _, f := range frames {
		u, err := url.Parse(f)
		if err != nil || u.Scheme == "" || u.Host == "" || seen[u.Host] {
			continue
		}
		seen[u.Host] = true
		out = append(out, u.Scheme+"://"+u.Host)
	}
	return strings.Join(out, " ")
}
