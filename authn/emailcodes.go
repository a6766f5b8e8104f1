package authn

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/winkk/passport/store"
)

// Mailer sends one plain-text mail. It must be safe for concurrent use.
type Mailer interface {
	Send(ctx context.Context, to, subject, body string) error
}

// Email-code rules.
const (
	EmailCodeTTL       = 10 * time.Minute // a code works this long
	EmailCodeMaxWrong  = 5                // wrong tries per address per EmailCodeWindow, then no code is accepted
	EmailCodeWindow    = time.Hour
	EmailCodeSendLimit = 5  // codes mailed per address per EmailCodeWindow
	EmailClientLimit   = 20 // codes requested, and codes tried, per client per EmailCodeWindow
)

func emailEnrollClientKey(key string) string {
	return "email-enroll-client:" + key
}
func (s *core) codeHash(code string) string {
	m := hmac.New(sha256.New, []byte("passport email code"))
	m.Write([]byte(code))
	return hex.EncodeToString(m.Sum(nil))
}

// RequestEmailCode mails a fresh six-digit code to email, voiding the one before. Sends are limited per address
// and per client; an address whose wrong tries are used up gets ErrCodeLocked until its hour is over.
func (s *Devices) RequestEmailCode(ctx context.Context, rawEmail, clientKey string) (time.Time, error) {
	email, err := NormalizeEmail(rawEmail)
	if err != nil {
		return time.Time{}, err
	}
	if !s.domainAllowed(email) {
		return time.Time{}, newErr(ErrEmailNotAllowed, "%s is not in a domain allowed to enroll", email)
	}
	if err := s.checkLocked(ctx, email); err != nil {
		return time.Time{}, err
	}
	for _, lim := range []struct {
		key   string
		limit int64
	}{{emailClientKey(clientKey), EmailClientLimit}, {emailSendKey(email), EmailCodeSendLimit}} {
		n, reset, err := s.st.Hit(ctx, lim.key, EmailCodeWindow)
		if err != nil {
			return time.Time{}, internal("rate limit", err)
		}
		if n > lim.limit {
			return time.Time{}, newErr(ErrRateLimited, "too many codes requested; try again in %s", roundUp(reset))
		}
	}
	n, err := rand.Int(s.cfg.Rand, big.NewInt(1_000_000))
	if err != nil {
		return time.Time{}, internal("draw code", err)
	}
	code := fmt.Sprintf("%06d", n.Int64())
	expires := s.now().Add(EmailCodeTTL)
	if err := s.st.SetValue(ctx, emailCodeKey(email), s.codeHash(code)+":"+strconv.FormatInt(expires.Unix(), 10), EmailCodeTTL); err != nil {
		return time.Time{}, internal("store code", err)
	}
	body := fmt.Sprintf("Your Passport enrollment code is %s\n\nEnter it in the Passport app to add this phone to %s.\nThe code expires in %d minutes. If you did not ask for it, ignore this mail: nobody can use your account without it.\n",
		code, email, int(EmailCodeTTL.Minutes()))
	if err := s.mailer.Send(ctx, email, "Your Passport code: "+code, body); err != nil {
		return time.Time{}, &Error{Code: ErrInternal.Code, Message: "the code could not be mailed; try again later", Err: err}
	}
	return expires, nil
}

func (s *core) checkLocked(ctx context.Context, email string) error {
	n, reset, err := s.st.Count(ctx, emailFailKey(email))
	if err != nil {
		return internal("count wrong codes", err)
	}
	if n >= EmailCodeMaxWrong {
		return newErr(ErrCodeLocked, "too many wrong codes for this address; try again in %s", roundUp(reset))
	}
	return nil
}

// EnrollByEmail enrolls the key that signed pr for email if code is the address's current code. The code is
// consumed atomically (two racing correct answers: one wins); wrong tries count per address, not per code,
// and each try takes its place in that count before the code is looked at, so however many tries arrive at
// once, no more than EmailCodeMaxWrong are ever compared. Tries are limited per client as well.
func (s *Devices) EnrollByEmail(ctx context.Context, pr ProofRequest, rawEmail, code, clientKey string, r EnrollRequest) (Device, error) {
	if err := r.validate(); err != nil {
		return Device{}, err
	}
	email, err := NormalizeEmail(rawEmail)
	if err != nil {
		return Device{}, err
	}
	if !s.domainAllowed(email) {
		return Device{}, newErr(ErrEmailNotAllowed, "%s is not in a domain allowed to enroll", email)
	}
	jwk, thumb, err := s.verifyEnrollmentProof(ctx, pr)
	if err != nil {
		return Device{}, err
	}
	n, reset, err := s.st.Hit(ctx, emailEnrollClientKey(clientKey), EmailCodeWindow)
	if err != nil {
		return Device{}, internal("rate limit", err)
	}
	if n > EmailClientLimit {
		return Device{}, newErr(ErrRateLimited, "too many codes tried from this network; try again in %s", roundUp(reset))
	}
	// Take this try's place among the address's wrong tries first; a right code gives it back.
	tries, reset, err := s.st.Hit(ctx, emailFailKey(email), EmailCodeWindow)
	if err != nil {
		return Device{}, internal("count code tries", err)
	}
	if tries > EmailCodeMaxWrong {
		return Device{}, newErr(ErrCodeLocked, "too many wrong codes for this address; try again in %s", roundUp(reset))
	}
	stored, err := s.st.GetValue(ctx, emailCodeKey(email))
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return Device{}, internal("load code", err)
	}
	hash, expiry, _ := strings.Cut(stored, ":")
	exp, _ := strconv.ParseInt(expiry, 10, 64)
	code = strings.TrimSpace(code)
	valid := stored != "" && len(code) == 6 && hmac.Equal([]byte(hash), []byte(s.codeHash(code))) && s.now().Unix() < exp
	if valid {
		// Consume exactly once: only the caller that deletes this very value wins.
		ok, err := s.st.DeleteValueIf(ctx, emailCodeKey(email), stored)
		if err != nil {
			return Device{}, internal("consume code", err)
		}
		valid = ok
	}
	if !valid {
		if tries >= EmailCodeMaxWrong {
			_ = s.st.DeleteValue(ctx, emailCodeKey(email))
			return Device{}, newErr(ErrCodeLocked, "too many wrong codes for this address; ask for a new code in an hour")
		}
		return Device{}, newErr(ErrCodeInvalid, "the code is wrong, used or expired")
	}
	if err := s.st.Unhit(ctx, emailFailKey(email)); err != nil {
		s.log.Warn("give back a right code's try", "email", email, "err", err)
	}
	d, err := s.addDevice(ctx, email, jwk, thumb, r, true)
	if errors.Is(err, errUserGone) {
		return Device{}, newErr(ErrConflict, "the account was deleted while this phone was being added; ask for a new code")
	}
	return d, err
}
