package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"

	"github.com/winkk/passport/api/deviceapi"
	"github.com/winkk/passport/authn/deviceproof"
)

// phone is a user's enrolled phone, in process: a P-256 key that signs every device API call (Device-Proof),
// as the phone app's key does. It has no FCM token: like the README's walk-through it pulls its challenges, so
// no push is sent. Safe for concurrent use.
type phone struct {
	device *deviceapi.Client
}

// enrollPhone makes a device key and enrolls it with an invitation token.
func enrollPhone(ctx context.Context, base string, hc *http.Client, token string) (*phone, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("device key: %w", err)
	}
	c := &deviceapi.Client{BaseURL: base, HTTP: hc, Signer: &deviceproof.Signer{Key: key}}
	res, err := c.EnrollByInvitation(ctx, deviceapi.EnrollByInvitationRequest{Token: token, Name: "passport-load phone", Platform: "cli"})
	if err != nil {
		return nil, fmt.Errorf("enroll device: %w", err)
	}
	c.Signer.KeyID = res.Device.ID
	return &phone{device: c}, nil
}

// errNoChallenge: the phone found no sign-in request waiting for it.
var errNoChallenge = errors.New("no sign-in request on the phone shows the browser's number")

// approve is everything the person does on the phone for one login: type the number their browser shows.
// The number selects the sign-in (approveByNumber), as the phone app does; none showing it is errNoChallenge.
func (p *phone) approve(ctx context.Context, number int) error {
	res, err := p.device.ApproveByNumber(ctx, number)
	var apiErr *deviceapi.APIError
	if errors.As(err, &apiErr) && apiErr.Code == deviceapi.CodeNoMatchingChallenge {
		return errNoChallenge
	}
	if err != nil {
		return err
	}
	if res.State != deviceapi.StateApproved {
		return fmt.Errorf("the IdP answered the approval with state %q", res.State)
	}
	return nil
}
