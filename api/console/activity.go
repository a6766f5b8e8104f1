package console

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/authn/audit"
)

func itoa(n int) string { return strconv.Itoa(n) }

type activityView struct {
	NoAudit          bool
	Type, Email, App string
	Since, Until     string // as typed: 2006-01-02T15:04 (the datetime-local input)
	Events           []audit.Event
	Next             string // the URL of the next page; "" when there is none
	Types            []string
	Error            string
}

func (activityView) title() string { return "Activity" }

// datetimeLocal is the format of an <input type="datetime-local">, read as UTC.
const datetimeLocal = "2006-01-02T15:04"

// handleActivity pages through the audit log, newest first, with the filters of the form.
func (k *Console) handleActivity(c echo.Context) error {
	q := c.QueryParams()
	v := activityView{NoAudit: k.cfg.Audit == nil, Type: q.Get("type"), Email: q.Get("email"), App: q.Get("app_id"),
		Since: q.Get("since"), Until: q.Get("until"), Types: audit.Types}
	if v.NoAudit {
		return k.render(c, http.StatusOK, "activity", "activity", v)
	}
	f := audit.Filter{Type: v.Type, Email: v.Email, AppID: v.App, Cursor: q.Get("cursor"), Limit: 50}
	status := http.StatusOK
	for _, t := range []struct {
		raw string
		dst *time.Time
	}{{v.Since, &f.Since}, {v.Until, &f.Until}} {
		if t.raw == "" {
			continue
		}
		tm, err := time.Parse(datetimeLocal, t.raw)
		if err != nil {
			v.Error, status = "Times are dates and times such as 2026-01-31T09:00 (UTC).", http.StatusUnprocessableEntity
			return k.render(c, status, "activity", "activity", v)
		}
		*t.dst = tm
	}
	events, next, err := k.cfg.Audit.List(k.ctx(c), f)
	if err != nil {
		var e *authn.Error
		if errors.As(err, &e) {
			v.Error = e.Message
			return k.render(c, http.StatusUnprocessableEntity, "activity", "activity", v)
		}
		return err
	}
	v.Events = events
	if next != "" {
		nq := url.Values{}
		for key, val := range map[string]string{"type": v.Type, "email": v.Email, "app_id": v.App, "since": v.Since, "until": v.Until, "cursor": next} {
			if val != "" {
				nq.Set(key, val)
			}
		}
		v.Next = "/admin/activity?" + nq.Encode()
	}
	return k.render(c, status, "activity", "activity", v)
}

// Keys.

type certInfo struct {
	NotBefore, NotAfter time.Time
	SHA256              string
	ExpiresSoon         bool
}

func certOf(k *authn.SigningKey, now time.Time) *certInfo {
	if k == nil {
		return nil
	}
	sum := sha256.Sum256(k.Certificate.Raw)
	return &certInfo{NotBefore: k.Certificate.NotBefore, NotAfter: k.Certificate.NotAfter, SHA256: fingerprint(sum[:]),
		ExpiresSoon: k.Certificate.NotAfter.Sub(now) < expirySoon}
}

// expirySoon is how close a certificate's end must be for the console to warn of it.
const expirySoon = 30 * 24 * time.Hour

func fingerprint(b []byte) string {
	h := strings.ToUpper(hex.EncodeToString(b))
	var parts []string
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}

type keysView struct {
	Current, Next *certInfo
	Static        bool
	Fresh         bool
	CertURL       string
}

func (keysView) title() string { return "Signing keys" }

func (k *Console) handleKeys(c echo.Context) error {
	r := k.idp.Ring()
	now := k.now()
	return k.render(c, http.StatusOK, "keys", "keys", keysView{Current: certOf(r.Current, now), Next: certOf(r.Next, now),
		Static: k.idp.StaticKey(), Fresh: sessionOf(c).Fresh(now), CertURL: k.idp.CertificateURL()})
}

// handleStageKey makes the next signing key, published in the metadata beside the current one.
func (k *Console) handleStageKey(c echo.Context) error {
	if _, err := k.idp.StageKey(k.ctx(c)); err != nil {
		return err
	}
	return k.redirect(c, "/admin/keys", "Next signing key staged. Give its certificate to every application before activating it.")
}

// handleActivateKey makes the staged key the one that signs, after a fresh phone approval.
func (k *Console) handleActivateKey(c echo.Context) error {
	if !sessionOf(c).Fresh(k.now()) {
		return c.Redirect(http.StatusSeeOther, "/admin/confirm?next="+url.QueryEscape("/admin/keys"))
	}
	if _, err := k.idp.ActivateKey(k.ctx(c), authn.DefaultRolloverGrace); err != nil {
		return err
	}
	return k.redirect(c, "/admin/keys", "The staged key now signs. Applications that do not have its certificate yet reject sign-ins until they get it.")
}

// Overview.

type overviewView struct {
	NoAudit                    bool
	Approved, Denied, Reported int
	Unconfigured               []authn.App
	Expiring                   *certInfo
	WithoutPhone               []string
}

func (overviewView) title() string { return "Overview" }

// handleOverview is what an administrator checks first: today's sign-ins, applications not yet configured, a
// certificate nearing its end, users without a phone.
func (k *Console) handleOverview(c echo.Context) error {
	ctx := k.ctx(c)
	now := k.now().UTC()
	v := overviewView{NoAudit: k.cfg.Audit == nil}
	if k.cfg.Audit != nil {
		day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
		counts, err := k.cfg.Audit.Count(ctx, day, audit.LoginApproved, audit.LoginDenied, audit.LoginReported)
		if err != nil {
			return err
		}
		v.Approved, v.Denied, v.Reported = counts[audit.LoginApproved], counts[audit.LoginDenied], counts[audit.LoginReported]
	}
	apps, err := k.svc.Apps.List(ctx)
	if err != nil {
		return err
	}
	for _, a := range apps {
		if !a.Configured() {
			v.Unconfigured = append(v.Unconfigured, a)
		}
	}
	if ci := certOf(k.idp.Ring().Current, now); ci != nil && ci.ExpiresSoon {
		v.Expiring = ci
	}
	us, err := k.svc.Users.List(ctx)
	if err != nil {
		return err
	}
	for _, u := range us {
		ds, err := k.svc.Devices.List(ctx, u.Email)
		if err != nil {
			return err
		}
		if len(ds) == 0 {
			v.WithoutPhone = append(v.WithoutPhone, u.Email)
		}
	}
	return k.render(c, http.StatusOK, "overview", "overview", v)
}
