package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
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
var errNoChallenge = fmt.Errorf("no pending challenge on the phone")

// approve is everything the person does on the phone for one login: open the sign-in request waiting there and
// approve it with the number their browser shows. It is the one place that does so, so that it becomes one call
// when the device API approves by number.
//
// The run gives each user one login at a time, so the newest pending challenge is this login's; an older one can
// only be left by a login that failed half-way.
func (p *phone) approve(ctx context.Context, number int) error {
	list, err := p.device.ListChallenges(ctx)
	if err != nil {
		return err
	}
	var ch *deviceapi.Challenge
	for i, c := range list.Challenges {
		if c.State == deviceapi.StatePending && (ch == nil || c.CreatedAt.After(ch.CreatedAt)) {
			ch = &list.Challenges[i]
		}
	}
	if ch == nil {
		return errNoChallenge
	}
	ans, err := p.device.AnswerChallenge(ctx, ch.ID, deviceapi.AnswerRequest{Decision: deviceapi.DecisionApprove, Number: number})
	if err != nil {
		return err
	}
	if ans.State != deviceapi.StateApproved {
		return fmt.Errorf("the IdP answered the approval with state %q", ans.State)
	}
	return nil
}
