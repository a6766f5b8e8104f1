//go:build cgo && linux

package rsasigner

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMain lets TestFallback run this binary again with another library
// name.
func TestMain(m *testing.M) {
	if name := os.Getenv("RSASIGNER_TEST_LIBCRYPTO"); name != "" {
		libcrypto = name
	}
	os.Exit(m.Run())
}

// mustExpectedBackend fails unless s is backed by OpenSSL on a machine
// where libcrypto.so.3 loads. Where it does not, the test fails under
// CI=true and is skipped otherwise.
func mustExpectedBackend(tb testing.TB, s crypto.Signer) {
	tb.Helper()
	if err := load(); err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("OpenSSL is required in CI: %v", err)
		}
		tb.Skipf("OpenSSL not loaded (%v); the Go backend is tested by CGO_ENABLED=0 go test", err)
	}
	if BackendOf(s) != BackendOpenSSL || !strings.HasPrefix(Backend(), "openssl (OpenSSL 3.") {
		tb.Fatalf("backend %s, process backend %q; want OpenSSL 3", BackendOf(s), Backend())
	}
}

// TestFallback runs this test binary again with a library name that does
// not exist: New must then return the key itself, and Backend say why.
func TestFallback(t *testing.T) {
	t.Parallel()
	if os.Getenv("RSASIGNER_TEST_LIBCRYPTO") != "" {
		key := mustKey(t)
		s := New(key)
		if s != crypto.Signer(key) || BackendOf(s) != BackendGo {
			t.Fatalf("New returned a %s signer %T, want the key itself", BackendOf(s), s)
		}
		if b := Backend(); !strings.HasPrefix(b, "go (libcrypto.so.passport-missing: ") {
			t.Fatalf("Backend() = %q", b)
		}
		mustSignAsGo(t, s, key, randomDigest(t))
		t.Log("fell back to Go:", Backend())
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFallback$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "RSASIGNER_TEST_LIBCRYPTO=libcrypto.so.passport-missing")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "fell back to Go: go (libcrypto.so.passport-missing: ") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

// TestMultiPrimeKeyFallsBack checks that a key OpenSSL is not given (three
// primes) gets the Go backend, and still signs.
func TestMultiPrimeKeyFallsBack(t *testing.T) {
	t.Parallel()
	key, err := rsa.GenerateMultiPrimeKey(rand.Reader, 3, 2048) //lint:ignore SA1019 a three-prime key is the point
	if err != nil {
		t.Fatal(err)
	}
	s := New(key)
	if s != crypto.Signer(key) {
		t.Fatalf("a three-prime key got a %s signer", BackendOf(s))
	}
	mustSignAsGo(t, s, key, randomDigest(t))
}

// TestEVPKeyFreed checks that dropping an OpenSSL signer frees its EVP_PKEY.
// golang-fips/openssl frees it in a finalizer on the key object; a cleanup
// on the same object runs only once that finalizer has run and the object
// is unreachable again, so the cleanup is the signal that the key was freed.
func TestEVPKeyFreed(t *testing.T) {
	t.Parallel()
	key := mustKey(t)
	freed := make(chan struct{})
	func() {
		s := New(key)
		mustExpectedBackend(t, s)
		mustSignAsGo(t, s, key, randomDigest(t))
		runtime.AddCleanup(s.(*opensslSigner).priv, func(ch chan struct{}) { close(ch) }, freed)
	}()
	deadline := time.After(30 * time.Second)
	for {
		runtime.GC()
		select {
		case <-freed:
			return
		case <-deadline:
			t.Fatal("the EVP key of a dropped signer was not freed")
		case <-time.After(10 * time.Millisecond):
		}
	}
}
