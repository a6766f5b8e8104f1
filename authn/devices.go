package authn

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/winkk/passport/authn/deviceproof"
	"github.com/winkk/passport/store"
)

// Push statuses of a device.
const (
	PushOK   = "ok"   // the device has an FCM token that last worked (or was never refused)
	PushDead = "dead" // FCM refused the token as unregistered or invalid: the device pulls
	PushNone = "none" // no FCM token: the device pulls
)

// Device is an enrolled phone. It holds only a public key: every call it makes is signed by the private key
// that never leaves the phone (see package deviceproof), so nothing stored here can be replayed.
type Device struct {
	ID                 string     `json:"id"`
	Email              string     `json:"email"`
	Name               string     `json:"name"`
	Platform           string     `json:"platform"`
	PublicKey          string     `json:"public_key"` // JWK JSON
	KeyThumbprint      string     `json:"key_thumbprint"`
	FCMToken           string     `json:"fcm_token"`
	PushStatus         string     `json:"push_status"`
	CreatedAt          time.Time  `json:"created_at"`
	LastSeenAt         *time.Time `json:"last_seen_at,omitempty"`
	PushTokenUpdatedAt *time.Time `json:"push_token_updated_at,omitempty"`
	// InvitedBy is the device that vouched for this one (a phone inviting the user's next phone), if any.
	InvitedBy string `json:"invited_by,omitempty"`
	// OTP is the device's offline-code secret as stored (sealed when a key-encryption key is configured). It
	// is never shown: not in device views, events or logs.
	OTP *storedSecret `json:"otp,omitempty"`
	// OfflineSecret is the clear offline-code secret (base32), set only on the Device an enrollment returns,
	// for its answer to the phone; it is never stored.
	OfflineSecret string `json:"-"`
}

// Invitation is a one-time, expiring enrollment token bound to an email. The token itself is never stored:
// its hash is the key, so reading the store does not let anyone enroll.
type Invitation struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// InvitedBy is the device that made the invitation for its user's next phone; empty for an administrator's.
	InvitedBy string `json:"invited_by,omitempty"`
}

// EnrollURL is the https enrollment link of an invitation token (also the fallback page on a computer).
func (s *Devices) EnrollURL(token string) string {
	return strings.TrimRight(s.cfg.BaseURL, "/") + "/enroll?token=" + url.QueryEscape(token)
}

// InvitationTTL is how long an invitation can be used.
const InvitationTTL = 72 * time.Hour

// ProofMaxSkew is how far a device proof's iat may be from the server's clock.
const ProofMaxSkew = 60 * time.Second

func invitationID(token string) string {
	h := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

func (s *core) domainAllowed(email string) bool {
	if len(s.cfg.AllowedDomains) == 0 {
		return true
	}
	domain := email[strings.LastIndexByte(email, '@')+1:]
	for _, d := range s.cfg.AllowedDomains {
		if d == domain {
			return true
		}
	}
	return false
}

// Invite makes a one-time enrollment token for email, creating the user when it does not exist.
// It returns the invitation and the token (which is not stored in clear).
func (s *Devices) Invite(ctx context.Context, rawEmail string) (Invitation, string, error) {
	email, err := NormalizeEmail(rawEmail)
	if err != nil {
		return Invitation{}, "", err
	}
	if !s.domainAllowed(email) {
		return Invitation{}, "", newErr(ErrEmailNotAllowed, "%s is not in an allowed domain", email)
	}
	if _, err := s.ensureUser(ctx, email); err != nil {
		return Invitation{}, "", err
	}
	return s.createInvitation(ctx, email, "", InvitationTTL)
}

// createInvitation stores a fresh invitation for email, made by device invitedBy (empty: an administrator),
// living ttl, and returns it with its token. The user's invitation index lives as long as its longest-lived
// invitation, so an account's invitations leave no trace once they are all gone.
func (s *core) createInvitation(ctx context.Context, email, invitedBy string, ttl time.Duration) (Invitation, string, error) {
	token := s.randomID(20)
	now := s.now()
	inv := Invitation{
		ID:        invitationID(token),
		Email:     email,
		CreatedAt: now,
		ExpiresAt: now.Add(ttl),
		InvitedBy: invitedBy,
	}
	if err := s.storeInvitation(ctx, inv, ttl); err != nil {
		return Invitation{}, "", err
	}
	return inv, token, nil
}

// storeInvitation stores inv for ttl in its user's index, which then lives at least as long.
func (s *core) storeInvitation(ctx context.Context, inv Invitation, ttl time.Duration) error {
	// The invitation and its place in the user's indexes are one write: the user's deletion finds every
	// invitation that exists, and a phone's invitations count in an index of their own, capped in that same
	// write, so two phones asking at once cannot both pass a count made before either wrote.
	also := store.Effects{AddTo: []string{userIndex(inv.Email)}, IndexTTL: ttl}
	if inv.InvitedBy != "" {
		also.AddTo = append(also.AddTo, phoneInvitationIndex(inv.Email))
		also.Caps = []int{0, MaxDeviceInvitations}
	}
	err := s.invitations.CreateWith(ctx, inv.ID, inv, ttl, also)
	if errors.Is(err, store.ErrIndexFull) {
		return newErr(ErrRateLimited, "%d invitations for a new phone are open already; use one, or wait until they expire (at most %s)", MaxDeviceInvitations, DeviceInvitationTTL)
	}
	if err != nil {
		return internal("create invitation", err)
	}
	return nil
}

// DeviceInvitationTTL is how long an invitation a phone makes for its user's next phone can be used, and
// MaxDeviceInvitations how many such invitations of one user may be open at once.
const (
	DeviceInvitationTTL  = 15 * time.Minute
	MaxDeviceInvitations = 3
)

// InviteNext makes a one-time invitation, valid DeviceInvitationTTL, for the next phone of device d's user:
// the phone enrolled with it records d as the device that vouched for it (Device.InvitedBy). A suspended
// user's phones cannot (ErrForbidden); with MaxDeviceInvitations open already, ErrRateLimited.
func (s *Devices) InviteNext(ctx context.Context, d Device) (Invitation, string, error) {
	u, err := s.svc.Users.Get(ctx, d.Email)
	if err != nil {
		return Invitation{}, "", err
	}
	if u.Status != UserActive {
		return Invitation{}, "", newErr(ErrForbidden, "this account is suspended")
	}
	// Only open invitations count against the cap: listing sweeps the ids of those used or gone out of the
	// index, and those past their end (by the service's clock) are taken out here.
	idx := phoneInvitationIndex(d.Email)
	open, err := s.invitations.ListIndex(ctx, idx)
	if err != nil {
		return Invitation{}, "", internal("list invitations", err)
	}
	for _, inv := range open {
		if !s.now().Before(inv.ExpiresAt) {
			if err := s.invitations.RemoveFromIndex(ctx, idx, inv.ID); err != nil {
				return Invitation{}, "", internal("sweep invitations", err)
			}
		}
	}
	return s.createInvitation(ctx, d.Email, d.ID, DeviceInvitationTTL)
}

// Invitation returns the live invitation of token.
func (s *Devices) Invitation(ctx context.Context, token string) (Invitation, error) {
	if token == "" || len(token) > 200 {
		return Invitation{}, newErr(ErrNotFound, "invitation not found, used or expired")
	}
	inv, err := s.invitations.Get(ctx, invitationID(token))
	if errors.Is(err, store.ErrNotFound) || (err == nil && !s.now().Before(inv.ExpiresAt)) {
		return Invitation{}, newErr(ErrNotFound, "invitation not found, used or expired")
	}
	return inv, internal("get invitation", err)
}

// ProofRequest is what a device request offers to be authenticated: the Device-Proof header and the parts of
// the HTTP request the proof covers.
type ProofRequest struct {
	Proof  string
	Method string
	URL    string // absolute URL without query, as the server's public base URL spells it
	Body   []byte
	// Prefetch, when set, is a read for the request the proof authenticates, sent in the same round trip as
	// the claim of the proof's one-time id, once the proof has verified (see Logins.PrefetchNumber). Its
	// result counts only when the claim succeeds: a replayed proof reads nothing it may use.
	Prefetch Prefetch
}

// Prefetch is a read queued beside a device proof's one-time id claim (ProofRequest.Prefetch). Only this
// package makes one.
type Prefetch interface {
	// queue queues the read in b for the request of device d, whose proof has verified.
	queue(b *store.Batch, d Device)
}

// Authenticate verifies a proof made with an enrolled device's key, consumes its one-time id, and
// returns that device. A removed device is refused (ErrUnknownDevice).
func (s *Devices) Authenticate(ctx context.Context, pr ProofRequest) (Device, error) {
	if pr.Proof == "" {
		return Device{}, newErr(ErrInvalidProof, "the Device-Proof header is missing")
	}
	u, err := deviceproof.Parse(pr.Proof)
	if err != nil || !plausibleID(u.KeyID) || u.JWK != nil {
		return Device{}, newErr(ErrInvalidProof, "the device proof is malformed")
	}
	d, err := s.devices.Get(ctx, u.KeyID)
	if errors.Is(err, store.ErrNotFound) {
		return Device{}, newErr(ErrUnknownDevice, "this device is not enrolled or was removed")
	}
	if err != nil {
		return Device{}, internal("get device", err)
	}
	pub, err := deviceproof.ParsePublicKey(d.PublicKey)
	if err != nil {
		return Device{}, internal("parse device key", err)
	}
	claims, err := u.Verify(pub, deviceproof.Expect{Method: pr.Method, URL: pr.URL, Body: pr.Body, Now: s.now(), MaxSkew: ProofMaxSkew})
	if err != nil {
		return Device{}, &Error{Code: ErrInvalidProof.Code, Message: "the device proof does not verify", Err: err}
	}
	var prefetch func(*store.Batch)
	if pr.Prefetch != nil {
		prefetch = func(b *store.Batch) { pr.Prefetch.queue(b, d) }
	}
	if err := s.claimJTI(ctx, d.KeyThumbprint, claims.ID, prefetch); err != nil {
		return Device{}, err
	}
	now := s.now()
	if d.LastSeenAt == nil || now.Sub(*d.LastSeenAt) > time.Minute {
		// A failed write is the request's failure: carrying on would serve it with a zero Device.
		// From the record just read: one round trip, unless the device changed since (then one more).
		seen, err := s.devices.Change(ctx, d.ID, &d, func(cur Device) (Device, error) { cur.LastSeenAt = &now; return cur, nil }, store.Effects{})
		if errors.Is(err, store.ErrNotFound) {
			return Device{}, newErr(ErrUnknownDevice, "this device is not enrolled or was removed")
		}
		if err != nil {
			return Device{}, internal("record device last seen", err)
		}
		d = seen
	}
	return d, nil
}

// claimJTI claims a device proof's one-time id, with then, when also is set, the reads it queues in the same
// round trip: the server runs them after the claim, and the caller uses them only if the claim succeeded.
func (s *core) claimJTI(ctx context.Context, thumbprint, jti string, also func(*store.Batch)) error {
	if jti == "" || len(jti) > 128 {
		return newErr(ErrInvalidProof, "the device proof has no valid jti")
	}
	if also == nil {
		return claimed(s.st.Claim(ctx, proofJTIKey(thumbprint, jti), proofJTITTL))
	}
	b := s.st.Batch(ctx)
	claim := s.st.ClaimIn(b, proofJTIKey(thumbprint, jti), proofJTITTL)
	also(b)
	b.Run()
	return claimed(claim.Get())
}

// proofJTITTL is how long a device proof's one-time id stays claimed: longer than the proof is accepted.
const proofJTITTL = 2*ProofMaxSkew + time.Minute

// claimed turns the claim of a proof's one-time id into the request's error.
func claimed(ok bool, err error) error {
	if err != nil {
		return internal("claim proof id", err)
	}
	if !ok {
		return newErr(ErrProofReplayed, "this device proof was already used")
	}
	return nil
}

// EnrollRequest is what a phone sends to enroll: a name, optional FCM token and platform.
type EnrollRequest struct {
	Name     string
	FCMToken string
	Platform string

	invitedBy string // the device whose invitation is being used, if any
}

func (r EnrollRequest) validate() error {
	if len(r.Name) > maxNameLen || len(r.Platform) > 40 {
		return newErr(ErrInvalid, "name or platform is too long")
	}
	if err := checkText("name", r.Name); err != nil {
		return err
	}
	if err := checkText("platform", r.Platform); err != nil {
		return err
	}
	if len(r.FCMToken) > 4096 {
		return newErr(ErrInvalid, "fcm_token is too long")
	}
	return nil
}

// verifyEnrollmentProof checks a proof signed by the key being enrolled (the JWK rides in the proof header)
// and returns that key as stored JWK JSON plus its thumbprint.
func (s *core) verifyEnrollmentProof(ctx context.Context, pr ProofRequest) (string, string, error) {
	if pr.Proof == "" {
		return "", "", newErr(ErrInvalidProof, "the Device-Proof header is missing")
	}
	u, err := deviceproof.Parse(pr.Proof)
	if err != nil || u.JWK == nil {
		return "", "", newErr(ErrInvalidProof, "an enrollment proof must carry the new public key (jwk)")
	}
	claims, err := u.Verify(u.JWK, deviceproof.Expect{Method: pr.Method, URL: pr.URL, Body: pr.Body, Now: s.now(), MaxSkew: ProofMaxSkew})
	if err != nil {
		return "", "", &Error{Code: ErrInvalidProof.Code, Message: "the device proof does not verify", Err: err}
	}
	thumb := deviceproof.Thumbprint(u.JWK)
	if err := s.claimJTI(ctx, thumb, claims.ID, nil); err != nil {
		return "", "", err
	}
	jwk, err := deviceproof.MarshalPublicKey(u.JWK)
	if err != nil {
		return "", "", internal("marshal device key", err)
	}
	return jwk, thumb, nil
}

// EnrollByInvitation enrolls the key that signed pr for the invitation's user, consuming the invitation.
// The proof is checked before the invitation is used, so a bad proof does not burn it.
func (s *Devices) EnrollByInvitation(ctx context.Context, pr ProofRequest, token string, r EnrollRequest) (Device, error) {
	if err := r.validate(); err != nil {
		return Device{}, err
	}
	if token == "" || len(token) > 200 {
		return Device{}, newErr(ErrInvitation, "the invitation token is missing or malformed")
	}
	jwk, thumb, err := s.verifyEnrollmentProof(ctx, pr)
	if err != nil {
		return Device{}, err
	}
	inv, err := s.invitations.Take(ctx, invitationID(token))
	if errors.Is(err, store.ErrNotFound) || (err == nil && !s.now().Before(inv.ExpiresAt)) {
		return Device{}, newErr(ErrInvitation, "this invitation is unknown, already used or expired")
	}
	if err != nil {
		return Device{}, internal("take invitation", err)
	}
	// The invitation made the user: one deleted since had its invitations withdrawn, and one taken while the
	// user was being deleted does not bring the user back (addDevice without creating).
	r.invitedBy = inv.InvitedBy
	d, err := s.addDevice(ctx, inv.Email, jwk, thumb, r, false)
	if errors.Is(err, errUserGone) {
		return Device{}, newErr(ErrInvitation, "this invitation was withdrawn")
	}
	if err != nil {
		// No device was added: give the invitation back for the rest of its life.
		if left := inv.ExpiresAt.Sub(s.now()); left > 0 {
			if rerr := s.storeInvitation(ctx, inv, left); rerr != nil {
				s.log.Warn("restore invitation after a failed enrollment", "email", inv.Email, "err", rerr)
			}
		}
		return Device{}, err
	}
	return d, nil
}

// errUserGone: the user a device was being added for does not exist (or was deleted meanwhile).
var errUserGone = errors.New("authn: user deleted")

// addDevice enrolls a device for email, creating the user when create is set (self-service) and otherwise
// requiring it to exist (errUserGone). A user deleted while the device was being added takes the device
// along: the user is read again once the device exists, and DeleteUser removes devices after the user.
func (s *core) addDevice(ctx context.Context, email, jwk, thumb string, r EnrollRequest, create bool) (Device, error) {
	if !s.domainAllowed(email) {
		return Device{}, newErr(ErrEmailNotAllowed, "%s is not in an allowed domain", email)
	}
	var u User
	var err error
	if create {
		u, err = s.ensureUser(ctx, email)
	} else if u, err = s.svc.Users.Get(ctx, email); errors.Is(err, ErrNotFound) {
		err = errUserGone
	}
	if err != nil {
		return Device{}, err
	}
	if u.Status != UserActive {
		return Device{}, newErr(ErrForbidden, "this account is suspended")
	}
	ok, err := s.st.SetIfAbsent(ctx, "device-key:"+thumb, email, 0)
	if err != nil {
		return Device{}, internal("claim device key", err)
	}
	if !ok {
		return Device{}, newErr(ErrConflict, "this device key is already enrolled")
	}
	now := s.now()
	name := strings.TrimSpace(r.Name)
	if name == "" {
		name = "Phone"
	}
	d := Device{
		ID:            "dev_" + s.randomID(12),
		Email:         email,
		Name:          name,
		Platform:      strings.TrimSpace(r.Platform),
		PublicKey:     jwk,
		KeyThumbprint: thumb,
		FCMToken:      r.FCMToken,
		PushStatus:    PushNone,
		CreatedAt:     now,
		LastSeenAt:    &now,
		InvitedBy:     r.invitedBy,
	}
	if r.FCMToken != "" {
		d.PushStatus = PushOK
		d.PushTokenUpdatedAt = &now
	}
	var secret string
	if !s.cfg.DisableOfflineCodes {
		if secret, d.OTP, err = s.newOfflineSecret(d.ID); err != nil {
			return Device{}, err
		}
	}
	if err := s.devices.Create(ctx, d.ID, d, 0, userIndex(email)); err != nil {
		return Device{}, internal("create device", err)
	}
	if _, err := s.svc.Users.Get(ctx, email); errors.Is(err, ErrNotFound) {
		if rerr := s.svc.Devices.Remove(ctx, email, d.ID); rerr != nil && !errors.Is(rerr, ErrNotFound) {
			s.log.Warn("remove the device of a user deleted meanwhile", "device", d.ID, "err", rerr)
		}
		return Device{}, errUserGone
	} else if err != nil {
		return Device{}, err
	}
	s.log.Info("device enrolled", "email", email, "device", d.ID, "platform", d.Platform)
	s.announceDevice(d)
	d.OfflineSecret = secret
	return d, nil
}

// List returns the devices enrolled for email, oldest first.
func (s *Devices) List(ctx context.Context, email string) ([]Device, error) {
	ds, err := s.devices.ListIndex(ctx, userIndex(strings.ToLower(email)))
	if err != nil {
		return nil, internal("list devices", err)
	}
	sortDevices(ds)
	return ds, nil
}

// sortDevices orders ds oldest first.
func sortDevices(ds []Device) {
	sortBy(ds, func(d Device) string { return d.CreatedAt.Format(time.RFC3339Nano) + d.ID })
}

// Get returns the device id of the user email.
func (s *Devices) Get(ctx context.Context, email, id string) (Device, error) {
	if !plausibleID(id) {
		return Device{}, newErr(ErrNotFound, "device not found")
	}
	d, err := s.devices.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && d.Email != strings.ToLower(email)) {
		return Device{}, newErr(ErrNotFound, "device not found")
	}
	return d, internal("get device", err)
}

// Rename changes the name of a device of email.
func (s *Devices) Rename(ctx context.Context, email, id, name string) (Device, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > maxNameLen {
		return Device{}, newErr(ErrInvalid, "name must be 1 to %d characters", maxNameLen)
	}
	if err := checkText("name", name); err != nil {
		return Device{}, err
	}
	return s.updateDevice(ctx, email, id, func(d Device) Device { d.Name = name; return d })
}

// UpdatePushToken replaces the FCM token of a device (empty: no pushes, the device pulls). Besides enrollment
// this is the only way a device's token changes.
func (s *Devices) UpdatePushToken(ctx context.Context, email, id, token string) (Device, error) {
	token = strings.TrimSpace(token)
	if len(token) > 4096 {
		return Device{}, newErr(ErrInvalid, "fcm_token is longer than 4096 characters")
	}
	now := s.now()
	status := PushOK
	if token == "" {
		status = PushNone
	}
	return s.updateDevice(ctx, email, id, func(d Device) Device {
		d.FCMToken, d.PushStatus, d.PushTokenUpdatedAt = token, status, &now
		return d
	})
}

func (s *core) updateDevice(ctx context.Context, email, id string, change func(Device) Device) (Device, error) {
	if !plausibleID(id) {
		return Device{}, newErr(ErrNotFound, "device not found")
	}
	d, err := s.devices.Update(ctx, id, func(cur Device) (Device, error) {
		if cur.Email != strings.ToLower(email) {
			return cur, newErr(ErrNotFound, "device not found")
		}
		return change(cur), nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return Device{}, newErr(ErrNotFound, "device not found")
	}
	return d, internal("update device", err)
}

// markPushDead records that FCM refused the device's token (unless it was replaced meanwhile).
func (s *core) markPushDead(ctx context.Context, id, token string) {
	_, err := s.devices.Update(ctx, id, func(cur Device) (Device, error) {
		if cur.FCMToken == token {
			cur.PushStatus = PushDead
		}
		return cur, nil
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Warn("mark push token dead", "device", id, "err", err)
	}
}

// Remove revokes a device of email: its signatures are refused from the next request on.
func (s *Devices) Remove(ctx context.Context, email, id string) error {
	d, err := s.svc.Devices.Get(ctx, email, id)
	if err != nil {
		return err
	}
	if _, err := s.devices.Take(ctx, id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return newErr(ErrNotFound, "device not found")
		}
		return internal("delete device", err)
	}
	if err := s.devices.RemoveFromIndex(ctx, userIndex(d.Email), id); err != nil {
		s.log.Warn("unindex device", "device", id, "err", err)
	}
	if _, err := s.st.DeleteValueIf(ctx, "device-key:"+d.KeyThumbprint, d.Email); err != nil {
		s.log.Warn("release device key", "device", id, "err", err)
	}
	// A browser signed in by this phone's approval (perhaps by whoever has the phone now) is signed out.
	ended, err := s.endSessionsWhere(ctx, d.Email, func(sess Session) bool { return sess.Device == id })
	if err != nil {
		return err
	}
	s.log.Info("device removed", "email", d.Email, "device", id, "sessions_ended", ended)
	return nil
}

// announceDevice mails the account's address that a device was added, so a stranger's enrollment is noticed.
func (s *core) announceDevice(d Device) {
	how := ""
	if d.InvitedBy != "" {
		name := "(since removed)"
		if by, err := s.devices.Get(s.bgCtx, d.InvitedBy); err == nil {
			name = fmt.Sprintf("%q", by.Name)
		}
		how = fmt.Sprintf(" It was added with an invitation made on your phone %s (%s).", name, d.InvitedBy)
	}
	body := fmt.Sprintf("A new device, %q, was added to your Passport account %s at %s UTC.%s\n\nIt can now approve sign-ins for you. If this was not you, tell your administrator at once: they can remove the device.\n",
		d.Name, d.Email, d.CreatedAt.UTC().Format("2006-01-02 15:04"), how)
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		ctx, cancel := context.WithTimeout(s.bgCtx, 30*time.Second)
		defer cancel()
		if err := s.mailer.Send(ctx, d.Email, "New device added to your Passport account", body); err != nil {
			s.log.Warn("mail new-device notice", "email", d.Email, "err", err)
		}
	}()
}

// RemoveAll revokes every device of email and returns how many there were.
func (s *Devices) RemoveAll(ctx context.Context, email string) (int, error) {
	devs, err := s.svc.Devices.List(ctx, email)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, d := range devs {
		switch err := s.svc.Devices.Remove(ctx, email, d.ID); {
		case err == nil:
			n++
		case !errors.Is(err, ErrNotFound): // already gone is fine
			return n, err
		}
	}
	return n, nil
}
