// Package deviceapi holds the wire types of Passport's device API (the API a
// phone, or passport-device, uses to enroll and to answer login challenges)
// and a Go client for it. It is described by api/openapi.yaml; the server side
// lives in package api. This package does not import echo.
//
// Every call except requestEmailCode carries a Device-Proof header (package
// deviceproof): kid = device ID, except the two enrollment calls, which embed
// the new device's public key as jwk.
package deviceapi

import (
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"time"

	"github.com/winkk/passport/api/apierr"
)

// BasePath is the path prefix of every device API route.
const BasePath = "/api/v1/device"

// Route paths, relative to the server's base URL. {deviceID} and
// {challengeID} are path parameters.
const (
	PathEnroll          = BasePath + "/enroll"                          // POST enrollByInvitation
	PathEmailCodes      = BasePath + "/email-codes"                     // POST requestEmailCode
	PathEnrollEmail     = BasePath + "/enroll/email"                    // POST enrollByEmail
	PathDevices         = BasePath + "/devices"                         // GET listDevices
	PathDevice          = BasePath + "/devices/{deviceID}"              // PATCH renameDevice, DELETE removeDevice
	PathPushToken       = BasePath + "/push-token"                      // PUT updatePushToken
	PathChallenges      = BasePath + "/challenges"                      // GET listChallenges
	PathChallengeWait   = BasePath + "/challenges/wait"                 // GET waitForChallenge
	PathChallenge       = BasePath + "/challenges/{challengeID}"        // GET getChallenge
	PathChallengeAnswer = BasePath + "/challenges/{challengeID}/answer" // POST answerChallenge
	PathApprove         = BasePath + "/challenges/approve"              // POST approveByNumber
	PathInvitations     = BasePath + "/invitations"                     // POST createDeviceInvitation
	PathOpenAPI         = "/api/v1/openapi.yaml"                        // GET this API's OpenAPI document
)

// Wait bounds for waitForChallenge's timeout query parameter (a Go duration
// string such as "25s"; absent means DefaultWait; above MaxWait is clamped).
const (
	DefaultWait = 25 * time.Second
	MaxWait     = 60 * time.Second
)

// Push status values of Device.PushStatus.
const (
	PushOK   = "ok"   // an FCM token is registered and the last send worked
	PushDead = "dead" // FCM reported the token unregistered/invalid
	PushNone = "none" // no FCM token: the device pulls its challenges
)

// Challenge states.
const (
	StatePending  = "pending"
	StateApproved = "approved"
	StateDenied   = "denied"
	StateExpired  = "expired"
)

// Answer decisions.
const (
	DecisionApprove = "approve"
	DecisionDeny    = "deny"
)

// Device is one enrolled device of a user.
type Device struct {
	ID                 string     `json:"id"`
	Name               string     `json:"name"`
	Email              string     `json:"email"`
	Platform           string     `json:"platform"`
	CreatedAt          time.Time  `json:"created_at"`
	LastSeenAt         *time.Time `json:"last_seen_at,omitempty"`
	PushTokenUpdatedAt *time.Time `json:"push_token_updated_at,omitempty"`
	PushStatus         string     `json:"push_status"` // "ok" | "dead" | "none"
	Current            bool       `json:"current"`     // the device that made this call
}

// EnrollByInvitationRequest is the body of enrollByInvitation.
type EnrollByInvitationRequest struct {
	Token    string `json:"token"`
	Name     string `json:"name"`
	FCMToken string `json:"fcm_token"`
	Platform string `json:"platform"`
}

// RequestEmailCodeRequest is the body of requestEmailCode.
type RequestEmailCodeRequest struct {
	Email string `json:"email"`
}

// RequestEmailCodeResponse answers requestEmailCode.
type RequestEmailCodeResponse struct {
	ExpiresAt time.Time `json:"expires_at"`
}

// EnrollByEmailRequest is the body of enrollByEmail.
type EnrollByEmailRequest struct {
	Email    string `json:"email"`
	Code     string `json:"code"`
	Name     string `json:"name"`
	FCMToken string `json:"fcm_token"`
	Platform string `json:"platform"`
}

// EnrollResponse answers both enrollment calls.
type EnrollResponse struct {
	Device Device `json:"device"`
	// OfflineCode is the phone's offline-code secret, given this once; absent when the server has offline
	// codes turned off.
	OfflineCode *OfflineCode `json:"offline_code,omitempty"`
}

// OfflineCode is an RFC 6238 (TOTP) secret and its parameters: the phone shows the code of the current
// period, to be typed on the login page when the phone has no network.
type OfflineCode struct {
	Secret    string `json:"secret"`    // base32, no padding
	Algorithm string `json:"algorithm"` // "SHA1"
	Digits    int    `json:"digits"`    // 6
	Period    int    `json:"period"`    // seconds: 30
	URI       string `json:"uri"`       // the same as an otpauth:// URI, for authenticator apps
}

// DeviceInvitation answers createDeviceInvitation: a one-time invitation for this user's next phone, used
// with enrollByInvitation as an administrator's is.
type DeviceInvitation struct {
	Token     string    `json:"token"`
	EnrollURL string    `json:"enroll_url"`
	ExpiresAt time.Time `json:"expires_at"`
}

// DeviceList answers listDevices.
type DeviceList struct {
	Devices []Device `json:"devices"`
}

// RenameDeviceRequest is the body of renameDevice.
type RenameDeviceRequest struct {
	Name string `json:"name"`
}

// UpdatePushTokenRequest is the body of updatePushToken. An empty token
// removes the device's push token (the device then pulls).
type UpdatePushTokenRequest struct {
	FCMToken string `json:"fcm_token"`
}

// Challenge is one login waiting for (or past) a device's answer.
type Challenge struct {
	ID        string    `json:"id"`
	AppName   string    `json:"app_name"`
	AppURL    string    `json:"app_url,omitempty"`
	Email     string    `json:"email"`
	Browser   string    `json:"browser"`
	OS        string    `json:"os"`
	IP        string    `json:"ip"`
	Location  string    `json:"location,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	State     string    `json:"state"` // pending | approved | denied | expired
	// UserAgent is the browser's User-Agent as the server holds it (Browser and OS are read from it).
	UserAgent string `json:"user_agent"`
	// ContextHash is base64url(SHA-256) of the canonical form of what the phone shows (id, app_name, ip,
	// user_agent, created_at; see the OpenAPI document): the phone sends it back in its answer.
	ContextHash string `json:"context_hash"`
}

// ChallengeList answers listChallenges.
type ChallengeList struct {
	Challenges []Challenge `json:"challenges"`
}

// AnswerRequest is the body of answerChallenge.
type AnswerRequest struct {
	Decision string `json:"decision"` // "approve" | "deny"
	Number   int    `json:"number"`   // the number shown in the browser; required for approve
	Report   bool   `json:"report"`   // deny + "this wasn't me"
	// ContextHash is the challenge's context_hash as the phone showed it; when sent, an answer to a login
	// whose context changed since is refused (context_changed).
	ContextHash string `json:"context_hash,omitempty"`
}

// ApproveByNumberRequest is the body of approveByNumber: the number the
// person read in the browser. It selects the sign-in to approve.
type ApproveByNumberRequest struct {
	Number int `json:"number"`
	// ContextHash, when sent, must be the context_hash of the sign-in the number selects (context_changed).
	ContextHash string `json:"context_hash,omitempty"`
}

// ApproveByNumberResponse answers approveByNumber: the sign-in approved.
type ApproveByNumberResponse struct {
	Challenge Challenge `json:"challenge"`
	State     string    `json:"state"` // approved
}

// AnswerResponse answers answerChallenge.
type AnswerResponse struct {
	State string `json:"state"` // approved | denied
}

// ErrorDetail is the inside of an error answer.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// ErrorBody is every 4xx/5xx answer: {"error":{"code":"...","message":"..."}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// Error codes of the device API, the values of ErrorBody.Error.Code. HTTPStatus gives each one's status.
const (
	CodeInvalidRequest      = "invalid_request"       // body, parameter or header malformed
	CodeInvalidProof        = "invalid_proof"         // Device-Proof missing, malformed, badly signed, stale or not matching the request
	CodeProofReplayed       = "proof_replayed"        // the proof's jti was already used
	CodeUnknownDevice       = "unknown_device"        // the proof's kid names no device
	CodeDeviceRevoked       = "device_revoked"        // the device was removed
	CodeInvitationInvalid   = "invitation_invalid"    // invitation token unknown, used or expired
	CodeEmailNotAllowed     = "email_not_allowed"     // the email's domain may not enroll
	CodeContextChanged      = "context_changed"       // the sign-in is not the one the phone showed (its context changed); nothing was answered
	CodeForbidden           = "forbidden"             // the account is suspended
	CodeCodeInvalid         = "code_invalid"          // email code wrong, voided or expired
	CodeCodeLocked          = "code_locked"           // five wrong codes for this address in the hour
	CodeRateLimited         = "rate_limited"          // too many requests
	CodeChallengeNotFound   = "challenge_not_found"   // no such challenge for this device's user
	CodeChallengeClosed     = "challenge_closed"      // already answered or expired
	CodeNumberMismatch      = "number_mismatch"       // wrong number; the login is denied
	CodeNoMatchingChallenge = "no_matching_challenge" // no open sign-in of this account shows the number; nothing was approved
	CodeNotFound            = "not_found"             // no such route or device
	CodeInternal            = "internal"              // server fault
	// CodeTemporarilyUnavailable: the server cannot reach its store right now (a failover, a stall); nothing
	// was lost. Send the same request again after the answer's Retry-After.
	CodeTemporarilyUnavailable = "temporarily_unavailable"

	// Transport-level refusals, not tied to one operation.
	CodeMethodNotAllowed     = "method_not_allowed"     // the path exists, not with this method
	CodeTooLarge             = "too_large"              // body over the limit (64 KiB)
	CodeUnsupportedMediaType = "unsupported_media_type" // a body that is not application/json
)

// HTTPStatus returns the HTTP status that goes with an error code, as documented in api/openapi.yaml. It
// reads the server's one table of codes and statuses (package apierr); 500 for an unknown code.
func HTTPStatus(code string) int { return apierr.Status(code) }

// Codes returns every error code, for tests and documentation.
func Codes() []string {
	return []string{
		CodeInvalidRequest, CodeInvalidProof, CodeProofReplayed, CodeUnknownDevice,
		CodeDeviceRevoked, CodeInvitationInvalid, CodeEmailNotAllowed, CodeCodeInvalid,
		CodeCodeLocked, CodeRateLimited, CodeChallengeNotFound, CodeChallengeClosed,
		CodeNumberMismatch, CodeNoMatchingChallenge, CodeNotFound, CodeInternal,
		CodeTemporarilyUnavailable, CodeMethodNotAllowed, CodeTooLarge, CodeUnsupportedMediaType, CodeContextChanged, CodeForbidden,
	}
}

// ContextHash computes, from a challenge as a phone shows it, the hash its answer carries (context_hash):
// base64url (no padding) of SHA-256 of these lines joined by "\n" (no final one):
//
//	passport-challenge-context/v1
//	id=<id>
//	app=<app_name>
//	ip=<ip>
//	user_agent=<user_agent>
//	time=<created_at, RFC 3339 UTC to the second>
//
// A phone computes it from the fields it displayed rather than echo the server's, so that its signed answer
// names what its person saw.
func ContextHash(ch Challenge) string {
	line := strings.NewReplacer("\r", " ", "\n", " ")
	canonical := strings.Join([]string{
		"passport-challenge-context/v1",
		"id=" + ch.ID,
		"app=" + line.Replace(ch.AppName),
		"ip=" + line.Replace(ch.IP),
		"user_agent=" + line.Replace(ch.UserAgent),
		"time=" + ch.CreatedAt.UTC().Format("2006-01-02T15:04:05Z"),
	}, "\n")
	sum := sha256.Sum256([]byte(canonical))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
