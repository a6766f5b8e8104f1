package api

import (
	"encoding/json"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/winkk/passport/api/deviceapi"
	"github.com/winkk/passport/authn"
)

func (s *Server) handleCreateUser(c echo.Context) error {
	var p authn.UserPatch
	if err := bindJSON(c, &p); err != nil {
		return err
	}
	u, err := s.svc.Users.Create(s.ctx(c), p)
	if err != nil {
		return err
	}
	s.log.Info("user created", "email", u.Email)
	return c.JSON(http.StatusCreated, u)
}

func (s *Server) handleListUsers(c echo.Context) error {
	us, err := s.svc.Users.List(s.ctx(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"users": us})
}

func (s *Server) handleGetUser(c echo.Context) error {
	u, err := s.svc.Users.Get(s.ctx(c), c.Param("email"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, u)
}

// handleUpdateUser changes a user; suspending one also ends its sessions at once.
func (s *Server) handleUpdateUser(c echo.Context) error {
	var p authn.UserPatch
	if err := bindJSON(c, &p); err != nil {
		return err
	}
	u, err := s.svc.Users.Update(s.ctx(c), c.Param("email"), p)
	if err != nil {
		return err
	}
	s.log.Info("user updated", "email", u.Email, "status", u.Status)
	return c.JSON(http.StatusOK, u)
}

func (s *Server) handleDeleteUser(c echo.Context) error {
	if err := s.svc.Users.Delete(s.ctx(c), c.Param("email")); err != nil {
		return err
	}
	s.log.Info("user deleted", "email", c.Param("email"))
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) handleEndUserSessions(c echo.Context) error {
	if _, err := s.svc.Users.Get(s.ctx(c), c.Param("email")); err != nil {
		return err
	}
	n, err := s.svc.Sessions.EndUser(s.ctx(c), c.Param("email"))
	if err != nil {
		return err
	}
	s.log.Info("user sessions ended by admin", "email", c.Param("email"), "sessions", n)
	return c.JSON(http.StatusOK, map[string]int{"ended": n})
}

func (s *Server) handleListUserDevices(c echo.Context) error {
	if _, err := s.svc.Users.Get(s.ctx(c), c.Param("email")); err != nil {
		return err
	}
	ds, err := s.svc.Devices.List(s.ctx(c), c.Param("email"))
	if err != nil {
		return err
	}
	out := make([]adminDevice, 0, len(ds))
	for _, d := range ds {
		out = append(out, viewAdminDevice(d))
	}
	return c.JSON(http.StatusOK, map[string]any{"devices": out})
}

func (s *Server) handleGetUserDevice(c echo.Context) error {
	d, err := s.svc.Devices.Get(s.ctx(c), c.Param("email"), c.Param("deviceID"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, viewAdminDevice(d))
}

// adminDevice is a device as the admin API shows it: the device API's view, plus its public key (JWK), with
// which anyone can check the device's receipts (the login events' details.receipt), and the phone that
// vouched for it, if any.
type adminDevice struct {
	deviceapi.Device
	PublicKey json.RawMessage `json:"public_key"`
	InvitedBy string          `json:"invited_by,omitempty"`
}

func viewAdminDevice(d authn.Device) adminDevice {
	return adminDevice{Device: viewDevice(d, ""), PublicKey: json.RawMessage(d.PublicKey), InvitedBy: d.InvitedBy}
}

func (s *Server) handleRevokeUserDevice(c echo.Context) error {
	if err := s.svc.Devices.Remove(s.ctx(c), c.Param("email"), c.Param("deviceID")); err != nil {
		return err
	}
	s.log.Info("device revoked by admin", "email", c.Param("email"), "device", c.Param("deviceID"))
	return c.NoContent(http.StatusNoContent)
}

// handleRevokeUserDevices revokes every device of a user.
func (s *Server) handleRevokeUserDevices(c echo.Context) error {
	n, err := s.svc.Devices.RemoveAll(s.ctx(c), c.Param("email"))
	if err != nil {
		return err
	}
	s.log.Info("all devices revoked by admin", "email", c.Param("email"), "devices", n)
	return c.NoContent(http.StatusNoContent)
}
