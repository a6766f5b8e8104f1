package sso

import (
	"context"
	"errors"
	"time"

	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/saml"
	"github.com/winkk/passport/saml/rsasigner"
)

// keyState is the key ring in use and the saml.IdentityProvider that signs with its current key.
type keyState struct {
	ring *authn.KeyRing
	idp  *saml.IdentityProvider
}

func (p *IdP) newKeyState(ring *authn.KeyRing) *keyState {
	return &keyState{ring: ring, idp: &saml.IdentityProvider{
		EntityID:          p.cfg.EntityID,
		Key:               ring.Current.Key,
		Signer:            rsasigner.New(ring.Current.Key), // OpenSSL when it loads: about three times faster
		Certificate:       ring.Current.Certificate,
		ExtraCertificates: ring.Published(p.cfg.Clock()),
		Clock:             p.cfg.Clock,
		AssertionLifetime: p.cfg.AssertionLifetime,
		ClockSkew:         p.cfg.ClockSkew,
	}}
}

// saml is the protocol IdP signing now.
func (p *IdP) saml() *saml.IdentityProvider { return p.keys.Load().idp }

// Ring is the key ring in use.
func (p *IdP) Ring() *authn.KeyRing { return p.keys.Load().ring }

// StaticKey reports whether the signing key came from files (no rollover through Passport).
func (p *IdP) StaticKey() bool { return p.cfg.StaticKey }

// ErrStaticKey refuses a rollover of a key loaded from files.
var ErrStaticKey = &authn.Error{Code: "static_key", Message: "The signing key is loaded from files (PASSPORT_SIGNING_KEY_FILE): replace the files to roll it over."}

// StageKey creates the next signing key and publishes its certificate beside the current one.
func (p *IdP) StageKey(ctx context.Context) (*authn.KeyRing, error) {
	if p.cfg.StaticKey {
		return nil, ErrStaticKey
	}
	r, err := p.svc.Keys.Stage(ctx, p.cfg.EntityID)
	if err != nil {
		return nil, err
	}
	p.keys.Store(p.newKeyState(r))
	return r, nil
}

// ActivateKey signs with the staged key from now on, publishing the old certificate for grace.
func (p *IdP) ActivateKey(ctx context.Context, grace time.Duration) (*authn.KeyRing, error) {
	if p.cfg.StaticKey {
		return nil, ErrStaticKey
	}
	r, err := p.svc.Keys.Activate(ctx, grace)
	if err != nil {
		return nil, err
	}
	p.keys.Store(p.newKeyState(r))
	return r, nil
}

// reloadKeys reads the key ring from the store (after a rollover by any replica). It never creates keys: a
// ring gone from the store (a Redis restarted without persistence, evicted or failed over empty) leaves the
// IdP signing with the keys it holds, loudly, rather than with new ones no SP trusts.
func (p *IdP) reloadKeys(ctx context.Context) error {
	ring, err := p.svc.Keys.Load(ctx)
	if errors.Is(err, authn.ErrNoKeyRing) {
		p.log.Error("the signing keys are gone from the store; still signing with the keys loaded before. Restore the store's data: a server started on it now would create new keys that no SP trusts")
		return nil
	}
	if err != nil {
		return err
	}
	p.keys.Store(p.newKeyState(ring))
	return nil
}

// noteStaticKey tells the store, now and every minute until Close, that this server signs with a key from
// files, so that the keys command refuses to roll over keys nobody uses.
func (p *IdP) noteStaticKey() {
	note := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := p.svc.Keys.NoteStatic(ctx); err != nil {
			p.log.Warn("note the static signing key in the store", "err", err)
		}
	}
	note()
	p.bg.Go(func() {
		tick := time.NewTicker(time.Minute)
		defer tick.Stop()
		for {
			select {
			case <-p.closing:
				return
			case <-tick.C:
				note()
			}
		}
	})
}

// keysResubscribeEvery is how soon an IdP whose watch of key changes failed tries again.
const keysResubscribeEvery = 5 * time.Second

// followKeys reloads the key ring when any replica announces a change, and every minute in case an
// announcement was missed, until Close. A watch that fails (the store briefly out of reach) is tried again;
// the minute reload runs regardless.
func (p *IdP) followKeys() {
	ctx, cancel := context.WithCancel(context.Background())
	var w authn.Watch
	watch := func() bool {
		var err error
		if w, err = p.svc.Keys.Watch(ctx); err != nil {
			if ctx.Err() == nil {
				p.log.Warn("watch key changes; trying again", "err", err)
			}
			return false
		}
		return true
	}
	watch()
	p.bg.Go(func() {
		defer cancel()
		defer func() {
			if w.Stop != nil {
				w.Stop()
			}
		}()
		tick := time.NewTicker(time.Minute)
		defer tick.Stop()
		retry := time.NewTicker(keysResubscribeEvery)
		defer retry.Stop()
		for {
			select {
			case <-p.closing:
				return
			case _, ok := <-w.C:
				if !ok { // the store closed: nothing more to follow
					return
				}
			case <-tick.C:
			case <-retry.C:
				if w.C != nil || !watch() {
					continue
				}
				// Watching at last: catch up with what was announced meanwhile.
			}
			if err := p.reloadKeys(ctx); err != nil && ctx.Err() == nil {
				p.log.Warn("reload signing keys", "err", err)
			}
		}
	})
}
