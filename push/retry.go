package push

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/auth"
	"firebase.google.com/go/v4/errorutils"
	"firebase.google.com/go/v4/messaging"
)

// class is what one attempt's outcome asks the retry loop to do.
type class int

const (
	classOK        class = iota
	classTokenDead       // stop: the token is dead
	classQuota           // retry after Retry-After or quota backoff
	classRetry           // retry after Retry-After or backoff
	classFatal           // stop: retrying cannot help
	classCanceled        // stop: the caller's context is done
)

type attemptResult struct {
	class      class
	err        error
	retryAfter time.Duration // from FCM's Retry-After header; 0 when absent
}

// classify maps the SDK's answer onto a class. The SDK's Is* helpers type-assert its
// *FirebaseError without unwrapping, so they get the raw error.
func (f *FCM) classify(ctx context.Context, err error, st *attemptState) attemptResult {
	if err == nil {
		return attemptResult{class: classOK}
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return attemptResult{class: classCanceled, err: ctxErr}
	}
	if _, terr := st.result(); terr != nil {
		var ae *auth.Error // the token endpoint refused the service account: retrying cannot help
		if errors.As(terr, &ae) && ae.Response != nil && ae.Response.StatusCode >= 400 &&
			ae.Response.StatusCode < 500 && ae.Response.StatusCode != http.StatusTooManyRequests {
			return attemptResult{class: classFatal, err: terr}
		}
		return attemptResult{class: classRetry, err: terr}
	}

	resp := errorutils.HTTPResponse(err)
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	switch {
	case messaging.IsUnregistered(err), messaging.IsSenderIDMismatch(err):
		return attemptResult{class: classTokenDead, err: err}
	case (messaging.IsInvalidArgument(err) || errorutils.IsInvalidArgument(err)) && aboutToken(resp):
		return attemptResult{class: classTokenDead, err: err}
	case messaging.IsQuotaExceeded(err) || errorutils.IsResourceExhausted(err):
		// errorutils too: FCM also answers 429 with only a google.rpc.ErrorInfo
		// (RATE_LIMIT_EXCEEDED) and no FcmError detail (firebase-admin-go#719).
		return attemptResult{class: classQuota, err: err, retryAfter: f.retryAfter(resp)}
	case messaging.IsUnavailable(err), errorutils.IsUnavailable(err),
		messaging.IsInternal(err), errorutils.IsInternal(err),
		errorutils.IsDeadlineExceeded(err), status >= 500:
		if status == http.StatusServiceUnavailable { // the guard hid the server's Retry-After
			original, _ := st.result()
			return attemptResult{class: classRetry, err: err, retryAfter: f.parseRetryAfter(original)}
		}
		return attemptResult{class: classRetry, err: err, retryAfter: f.retryAfter(resp)}
	default:
		return attemptResult{class: classFatal, err: err}
	}
}

// aboutToken reports whether an INVALID_ARGUMENT answer blames the registration token rather
// than the message. FCM says so in the message ("The registration token is not a valid FCM
// registration token") and, in some answers, in a google.rpc.BadRequest field violation on
// "message.token".
func aboutToken(resp *http.Response) bool {
	if resp == nil || resp.Body == nil {
		return false
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return false
	}
	var e struct {
		Error struct {
			Message string `json:"message"`
			Details []struct {
				FieldViolations []struct {
					Field string `json:"field"`
				} `json:"fieldViolations"`
			} `json:"details"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return false
	}
	for _, d := range e.Error.Details {
		for _, v := range d.FieldViolations {
			if v.Field == "message.token" {
				return true
			}
		}
	}
	return strings.Contains(strings.ToLower(e.Error.Message), "registration token")
}

// retryAfter reads the response's Retry-After header.
func (f *FCM) retryAfter(resp *http.Response) time.Duration {
	if resp == nil {
		return 0
	}
	return f.parseRetryAfter(resp.Header.Get("Retry-After"))
}

// parseRetryAfter reads a Retry-After value: seconds or an HTTP date (RFC 9110 §10.2.3). It is 0
// when absent, malformed or in the past.
func (f *FCM) parseRetryAfter(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		const ceiling = 24 * time.Hour // beyond any TTL; also keeps the multiplication from overflowing
		return time.Duration(min(max(s, 0), int(ceiling/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(f.cfg.Now()), 0)
	}
	return 0
}

// backoff is the wait before attempt n+1: the first wait doubled n-1 times, capped, jittered.
func (f *FCM) backoff(c class, n int) time.Duration {
	first, ceiling := f.cfg.Backoff, f.cfg.MaxBackoff
	if c == classQuota {
		first, ceiling = f.cfg.QuotaBackoff, max(f.cfg.QuotaBackoff, f.cfg.MaxBackoff)
	}
	d := ceiling
	if n-1 < 32 {
		if b := first << (n - 1); b > 0 && b < ceiling {
			d = b
		}
	}
	return f.jitter(d)
}

// upJitter adds up to a quarter of d, never less than d: spreads retries of many pushes
// without ever waiting less than FCM asked for.
func upJitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d + rand.N(d/4+1)
}

// The Admin SDK retries by itself, and no public option turns that off (firebase-admin-go#476):
// up to 4 more tries on 503 and on every network error, sleeping 0s, 1s, 2s, 4s in between,
// blind to our TTL. attemptGuard, the outermost RoundTripper, makes each SDK call exactly one HTTP
// exchange so that this package alone decides when to retry:
//   - a 503 gets a Retry-After beyond the SDK's 2-minute cap, which makes it give up at once with
//     its usual UNAVAILABLE error (the server's own Retry-After is kept for us);
//   - a network error (token fetch included) or a body that fails mid-read is recorded and the
//     attempt's context cancelled, so the SDK's immediate retry returns at once.
type attemptGuard struct{ base http.RoundTripper }

type attemptKey struct{}

// attemptState is one attempt's record, shared by the guard and the retry loop.
type attemptState struct {
	cancel context.CancelFunc

	mu           sync.Mutex
	transportErr error
	retryAfter   string // the 503's Retry-After as the server sent it
}

func (s *attemptState) fail(err error) {
	s.mu.Lock()
	if s.transportErr == nil {
		s.transportErr = err
	}
	s.mu.Unlock()
	s.cancel()
}

func (s *attemptState) result() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.retryAfter, s.transportErr
}

// sdkGiveUp is a Retry-After, in seconds, longer than the SDK's MaxDelay of two minutes.
const sdkGiveUp = "86400"

func (g attemptGuard) RoundTrip(r *http.Request) (*http.Response, error) {
	st, _ := r.Context().Value(attemptKey{}).(*attemptState)
	resp, err := g.base.RoundTrip(r)
	if st == nil {
		return resp, err
	}
	if err != nil {
		st.fail(err)
		return nil, err
	}
	if resp.StatusCode == http.StatusServiceUnavailable {
		st.mu.Lock()
		st.retryAfter = resp.Header.Get("Retry-After")
		st.mu.Unlock()
		resp.Header.Set("Retry-After", sdkGiveUp)
	}
	resp.Body = guardedBody{ReadCloser: resp.Body, st: st}
	return resp, nil
}

type guardedBody struct {
	io.ReadCloser
	st *attemptState
}

func (b guardedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		b.st.fail(err)
	}
	return n, err
}
