// Package rsasigner signs with an RSA key through OpenSSL's libcrypto when it can, and through Go's
// crypto/rsa otherwise. RSA-2048 PKCS#1 v1.5 signing, what every SAML Response costs, is about three times
// faster in OpenSSL 3 than in Go (go test -bench . says how much on a given machine).
//
// OpenSSL is reached through github.com/golang-fips/openssl/v2, which loads libcrypto.so.3 with dlopen at
// run time: a binary built with cgo on Linux needs neither OpenSSL headers to build nor libcrypto to run,
// and falls back to Go where libcrypto.so.3 does not load. A build without cgo (CGO_ENABLED=0, as static
// images are built, or a machine without a C compiler) always uses Go. Backend says which one a process
// uses, and why.
package rsasigner

// Backend names.
const (
	BackendOpenSSL = "openssl"
	BackendGo      = "go"
)
