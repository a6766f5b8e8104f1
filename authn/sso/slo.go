package sso

import (
	"context"
	"errors"
	"net/url"

	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/saml"
)

// Logout is what a LogoutRequest comes to: the browser is sent back to the asking SP with a signed
// LogoutResponse (Back, an HTTP-Redirect URL), after loading Frames — one signed front-channel LogoutRequest
// for each other application of the ended sessions — when there are any. The browser's IdP session cookie
// is cleared in any case.
type Logout struct {
	Back    string
	Frames  []string
	AppName string
	// Acknowledged: the message was a LogoutResponse coming back from another application (nothing to do).
	Acknowledged bool
}

// ErrSLONotConfigured refuses single logout for an application without the SP's certificate and SLO URL.
var ErrSLONotConfigured = &authn.Error{Code: "slo_not_configured", Message: "Single logout is not set up for this application: it needs the SP's signing certificate and SLO URL in Passport."}

// SingleLogout is the SingleLogoutService (saml-profiles §4.4). A LogoutRequest must be signed by one of the
// application's SP certificates; it ends the IdP sessions it names (see SessionsToEnd), tells the sessions'
// other applications that have an SLO endpoint, and is answered with a signed LogoutResponse — PartialLogout
// when an application could not be told (saml-core §3.7.3.2). LogoutResponses coming back from those other
// applications are acknowledged.
func (p *IdP) SingleLogout(ctx context.Context, appID string, in Inbound, sessionCookie string) (Logout, error) {
	param := "SAMLRequest"
	if in.isResponse() {
		param = "SAMLResponse"
	}
	msg, err := in.decode(param)
	if err != nil {
		return Logout{}, err
	}
	if param == "SAMLResponse" {
		return Logout{Acknowledged: true}, nil
	}
	app, err := p.svc.Apps.Get(ctx, appID)
	if err != nil {
		return Logout{}, err
	}
	if !app.Configured() || app.SLOURL == "" || len(app.SPCertificates) == 0 {
		return Logout{}, ErrSLONotConfigured
	}
	req, err := p.saml().ReadLogoutRequest(msg, saml.LogoutCheck{Audience: app.Audience, SLOURL: p.SLOURL(app.ID)}, signaturePolicy(app, true))
	if err != nil {
		return Logout{}, fromSAML(err)
	}
	if err := p.svc.Logins.ConsumeRequestID(ctx, app.ID, "logout:"+req.ID, p.requestIDLifetime()); err != nil {
		return Logout{}, err
	}
	ended, err := p.endSessions(ctx, app, p.SessionsToEnd(ctx, req.SessionIndexes, sessionCookie), req.NameID)
	if err != nil {
		return Logout{}, err
	}
	out := Logout{AppName: app.Name}
	partial := false
	for _, sess := range ended {
		p.log.Info("single logout", "app", app.ID, "email", sess.Email, "session", sess.ID)
		for _, other := range sess.Apps {
			if other.AppID == app.ID {
				continue
			}
			u, err := p.logoutRequestURL(ctx, other, sess)
			if err != nil {
				p.log.Warn("front-channel logout request", "app", other.AppID, "err", err)
			}
			if u == "" {
				partial = true
				continue
			}
			out.Frames = append(out.Frames, u)
		}
	}
	params := saml.LogoutResponseParams{InResponseTo: req.ID, Destination: app.SLOURL}
	if partial {
		params.SubStatusCode = saml.StatusPartialLogout
	}
	respXML, err := p.saml().MakeLogoutResponse(params)
	if err != nil {
		return Logout{}, err
	}
	if out.Back, err = p.saml().RedirectURL(app.SLOURL, "SAMLResponse", respXML, msg.RelayState); err != nil {
		return Logout{}, err
	}
	return out, nil
}

// isResponse reports whether the message carried is a SAMLResponse rather than a SAMLRequest.
func (in Inbound) isResponse() bool {
	q, _ := url.ParseQuery(in.RawQuery)
	return q.Get("SAMLResponse") != "" || (in.Method == "POST" && in.Form.Get("SAMLResponse") != "")
}

// SessionsToEnd names the IdP sessions a LogoutRequest asks to end: those its SessionIndexes name, or, without
// one, the browser's own session (sessionCookie).
func (p *IdP) SessionsToEnd(ctx context.Context, sessionIndexes []string, sessionCookie string) []string {
	var ids []string
	for _, idx := range sessionIndexes {
		if id, ok := authn.SessionIDFromIndex(idx); ok {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		if sess, err := p.svc.Sessions.FromCookie(ctx, sessionCookie); err == nil {
			ids = append(ids, sess.ID)
		}
	}
	return ids
}

// endSessions ends the sessions ids, each only if the NameID is the one app was given in it (a LogoutRequest
// may end only its own subject's sessions). It returns the sessions it ended; none when there were none (the
// principal is signed out all the same).
func (p *IdP) endSessions(ctx context.Context, app authn.App, ids []string, nameID string) ([]authn.Session, error) {
	var ended []authn.Session
	for _, id := range ids {
		sess, err := p.svc.Sessions.Get(ctx, id)
		if errors.Is(err, authn.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if !namesSubject(sess, app.ID, nameID) {
			p.log.Warn("logout request names a session of another subject; ignored", "app", app.ID, "session", id)
			continue
		}
		gone, err := p.svc.Sessions.End(ctx, id)
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

// namesSubject reports whether nameID is what app was told the session's user is called.
func namesSubject(sess authn.Session, appID, nameID string) bool {
	for _, a := range sess.Apps {
		if a.AppID == appID {
			return a.NameID == nameID
		}
	}
	return false
}

// logoutRequestURL is the signed front-channel LogoutRequest for another application of the session ("" when
// that application has no SLO endpoint).
func (p *IdP) logoutRequestURL(ctx context.Context, other authn.SessionApp, sess authn.Session) (string, error) {
	app, err := p.svc.Apps.Get(ctx, other.AppID)
	if errors.Is(err, authn.ErrNotFound) || (err == nil && app.SLOURL == "") {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	_, xml, err := p.saml().MakeLogoutRequest(saml.LogoutRequestParams{Destination: app.SLOURL, NameID: other.NameID, NameIDFormat: other.NameIDFormat, SessionIndex: sess.SessionIndex()})
	if err != nil {
		return "", err
	}
	return p.saml().RedirectURL(app.SLOURL, "SAMLRequest", xml, "")
}
