//go:build asan && cgo && linux

package rsasigner

import (
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/golang-fips/openssl/v2"
)

// TestNoLeakUnderLSan, in a build with AddressSanitizer (go test -asan
// ./saml/rsasigner, which needs GCC 7 or Clang 9 or later), makes and drops many
// signers, each signing a few digests, waits until every EVP key has been
// freed (as TestEVPKeyFreed does for one), and asks LeakSanitizer for
// memory allocated in C (OpenSSL's keys, contexts, signatures) that nothing
// points to any more. LeakSanitizer ends the process when it finds some: a
// signer whose EVP key is never freed shows as about 5 KB leaked per key.
func TestNoLeakUnderLSan(t *testing.T) {
	key := mustKey(t)
	var freed sync.WaitGroup
	for range 200 {
		freed.Add(1)
		func() {
			s := New(key)
			mustExpectedBackend(t, s)
			for range 5 {
				mustSignAsGo(t, s, key, randomDigest(t))
			}
			runtime.AddCleanup(s.(*opensslSigner).priv, func(wg *sync.WaitGroup) { wg.Done() }, &freed)
		}()
	}
	done := make(chan struct{})
	go func() { freed.Wait(); close(done) }()
	deadline := time.After(60 * time.Second)
	for waiting := true; waiting; {
		runtime.GC()
		select {
		case <-done:
			waiting = false
		case <-deadline:
			t.Fatal("the EVP keys of dropped signers were not all freed")
		case <-time.After(10 * time.Millisecond):
		}
	}
	openssl.CheckLeaks()
	t.Log("LeakSanitizer found no leak")
}
