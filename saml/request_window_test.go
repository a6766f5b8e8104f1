package saml

import (
	"testing"
	"time"
)

// A request ID remembered for RequestWindow outlives every IssueInstant ValidateAuthnRequest still accepts.
func TestRequestWindowCoversValidation(t *testing.T) {
	t.Parallel()
	for _, skew := range []time.Duration{0, 30 * time.Second, 10 * time.Minute} {
		idp := mustIdP(t)
		idp.ClockSkew = skew
		issued := idp.now()
		r := &AuthnRequest{ID: "_x", Version: "2.0", Issuer: "sp", IssueInstant: issued.Add(idp.clockSkew())}
		now := issued.Add(idp.RequestWindow() + time.Second)
		idp.Clock = func() time.Time { return now }
		if err := idp.ValidateAuthnRequest(r, RequestCheck{Audience: "sp"}); err == nil {
			t.Errorf("skew %s: a request is still valid when its ID is forgotten", skew)
		}
	}
}
