package authn

import "strconv"

// The names of the store's indexes and keys, in one place. A normalized email holds no space and no colon
// that could be taken for a separator of what follows it; IDs are lower-case base32.

// userIndex indexes a user's devices, sessions and invitations (each table has its own).
func userIndex(email string) string { return "user:" + email }

// phoneInvitationIndex holds the open invitations a user's phones made (capped at MaxDeviceInvitations).
func phoneInvitationIndex(email string) string { return "phone-invitations:" + email }

// pendingIndex holds a user's open sign-ins; pendingNetIndex those of them started from one client network;
// numberIndex the one that shows a number (at most one: numbers are unique among a user's open sign-ins), or
// for answerRepeatWindow the one a phone approved by it.
func pendingIndex(email string) string         { return "pending:" + email }
func pendingNetIndex(email, net string) string { return "pending:" + email + " " + net }
func numberIndex(email string, number int) string {
	return "number:" + email + " " + strconv.Itoa(number)
}

// Limits on pushes (see Limits), by user and client network; an empty net names the user's ceiling.
func pauseKey(email, net string) string   { return "push-pause:" + email + " " + net }
func refusedKey(email, net string) string { return "push-refused:" + email + " " + net }
func hourKey(email, net string) string    { return "push-hour:{" + email + "} " + net } // one slot: HitAll

// Limits on clients, by network.
func parkKey(net string) string     { return "ratelimit:park:" + net }
func identifyKey(net string) string { return "ratelimit:identify:" + net }

// Wrong offline codes, by user and client network (an empty net names the user's ceiling).
func codeFailKey(email, net string) string { return "offline-code-fail:" + email + " " + net }

// One-time claims.
func offlineCodeUsedKey(email, deviceID string, step uint64) string {
	return "offline-code-used:" + email + " " + deviceID + " " + strconv.FormatUint(step, 10)
}
func requestIDKey(appID, requestID string) string { return "authnrequest:" + appID + ":" + requestID }
func proofJTIKey(thumbprint, jti string) string   { return "proof-jti:" + thumbprint + ":" + jti }

// Applications, secrets and email codes.
func audienceKey(aud string) string       { return "app-audience:" + aud }
func secretKey(name string) string        { return "idp:secret:" + name }
func emailCodeKey(email string) string    { return "email-code:" + email }
func emailFailKey(email string) string    { return "email-code-fail:" + email }
func emailSendKey(email string) string    { return "email-code-send:" + email }
func emailClientKey(client string) string { return "email-code-client:" + client }
