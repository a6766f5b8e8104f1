package console

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/winkk/passport/api/qrimage"
	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/authn/audit"
)

type userRow struct {
	User    authn.User
	Devices int
}

type usersView struct {
	Query  string
	Users  []userRow
	Form   userForm
	Error  string
	Fields []authn.FieldError
}

func (usersView) title() string { return "Users" }

type userForm struct {
	Email, GivenName, FamilyName, DisplayName, Groups string
	Admin                                             bool
}

// handleUsers lists the users, those matching the search (email or name) when there is one.
func (k *Console) handleUsers(c echo.Context) error {
	return k.showUsers(c, http.StatusOK, usersView{Query: strings.TrimSpace(c.QueryParam("q"))})
}

func (k *Console) showUsers(c echo.Context, status int, v usersView) error {
	us, err := k.svc.Users.List(k.ctx(c))
	if err != nil {
		return err
	}
	q := strings.ToLower(v.Query)
	for _, u := range us {
		if q != "" && !strings.Contains(strings.ToLower(u.Email+" "+u.GivenName+" "+u.FamilyName+" "+u.DisplayName), q) {
			continue
		}
		ds, err := k.svc.Devices.List(k.ctx(c), u.Email)
		if err != nil {
			return err
		}
		v.Users = append(v.Users, userRow{User: u, Devices: len(ds)})
	}
	return k.render(c, status, "users", "users", v)
}

func readUserForm(c echo.Context) (userForm, authn.UserPatch) {
	f := userForm{Email: c.FormValue("email"), GivenName: c.FormValue("given_name"), FamilyName: c.FormValue("family_name"),
		DisplayName: c.FormValue("display_name"), Groups: c.FormValue("groups"), Admin: c.FormValue("admin") == "on"}
	groups := splitLines(f.Groups)
	roles := []string{}
	if f.Admin {
		roles = append(roles, authn.RoleAdmin)
	}
	return f, authn.UserPatch{Email: str(f.Email), GivenName: str(f.GivenName), FamilyName: str(f.FamilyName),
		DisplayName: str(f.DisplayName), Groups: &groups, Roles: &roles}
}

// handleCreateUser creates a user, then shows its page (where it can be invited).
func (k *Console) handleCreateUser(c echo.Context) error {
	f, p := readUserForm(c)
	u, err := k.svc.Users.Create(k.ctx(c), p)
	if errors.Is(err, authn.ErrInvalid) || errors.Is(err, authn.ErrConflict) {
		return k.showUsers(c, statusOf(err), usersView{Form: f, Error: publicMessage(err), Fields: fieldsOf(err)})
	}
	if err != nil {
		return err
	}
	return k.redirect(c, userPath(u.Email), "User created.")
}

func userPath(email string) string { return "/admin/users/" + url.PathEscape(email) }

// invitationView is an invitation just made: its QR code (a PNG in a data: URL), its link, its expiry. It is
// shown once: the token is not stored.
type invitationView struct {
	QR        string // base64 PNG
	QRSide    int    // its width and height in pixels
	Link      string
	ExpiresAt time.Time
}

type userView struct {
	User       authn.User
	Form       userForm
	Error      string
	Fields     []authn.FieldError
	Devices    []authn.Device
	Invitation *invitationView
	Events     []audit.Event
	Fresh      bool
}

func (v userView) title() string { return v.User.Email }

func (k *Console) userView(c echo.Context, u authn.User) (userView, error) {
	ds, err := k.svc.Devices.List(k.ctx(c), u.Email)
	if err != nil {
		return userView{}, err
	}
	v := userView{User: u, Devices: ds, Fresh: sessionOf(c).Fresh(k.now()),
		Form: userForm{Email: u.Email, GivenName: u.GivenName, FamilyName: u.FamilyName, DisplayName: u.DisplayName,
			Groups: strings.Join(u.Groups, "\n"), Admin: u.IsAdmin()}}
	if k.cfg.Audit != nil {
		v.Events, _, _ = k.cfg.Audit.List(k.ctx(c), audit.Filter{Email: u.Email, Limit: 10})
	}
	return v, nil
}

func (k *Console) handleUser(c echo.Context) error {
	u, err := k.svc.Users.Get(k.ctx(c), c.Param("email"))
	if err != nil {
		return err
	}
	v, err := k.userView(c, u)
	if err != nil {
		return err
	}
	return k.render(c, http.StatusOK, "user", "users", v)
}

// handleUpdateUser saves a user's names, groups and roles.
func (k *Console) handleUpdateUser(c echo.Context) error {
	f, p := readUserForm(c)
	p.Email = nil
	u, err := k.svc.Users.Update(k.ctx(c), c.Param("email"), p)
	if errors.Is(err, authn.ErrInvalid) {
		cur, gerr := k.svc.Users.Get(k.ctx(c), c.Param("email"))
		if gerr != nil {
			return gerr
		}
		v, verr := k.userView(c, cur)
		if verr != nil {
			return verr
		}
		f.Email = cur.Email
		v.Form, v.Error, v.Fields = f, publicMessage(err), fieldsOf(err)
		return k.render(c, http.StatusUnprocessableEntity, "user", "users", v)
	}
	if err != nil {
		return err
	}
	return k.redirect(c, userPath(u.Email), "User saved.")
}

// handleInvite makes an invitation for the user and shows it at once (QR code, link, expiry): its token is
// never stored, so the page showing it is not a redirect.
func (k *Console) handleInvite(c echo.Context) error {
	inv, token, err := k.svc.Devices.Invite(k.ctx(c), c.Param("email"))
	if err != nil {
		return err
	}
	link := k.svc.Devices.EnrollURL(token)
	png, side, err := qrimage.PNG(link, 256)
	if err != nil {
		return err
	}
	u, err := k.svc.Users.Get(k.ctx(c), inv.Email)
	if err != nil {
		return err
	}
	v, err := k.userView(c, u)
	if err != nil {
		return err
	}
	v.Invitation = &invitationView{QR: base64.StdEncoding.EncodeToString(png), QRSide: side, Link: link, ExpiresAt: inv.ExpiresAt}
	return k.render(c, http.StatusOK, "user", "users", v)
}

// handleUserStatus suspends (which ends the user's sessions) or reactivates a user.
func (k *Console) handleUserStatus(c echo.Context) error {
	status := c.FormValue("status")
	u, err := k.svc.Users.Update(k.ctx(c), c.Param("email"), authn.UserPatch{Status: &status})
	if err != nil {
		return err
	}
	msg := "User reactivated."
	if u.Status == authn.UserSuspended {
		msg = "User suspended: their sign-in sessions have ended."
	}
	return k.redirect(c, userPath(u.Email), msg)
}

// handleEndSessions ends every IdP session of the user.
func (k *Console) handleEndSessions(c echo.Context) error {
	u, err := k.svc.Users.Get(k.ctx(c), c.Param("email"))
	if err != nil {
		return err
	}
	n, err := k.svc.Sessions.EndUser(k.ctx(c), u.Email)
	if err != nil {
		return err
	}
	return k.redirect(c, userPath(u.Email), plural(n, "session")+" ended.")
}

// handleRevokeDevice removes one phone of the user (its sessions end with it).
func (k *Console) handleRevokeDevice(c echo.Context) error {
	if err := k.svc.Devices.Remove(k.ctx(c), c.Param("email"), c.Param("deviceID")); err != nil {
		return err
	}
	return k.redirect(c, userPath(c.Param("email")), "Phone revoked.")
}

// handleRevokeAllDevices removes every phone of the user, after a fresh phone approval.
func (k *Console) handleRevokeAllDevices(c echo.Context) error {
	back := userPath(c.Param("email"))
	if !sessionOf(c).Fresh(k.now()) {
		return c.Redirect(http.StatusSeeOther, "/admin/confirm?next="+url.QueryEscape(back))
	}
	u, err := k.svc.Users.Get(k.ctx(c), c.Param("email"))
	if err != nil {
		return err
	}
	n, err := k.svc.Devices.RemoveAll(k.ctx(c), u.Email)
	if err != nil {
		return err
	}
	return k.redirect(c, back, plural(n, "phone")+" revoked.")
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return itoa(n) + " " + what + "s"
}
