package console

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/authn/audit"
	"github.com/winkk/passport/authn/sso"
)

// appRow is one line of the Applications tab.
type appRow struct {
	App        authn.App
	Configured bool
	LastSignIn time.Time
}

type appsView struct {
	Apps     []appRow
	Activity bool // the last sign-ins come from the audit log
}

func (appsView) title() string { return "Applications" }

// handleApps lists the applications: name, configured or not, last sign-in.
func (k *Console) handleApps(c echo.Context) error {
	apps, err := k.svc.Apps.List(k.ctx(c))
	if err != nil {
		return err
	}
	last := k.lastSignIns(c)
	v := appsView{Activity: k.cfg.Audit != nil}
	for _, a := range apps {
		v.Apps = append(v.Apps, appRow{App: a, Configured: a.Configured(), LastSignIn: last[a.ID]})
	}
	return k.render(c, http.StatusOK, "apps", "apps", v)
}

// lastSignIns reads, from the recent audit log, the last successful sign-in of each application.
func (k *Console) lastSignIns(c echo.Context) map[string]time.Time {
	out := map[string]time.Time{}
	if k.cfg.Audit == nil {
		return out
	}
	events, _, err := k.cfg.Audit.List(k.ctx(c), audit.Filter{Type: audit.LoginSucceeded, Limit: audit.MaxLimit})
	if err != nil {
		k.log.Warn("console: read last sign-ins", "err", err)
		return out
	}
	for _, e := range events { // newest first
		if _, ok := out[e.AppID]; !ok && e.AppID != "" {
			out[e.AppID] = e.Time
		}
	}
	return out
}

// appForm is the add/edit form of an application, as typed (kept when the form is shown again with errors).
type appForm struct {
	Name, URL, Interface, AuthType, Audience, ACSURL string
	NameIDFormat, AttributeProfile, Sign, SLOURL     string
	AllowedGroups, RelayStates, SPCertificates       string
	RequireSignedRequests                            bool
}

func formOfApp(a authn.App) appForm {
	return appForm{Name: a.Name, URL: a.URL, Interface: a.Interface, AuthType: a.AuthType, Audience: a.Audience, ACSURL: a.ACSURL,
		NameIDFormat: a.NameIDFormat, AttributeProfile: a.AttributeProfile, Sign: a.Sign, SLOURL: a.SLOURL,
		AllowedGroups: strings.Join(a.AllowedGroups, "\n"), RelayStates: strings.Join(a.RelayStates, "\n"),
		SPCertificates: strings.Join(a.SPCertificates, "\n"), RequireSignedRequests: a.RequireSignedRequests}
}

// splitLines is a textarea's non-empty lines.
func splitLines(s string) []string {
	out := []string{}
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// splitPEMs is the PEM blocks pasted in a textarea, each whole.
func splitPEMs(s string) []string {
	out := []string{}
	const end = "-----END CERTIFICATE-----"
	for {
		i := strings.Index(s, end)
		if i < 0 {
			if strings.TrimSpace(s) != "" {
				out = append(out, strings.TrimSpace(s)) // not a whole certificate: the service says what is wrong
			}
			return out
		}
		out = append(out, strings.TrimSpace(s[:i+len(end)]))
		s = s[i+len(end):]
	}
}

func str(s string) *string { return &s }

// readAppForm reads the add form (create) or the application's settings form into a patch.
func readAppForm(c echo.Context, create bool) (appForm, authn.AppPatch) {
	f := appForm{Name: c.FormValue("name"), URL: c.FormValue("url"), Interface: c.FormValue("interface"), AuthType: c.FormValue("auth_type"),
		Audience: strings.TrimSpace(c.FormValue("audience")), ACSURL: strings.TrimSpace(c.FormValue("acs_url"))}
	p := authn.AppPatch{Name: str(f.Name), URL: str(f.URL), AuthType: str(f.AuthType), Audience: str(f.Audience), ACSURL: str(f.ACSURL)}
	if create {
		p.Interface = str(f.Interface)
		return f, p
	}
	f.NameIDFormat, f.AttributeProfile, f.Sign, f.SLOURL = c.FormValue("nameid_format"), c.FormValue("attribute_profile"), c.FormValue("sign"), strings.TrimSpace(c.FormValue("slo_url"))
	f.AllowedGroups, f.RelayStates, f.SPCertificates = c.FormValue("allowed_groups"), c.FormValue("relay_states"), c.FormValue("sp_certificates")
	f.RequireSignedRequests = c.FormValue("require_signed_requests") == "on"
	groups, relays, certs := splitLines(f.AllowedGroups), splitLines(f.RelayStates), splitPEMs(f.SPCertificates)
	p.NameIDFormat, p.AttributeProfile, p.Sign, p.SLOURL = str(f.NameIDFormat), str(f.AttributeProfile), str(f.Sign), str(f.SLOURL)
	p.AllowedGroups, p.RelayStates, p.SPCertificates, p.RequireSignedRequests = &groups, &relays, &certs, &f.RequireSignedRequests
	return f, p
}

type newAppView struct {
	Form   appForm
	Error  string
	Fields []authn.FieldError
}

func (newAppView) title() string { return "Add application" }

func (k *Console) handleNewApp(c echo.Context) error {
	return k.render(c, http.StatusOK, "app-new", "apps", newAppView{Form: appForm{Interface: "saml2"}})
}

// handleCreateApp adds an application (Audience and ACS URL may stay blank), then shows its page.
func (k *Console) handleCreateApp(c echo.Context) error {
	f, p := readAppForm(c, true)
	a, err := k.svc.Apps.Create(k.ctx(c), p)
	if errors.Is(err, authn.ErrInvalid) || errors.Is(err, authn.ErrConflict) {
		return k.render(c, statusOf(err), "app-new", "apps", newAppView{Form: f, Error: publicMessage(err), Fields: fieldsOf(err)})
	}
	if err != nil {
		return err
	}
	k.log.Info("application created", "app", a.ID, "name", a.Name, "by", sessionOf(c).Email)
	return k.redirect(c, "/admin/apps/"+url.PathEscape(a.ID), "Application saved.")
}

// appView is an application's page: what to paste into the SP, its settings, its recent activity.
type appView struct {
	App                          authn.App
	Form                         appForm
	Error                        string
	Fields                       []authn.FieldError
	Warnings                     []string
	EntityID, SSOURL, CertURL    string
	MetadataURL, TryURL          string
	Events                       []audit.Event
	Fresh                        bool // a fresh phone approval allows deleting at once
	NameIDFormats, Profiles, Sig []string
}

func (v appView) title() string { return v.App.Name }

func (k *Console) appView(c echo.Context, a authn.App) appView {
	v := appView{App: a, Form: formOfApp(a), Warnings: authn.AppWarnings(a),
		EntityID: k.idp.EntityID(), SSOURL: k.idp.SSOURL(a.ID), CertURL: k.idp.CertificateURL(),
		MetadataURL: k.idp.MetadataURL(a.ID), TryURL: k.idp.IdPInitiatedURL(a.ID), Fresh: sessionOf(c).Fresh(k.now()),
		NameIDFormats: []string{authn.NameIDEmail, authn.NameIDPersistent, authn.NameIDTransient, authn.NameIDUnspecified},
		Profiles:      []string{authn.ProfileDefault, authn.ProfileAtlassian},
		Sig:           []string{authn.SignBoth, authn.SignAssertion, authn.SignResponse}}
	if k.cfg.Audit != nil {
		v.Events, _, _ = k.cfg.Audit.List(k.ctx(c), audit.Filter{AppID: a.ID, Limit: 10})
	}
	return v
}

func (k *Console) handleApp(c echo.Context) error {
	a, err := k.svc.Apps.Get(k.ctx(c), c.Param("id"))
	if err != nil {
		return err
	}
	return k.render(c, http.StatusOK, "app", "apps", k.appView(c, a))
}

// handleUpdateApp saves the application's settings (Audience and ACS URL, filled once the SP gave them).
func (k *Console) handleUpdateApp(c echo.Context) error {
	f, p := readAppForm(c, false)
	a, err := k.svc.Apps.Update(k.ctx(c), c.Param("id"), p)
	if errors.Is(err, authn.ErrInvalid) || errors.Is(err, authn.ErrConflict) {
		cur, gerr := k.svc.Apps.Get(k.ctx(c), c.Param("id"))
		if gerr != nil {
			return gerr
		}
		v := k.appView(c, cur)
		v.Form, v.Error, v.Fields = f, publicMessage(err), fieldsOf(err)
		return k.render(c, statusOf(err), "app", "apps", v)
	}
	if err != nil {
		return err
	}
	return k.redirect(c, "/admin/apps/"+url.PathEscape(a.ID), "Application saved.")
}

// handleImportMetadata fills the application from its SP's metadata, uploaded as a file or pasted.
func (k *Console) handleImportMetadata(c echo.Context) error {
	var body []byte
	if fh, err := c.FormFile("metadata_file"); err == nil {
		f, err := fh.Open()
		if err != nil {
			return authn.ErrInvalid.WithMessage("The metadata file could not be read.")
		}
		defer f.Close()
		if body, err = io.ReadAll(io.LimitReader(f, sso.MaxSPMetadataSize+1)); err != nil {
			return authn.ErrInvalid.WithMessage("The metadata file could not be read.")
		}
	}
	if len(body) == 0 {
		body = []byte(c.FormValue("metadata"))
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return k.redirect(c, "/admin/apps/"+url.PathEscape(c.Param("id")), "Choose the SP's metadata file or paste its XML first.")
	}
	a, _, err := k.idp.ImportSPMetadata(k.ctx(c), c.Param("id"), body)
	if errors.Is(err, authn.ErrInvalid) || errors.Is(err, authn.ErrConflict) {
		cur, gerr := k.svc.Apps.Get(k.ctx(c), c.Param("id"))
		if gerr != nil {
			return gerr
		}
		v := k.appView(c, cur)
		v.Error = "The metadata was not taken: " + publicMessage(err)
		return k.render(c, statusOf(err), "app", "apps", v)
	}
	if err != nil {
		return err
	}
	return k.redirect(c, "/admin/apps/"+url.PathEscape(a.ID), "Application filled from the SP's metadata.")
}

// handleDeleteApp deletes the application, after a fresh phone approval.
func (k *Console) handleDeleteApp(c echo.Context) error {
	back := "/admin/apps/" + url.PathEscape(c.Param("id"))
	if !sessionOf(c).Fresh(k.now()) {
		return c.Redirect(http.StatusSeeOther, "/admin/confirm?next="+url.QueryEscape(back))
	}
	if err := k.svc.Apps.Delete(k.ctx(c), c.Param("id")); err != nil {
		return err
	}
	return k.redirect(c, "/admin/apps", "Application deleted.")
}

// statusOf is the status of a form refused for err.
func statusOf(err error) int {
	if errors.Is(err, authn.ErrConflict) {
		return http.StatusConflict
	}
	return http.StatusUnprocessableEntity
}

func fieldsOf(err error) []authn.FieldError {
	var ae *authn.Error
	if errors.As(err, &ae) {
		return ae.Fields
	}
	return nil
}
