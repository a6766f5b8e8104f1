package saml

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"strings"
)

// PersistentID returns the persistent NameID (saml-core §8.3.7) of the user
// with address email at application appID: base64url (unpadded) of
// HMAC-SHA256 under secret of a length-prefixed encoding of a domain label,
// appID and the lowercased, trimmed email. It is stable for a given secret,
// differs between applications (so SPs cannot correlate users), and reveals
// nothing about the email without the secret. The result is 43 characters,
// well under the 256 the format allows. secret should be at least 32 random
// bytes and must never change, or every SP sees new users.
func PersistentID(secret []byte, appID, email string) string {
	m := hmac.New(sha256.New, secret)
	for _, part := range []string{"passport persistent nameid v1", appID, strings.ToLower(strings.TrimSpace(email))} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		m.Write(n[:])
		m.Write([]byte(part))
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}
