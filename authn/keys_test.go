package authn_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/push"
	"github.com/winkk/passport/store"
	"github.com/winkk/passport/store/storetest"
)

func serviceOn(st *store.Store, kek []byte) *authn.Service {
	log := slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))
	return authn.New(st, push.LogSender{Logger: log}, push.LogMailer{Logger: log}, authn.Config{Logger: log, KeyEncryptionKey: kek})
}

// Replicas starting at once agree on one signing key.
func TestKeyRingFirstStartRace(t *testing.T) {
	t.Parallel()
	st := storetest.Open(t)
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			svc := serviceOn(st, nil)
			defer svc.Close()
			r, err := svc.Keys.Ring(context.Background(), "IdP")
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			seen[string(r.Current.CertificatePEM)] = true
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(seen) != 1 {
		t.Fatalf("%d different keys, want 1", len(seen))
	}
}

func TestKeyEncryptionAtRest(t *testing.T) {
	t.Parallel()
	st := storetest.Open(t)
	kek := make([]byte, 32)
	rand.Read(kek)
	sealed := serviceOn(st, kek)
	defer sealed.Close()
	r, err := sealed.Keys.Ring(context.Background(), "IdP")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sealed.Keys.Stage(context.Background(), "IdP"); err != nil {
		t.Fatal(err)
	}
	// The store holds no private key in clear.
	stored, err := store.NewTable[json.RawMessage](st, "idp").Get(context.Background(), "keyring")
	if err != nil {
		t.Fatal(err)
	}
	raw := []byte(stored)
	if !bytes.Contains(raw, []byte("key_seal")) {
		t.Errorf("no sealed key in the stored ring: %s", raw)
	}
	if bytes.Contains(raw, []byte("PRIVATE KEY")) {
		t.Error("a private key is stored in clear although a key-encryption key is set")
	}
	// The same key-encryption key opens it again; another one or none does not.
	again := serviceOn(st, kek)
	defer again.Close()
	r2, err := again.Keys.Ring(context.Background(), "IdP")
	if err != nil || !r2.Current.Key.Equal(r.Current.Key) {
		t.Fatalf("reopen with the same key-encryption key: %v", err)
	}
	other := make([]byte, 32)
	rand.Read(other)
	for name, k := range map[string][]byte{"another key": other, "no key": nil} {
		svc := serviceOn(st, k)
		if _, err := svc.Keys.Ring(context.Background(), "IdP"); err == nil {
			t.Errorf("%s opened the sealed signing key", name)
		}
		svc.Close()
	}
}

func TestCertificateWarning(t *testing.T) {
	t.Parallel()
	k, err := authn.GenerateSigningKey("IdP", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		at   time.Time
		warn bool
	}{
		{time.Now(), false},
		{k.Certificate.NotAfter.Add(-10 * 24 * time.Hour), true},
		{k.Certificate.NotAfter.Add(time.Hour), true},
	} {
		if got := authn.CertificateWarning(k.Certificate, tc.at) != ""; got != tc.warn {
			t.Errorf("at %s: warning %v, want %v", tc.at, got, tc.warn)
		}
	}
}
