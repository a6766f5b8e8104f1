package api

import (
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/saml"
)

// handleSLO is the SingleLogoutService (saml-profiles §4.4). A LogoutRequest must be signed by one of the
// app's SP certificates; it ends the whole IdP session it names, tells the session's other apps that have an
// SLO endpoint (front-channel: one signed LogoutRequest each, loaded in the page), and answers the asking SP
// with a signed LogoutResponse by HTTP-Redirect. LogoutResponses coming back from those other apps land here
// too and are simply acknowledged.
func (s *Server) handleSLO(c echo.Context) error {
	r := c.Request()
	param := "SAMLRequest"
	if r.URL.Query().Get("SAMLResponse") != "" || (r.Method == http.MethodPost && r.PostFormValue("SAMLResponse") != "") {
		param = "SAMLResponse"
	}
	var msg *saml.InboundMessage
	var err error
	if r.Method == http.MethodPost {
		msg, err = saml.DecodePOST(r.PostForm, param)
	} else {
		msg, err = saml.DecodeRedirect(r.URL.RawQuery, param)
	}
	if err != nil {
		return err
	}
	if param == "SAMLResponse" {
		return c.HTML(http.StatusOK, "<!doctype html><title>Signed out</title><p>Signed out.</p>")
	}
	ctx := s.ctx(c)
	app, err := s.svc.GetApp(ctx, c.Param("appID"))
	if err != nil {
		return err
	}
	if !app.Configured() || app.SLOURL == "" || len(app.SPCertificates) == 0 {
		return errSLONotConfigured
	}
	req, err := s.idp().ReadLogoutRequest(msg, saml.LogoutCheck{Audience: app.Audience, SLOURL: s.sloURL(app.ID)},
		saml.SignaturePolicy{Certificates: spCertificates(app), Require: true, AllowSHA1: app.AllowSHA1})
	if err != nil {
		return err
	}
	if err := s.svc.ConsumeRequestID(ctx, app.ID, "logout:"+req.ID, s.requestIDLifetime()); err != nil {
		return err
	}
	ended, err := s.endNamedSessions(c, app, req)
	if err != nil {
		return err
	}
	s.setSessionCookie(c, "", 0)
	// Every other app of every ended session gets a LogoutRequest in a frame; one that cannot (no SLO
	// endpoint) makes the logout partial, and the LogoutResponse says so (saml-core §3.7.3.2).
	var frames []string
	partial := false
	for _, sess := range ended {
		s.log.Info("single logout", "app", app.ID, "email", sess.Email, "session", sess.ID)
		for _, other := range sess.Apps {
			if other.AppID == app.ID {
				continue
			}
			u, err := s.logoutRequestURL(c, other, sess)
			if err != nil {
				s.log.Warn("front-channel logout request", "app", other.AppID, "err", err)
			}
			if u == "" {
				partial = true
				continue
			}
			frames = append(frames, u)
		}
	}
	params := saml.LogoutResponseParams{InResponseTo: req.ID, Destination: app.SLOURL}
	if partial {
		params.SubStatusCode = saml.StatusPartialLogout
	}
	respXML, err := s.idp().MakeLogoutResponse(params)
	if err != nil {
		return err
	}
	back, err := s.idp().RedirectURL(app.SLOURL, "SAMLResponse", respXML, msg.RelayState)
	if err != nil {
		return err
	}
	if len(frames) == 0 {
		return c.Redirect(http.StatusSeeOther, back)
	}
	return s.renderPage(c, http.StatusOK, pageData{View: "logout", Title: "Signing you out", Message: "You are signed out of Passport. Signing you out of your other applications…",
		AppName: app.Name, Frames: frames, Link: template.URL(back), LinkText: "Continue to " + app.Name})
}

// endNamedSessions ends the IdP sessions the LogoutRequest names by SessionIndex (or, without one, the
// browser's session), provided the NameID is the one this app was given in each. It returns the sessions it
// ended (none when there were none: the principal is signed out all the same).
func (s *Server) endNamedSessions(c echo.Context, app authn.App, req *saml.LogoutRequest) ([]authn.Session, error) {
	ctx := s.ctx(c)
	var ids []string
	for _, idx := range req.SessionIndexes {
		if id, ok := authn.SessionIDFromIndex(idx); ok {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		if sess, err := s.svc.SessionFromCookie(ctx, sessionCookieValue(c)); err == nil {
			ids = append(ids, sess.ID)
		}
	}
	var ended []authn.Session
	for _, id := range ids {
		sess, err := s.svc.GetSession(ctx, id)
		if errors.Is(err, authn.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if !namesSubject(sess, app.ID, req.NameID) {
			s.log.Warn("logout request names a session of another subject; ignored", "app", app.ID, "session", id)
			continue
		}
		gone, err := s.svc.EndSession(ctx, id)
		if errors.Is(err, authn.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		ended = append(ended, gone)
	}
	return ended, nil
}

func namesSubject(sess authn.Session, appID, nameID string) bool {
	for _, a := range sess.Apps {
		if a.AppID == appID {
			return a.NameID == nameID
		}
	}
	return false
}

// logoutRequestURL is the signed front-channel LogoutRequest for another app of the session ("" when that app
// has no SLO endpoint).
func (s *Server) logoutRequestURL(c echo.Context, other authn.SessionApp, sess authn.Session) (string, error) {
	app, err := s.svc.GetApp(s.ctx(c), other.AppID)
	if errors.Is(err, authn.ErrNotFound) || (err == nil && app.SLOURL == "") {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	_, xml, err := s.idp().MakeLogoutRequest(saml.LogoutRequestParams{Destination: app.SLOURL, NameID: other.NameID, NameIDFormat: other.NameIDFormat, SessionIndex: sess.SessionIndex()})
	if err != nil {
		return "", err
	}
	return s.idp().RedirectURL(app.SLOURL, "SAMLRequest", xml, "")
}

// frameOrigins lists the origins of front-channel logout frames, for the page's frame-src policy.
func frameOrigins(frames []string) string {
	seen := map[string]bool{}
	var out []string
	for _, f := range frames {
		u, err := url.Parse(f)
		if err != nil || seen[u.Host] {
			continue
		}
		seen[u.Host] = true
		out = append(out, u.Scheme+"://"+u.Host)
	}
	return strings.Join(out, " ")
}
