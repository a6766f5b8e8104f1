package authn

import (
	"context"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"io"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"

	"github.com/winkk/passport/store"
)

// Offline codes (RFC 6238 TOTP): each phone gets a secret at enrollment and shows a code that changes every
// OfflineCodePeriod; typed into the waiting login page, a correct code completes that login as an approval
// would. The parameters are fixed for every device.
const (
	OfflineCodeAlgorithm = "SHA1"
	OfflineCodeDigits    = 6
	OfflineCodePeriod    = 30 * time.Second
	// OfflineCodeSkew is how many steps either side of the server's clock a code may be from.
	OfflineCodeSkew = 1
	// offlineSecretBytes is the length of a secret (RFC 4226 §4 recommends 160 bits).
	offlineSecretBytes = 20
)

// storedSecret is a device's offline-code secret as stored: sealed with the key-encryption key when one is
// configured (bound to the device ID), in clear otherwise.
type storedSecret struct {
	Clear string `json:"clear,omitempty"` // base32
	Seal  string `json:"seal,omitempty"`  // base64 of nonce||AES-256-GCM(base32 secret)
}

var otpEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// OfflineCodes reports whether offline codes are on (Config.DisableOfflineCodes).
func (s *Logins) OfflineCodes() bool { return !s.cfg.DisableOfflineCodes }

// newOfflineSecret draws a secret for device id: the clear base32 secret for the enrollment answer, and how
// it is stored.
func (s *core) newOfflineSecret(id string) (string, *storedSecret, error) {
	raw := make([]byte, offlineSecretBytes)
	if _, err := io.ReadFull(s.cfg.Rand, raw); err != nil {
		return "", nil, internal("draw offline-code secret", err)
	}
	secret := otpEncoding.EncodeToString(raw)
	if len(s.cfg.KeyEncryptionKey) == 0 {
		return secret, &storedSecret{Clear: secret}, nil
	}
	sealed, err := s.sealBytes([]byte(secret), []byte("offline-code "+id))
	if err != nil {
		return "", nil, internal("seal offline-code secret", err)
	}
	return secret, &storedSecret{Seal: sealed}, nil
}

// offlineSecret opens device d's secret ("" when it has none).
func (s *core) offlineSecret(d Device) (string, error) {
	switch {
	case d.OTP == nil:
		return "", nil
	case d.OTP.Seal != "":
		if len(s.cfg.KeyEncryptionKey) == 0 {
			return "", errors.New("authn: the offline-code secret is sealed: configure the key-encryption key")
		}
		b, err := s.openSealed(d.OTP.Seal, []byte("offline-code "+d.ID))
		return string(b), err
	default:
		return d.OTP.Clear, nil
	}
}

// OfflineCode returns the code of secret (base32) at t: what the phone shows (passport-device code).
func OfflineCode(secret string, t time.Time) (string, error) {
	return offlineCodeAt(secret, uint64(t.Unix())/uint64(OfflineCodePeriod/time.Second))
}

func offlineCodeAt(secret string, step uint64) (string, error) {
	return hotp.GenerateCodeCustom(secret, step, hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
}

// OfflineCodeURI is the otpauth:// URI of secret (the Key URI Format authenticator apps read) for email.
func OfflineCodeURI(secret, email string) string {
	return "otpauth://totp/Passport:" + strings.ReplaceAll(email, " ", "") + "?secret=" + secret +
		"&issuer=Passport&algorithm=" + OfflineCodeAlgorithm + "&digits=6&period=30"
}

// ApproveByCode completes waiting login l (as read through GetLogin, which proved the browser) with an offline
// code typed in its browser: a code of any active device of the login's user, within OfflineCodeSkew steps,
// approves that login exactly as the device's approval would (Login.Method is MethodOfflineCode, AnsweredBy
// the device whose code matched). A code is accepted once, across replicas.
//
// Wrong codes (and codes used before) count per user and client network (clientKey: the network that typed
// them) within Limits.CodeWindow; past Limits.CodeFailures from that network, or Limits.CodeFailuresPerUser
// from all, codes are refused with ErrCodeLocked saying until when. A login for an account that cannot be
// asked (Login.Decoy) refuses every code exactly as a wrong one. Offline codes turned off: ErrForbidden.
// A login no longer waiting is returned as it stands.
func (s *Logins) ApproveByCode(ctx context.Context, l Login, code, clientKey string) (Login, error) {
	if s.cfg.DisableOfflineCodes {
		return Login{}, newErr(ErrForbidden, "Codes from the app are turned off on this server. Approve the sign-in on your phone.")
	}
	now := s.now()
	if l.Current(now) != StatePending {
		return l, nil
	}
	code = strings.Join(strings.Fields(code), "")
	if len(code) != OfflineCodeDigits || strings.Trim(code, "0123456789") != "" {
		return Login{}, newErr(ErrCodeInvalid, "Enter the %d-digit code the Passport app shows.", OfflineCodeDigits)
	}
	// This try takes its place among the wrong ones before the code is looked at, so however many tries
	// arrive at once, no more than the limits are ever compared; a right code gives its place back.
	try, err := s.codeTry(ctx, l.Email, clientKey)
	if err != nil {
		return Login{}, err
	}
	d, step, err := s.matchCode(ctx, l, code, now)
	if err != nil {
		return Login{}, err
	}
	if d.ID == "" {
		return Login{}, try.failed()
	}
	first, err := s.st.Claim(ctx, offlineCodeUsedKey(l.Email, d.ID, step), (2*OfflineCodeSkew+1)*OfflineCodePeriod)
	if err != nil {
		return Login{}, internal("claim offline code", err)
	}
	if !first {
		s.log.Warn("offline code replayed", "login", l.ID, "email", l.Email, "device", d.ID)
		return Login{}, try.failed()
	}
	try.refund(ctx)
	answered := store.Effects{RemoveFrom: openIndexes(l), Publish: []store.Message{{Channel: UserChannel(l.Email), Payload: "changed"}}}
	next, err := s.transition(ctx, l.ID, &l, answered, func(cur Login, now time.Time) (Login, error) {
		if cur.Current(now) != StatePending || cur.Decoy || cur.Email != l.Email || cur.Number != l.Number {
			return cur, newErr(ErrChallengeClosed, "This sign-in is no longer waiting. Reload the page.")
		}
		cur.State, cur.Method, cur.AnsweredBy, cur.DecidedAt = StateApproved, MethodOfflineCode, d.ID, now
		return cur, nil
	})
	if err != nil {
		return Login{}, err
	}
	s.log.Info("login approved by offline code", "login", l.ID, "device", d.ID)
	return next, nil
}

// matchCode finds the active device of l's user whose code at a step within the skew is code; a zero Device
// when none is (always for a decoy).
func (s *core) matchCode(ctx context.Context, l Login, code string, now time.Time) (Device, uint64, error) {
	if l.Decoy || l.Email == "" {
		return Device{}, 0, nil
	}
	devs, err := s.svc.Devices.List(ctx, l.Email)
	if err != nil {
		return Device{}, 0, err
	}
	cur := uint64(now.Unix()) / uint64(OfflineCodePeriod/time.Second)
	for _, d := range devs {
		secret, err := s.offlineSecret(d)
		if err != nil {
			s.log.Warn("open offline-code secret", "device", d.ID, "err", err)
			continue
		}
		if secret == "" {
			continue
		}
		for step := cur - OfflineCodeSkew; step <= cur+OfflineCodeSkew; step++ {
			want, err := offlineCodeAt(secret, step)
			if err != nil {
				return Device{}, 0, internal("offline code", err)
			}
			if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
				return d, step, nil
			}
		}
	}
	return Device{}, 0, nil
}

// codeTry is one offline-code try counted up front against the limits of its client network and its user:
// the counts with it (byNet, byUser).
type codeTry struct {
	s             *core
	email, net    string
	byNet, byUser store.HitCount
}

// codeTry counts a try of an offline code for email from net, refusing it (ErrCodeLocked) when the tries
// before it reached a limit.
func (s *core) codeTry(ctx context.Context, email, net string) (*codeTry, error) {
	lim := s.cfg.Limits
	b := s.st.Batch(ctx)
	netHit, userHit := s.st.HitIn(b, codeFailKey(email, net), lim.CodeWindow), s.st.HitIn(b, codeFailKey(email, ""), lim.CodeWindow)
	b.Run()
	nh, err := netHit.Get()
	if err != nil {
		return nil, internal("count code tries", err)
	}
	uh, err := userHit.Get()
	if err != nil {
		return nil, internal("count code tries", err)
	}
	switch {
	case nh.Count > lim.CodeFailures:
		return nil, s.codeLockErr(nh.ResetIn)
	case uh.Count > lim.CodeFailuresPerUser:
		return nil, s.codeLockErr(uh.ResetIn)
	}
	return &codeTry{s: s, email: email, net: net, byNet: nh, byUser: uh}, nil
}

// refund gives back the place of a try whose code was right (a failure to do so is logged: it only makes the
// limit stricter for the rest of the window).
func (t *codeTry) refund(ctx context.Context) {
	for _, key := range []string{codeFailKey(t.email, t.net), codeFailKey(t.email, "")} {
		if err := t.s.st.Unhit(context.WithoutCancel(ctx), key); err != nil {
			t.s.log.Warn("refund an offline-code try", "email", t.email, "err", err)
		}
	}
}

func (s *core) codeLockErr(reset time.Duration) error {
	until := s.now().Add(reset).Add(time.Minute - 1).Truncate(time.Minute)
	return newErr(ErrCodeLocked, "Too many wrong codes. Codes are not accepted here until %s UTC; you can still approve on your phone.", until.Format("15:04"))
}

// failed says the try's code was wrong (or used before), or that codes are now locked: its place in the counts
// stays.
func (t *codeTry) failed() error {
	lim := t.s.cfg.Limits
	switch {
	case t.byNet.Count >= lim.CodeFailures:
		t.s.log.Warn("offline codes locked for a client network", "email", t.email, "network", t.net)
		return t.s.codeLockErr(t.byNet.ResetIn)
	case t.byUser.Count >= lim.CodeFailuresPerUser:
		t.s.log.Warn("offline codes locked for a user", "email", t.email)
		return t.s.codeLockErr(t.byUser.ResetIn)
	}
	return newErr(ErrCodeInvalid, "That code is not right, or was already used. Check the code in the Passport app and try again.")
}
