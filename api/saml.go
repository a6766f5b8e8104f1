package api

import (
	"net/http"
	"net/url"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/winkk/passport/authn/sso"
)

func (s *Server) handleCertificate(c echo.Context) error {
	_, next := c.QueryParams()["next"]
	cert, err := s.idp.CertificatePEM(next)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "public, max-age=300")
	return c.Blob(http.StatusOK, "application/x-pem-file", cert)
}

func (s *Server) handleMetadata(c echo.Context) error {
	md, err := s.idp.Metadata(s.ctx(c), c.Param("appID"))
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "public, max-age=300")
	return c.Blob(http.StatusOK, "application/samlmetadata+xml", md)
}

// inbound is the SAML message of the request, still in its binding.
func inbound(c echo.Context) (sso.Inbound, error) {
	r := c.Request()
	in := sso.Inbound{Method: r.Method, RawQuery: r.URL.RawQuery}
	if r.Method == http.MethodPost {
		if err := r.ParseForm(); err != nil {
			return in, errMalformedRequest
		}
		in.Form = r.PostForm
	}
	return in, nil
}

// client is the browser of the request, as the flows know it.
func client(c echo.Context) sso.Client {
	return sso.Client{IP: c.RealIP(), UserAgent: c.Request().UserAgent(), Network: clientKey(c)}
}

// handleSSO is the SingleSignOnService: the SP's request parks a login (the browser goes on to the login
// page), or is answered at once (from the IdP session, or with an error Response); see sso.IdP.SSO.
func (s *Server) handleSSO(c echo.Context) error {
	in, err := inbound(c)
	if err != nil {
		return err
	}
	st, err := s.idp.SSO(s.ctx(c), c.Param("appID"), in, client(c), sessionCookieValue(c))
	if err != nil {
		return err
	}
	s.metrics.requests.WithLabelValues(c.Param("appID")).Inc()
	return s.start(c, st)
}

// handleIdPLogin is IdP-initiated login: the same approval, then an unsolicited Response.
func (s *Server) handleIdPLogin(c echo.Context) error {
	st, err := s.idp.IdPInitiated(s.ctx(c), c.Param("appID"), c.QueryParam("RelayState"), client(c), sessionCookieValue(c))
	if err != nil {
		return err
	}
	return s.start(c, st)
}

// start sends the browser on: to the parked login's page, bound to it by a cookie, or to the SP at once.
func (s *Server) start(c echo.Context, st sso.Start) error {
	if st.Login == nil {
		if st.Success {
			s.metrics.logins.WithLabelValues("session").Inc()
			return renderPage(c, http.StatusOK, postView{AppName: st.AppName, Form: *formOf(st.Post)})
		}
		return s.renderPost(c, http.StatusOK, st.AppName, st.Post, st.Message)
	}
	id := st.Login.ID
	http.SetCookie(c.Response(), &http.Cookie{
		Name:     loginCookie,
		Value:    st.Secret,
		Path:     "/login/" + id,
		MaxAge:   int(s.idp.LoginCookieTTL().Seconds()),
		HttpOnly: true,
		Secure:   s.secure(),
		SameSite: http.SameSiteLaxMode,
	})
	return c.Redirect(http.StatusSeeOther, s.url("/login/"+id))
}

// sessionCookie names the IdP session; it is sent to the SAML endpoints only.
const sessionCookie = "passport_session"

func sessionCookieValue(c echo.Context) string { return cookieValue(c, sessionCookie) }

// setSessionCookie hands the browser its IdP session. On https it is SameSite=None so that HTTP-POST
// AuthnRequests (a cross-site POST) still find the session; on plain http (development) it is Lax.
func (s *Server) setSessionCookie(c echo.Context, value string, ttl time.Duration) {
	ck := &http.Cookie{Name: sessionCookie, Value: value, Path: "/saml/", HttpOnly: true, Secure: s.secure(), SameSite: http.SameSiteLaxMode}
	if s.secure() {
		ck.SameSite = http.SameSiteNoneMode
	}
	if value == "" {
		ck.MaxAge = -1
	} else {
		ck.MaxAge = int(ttl.Seconds())
	}
	http.SetCookie(c.Response(), ck)
}

// acsOrigin is the scheme://host of the ACS URL, for the page's form-action policy ("" when it has none).
func acsOrigin(acs string) string {
	u, err := url.Parse(acs)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}
