// Package push sends the login-approval prompt to a user's phone.
//
// It knows Firebase Cloud Messaging (FCM) and nothing about logins: a [Message] carries an opaque
// challenge ID, a generic alert and the challenge's remaining life, and a [Sender] delivers it.
// Two senders exist: [FCM], which talks to the FCM HTTP v1 API through the Firebase Admin SDK and
// owns retries, backoff and error classification, and [LogSender], which writes the push to the
// log when no FCM credentials are configured (devices then pull their challenges).
//
// Nothing sensitive travels through FCM: no email address, no application name, no number to
// match — only the challenge ID, which the phone exchanges for the details over the device API.
//
// Callers react to three sentinel errors: [ErrTokenDead] (mark the device's registration token
// dead), [ErrQuota] and [ErrUnavailable] (FCM is throttling or down; the device can still pull).
// The package imports nothing else of Passport's.
package push
