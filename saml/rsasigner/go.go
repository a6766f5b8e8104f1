//go:build !(cgo && linux)

package rsasigner

import (
	"crypto"
	"crypto/rsa"
)

// New returns key itself: this binary was built without cgo (or not for Linux), so OpenSSL cannot be
// loaded.
func New(key *rsa.PrivateKey) crypto.Signer { return key }

// Backend says which backend New uses in this process, and why: here always Go.
func Backend() string { return BackendGo + " (built without cgo)" }

// BackendOf returns the backend of a signer New returned: here always BackendGo.
func BackendOf(crypto.Signer) string { return BackendGo }
