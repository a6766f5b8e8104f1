package deviceapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/winkk/passport/authn/deviceproof"
)

// maxResponse bounds how much of an answer the client reads.
const maxResponse = 1 << 20

// ErrNoChallenge is returned by WaitForChallenge when the wait ended (204)
// without a pending challenge.
var ErrNoChallenge = errors.New("deviceapi: no pending challenge")

// APIError is a refusal from the server: a 4xx/5xx answer. Code is one of the
// Code* constants when the server sent an ErrorBody, "" otherwise.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("deviceapi: HTTP %d: %s", e.Status, e.Message)
	}
	return fmt.Sprintf("deviceapi: %s: %s (HTTP %d)", e.Code, e.Message, e.Status)
}

// Client calls the device API of one server. Its zero HTTP means
// http.DefaultClient. It is safe for concurrent use when Signer is.
type Client struct {
	// BaseURL is the server's public base URL (PASSPORT_BASE_URL), e.g.
	// "https://idp.example.com"; a trailing slash is ignored. Each proof's
	// htu is BaseURL + the route path.
	BaseURL string
	HTTP    *http.Client
	// Signer signs every call but requestEmailCode. Enrollment calls always
	// embed the public key (KeyID ignored); the others need KeyID = device ID.
	Signer *deviceproof.Signer
}

// EnrollByInvitation enrolls the Signer's key with an invitation token
// (operation enrollByInvitation; 201).
func (c *Client) EnrollByInvitation(ctx context.Context, req EnrollByInvitationRequest) (*EnrollResponse, error) {
	var out EnrollResponse
	if err := c.do(ctx, http.MethodPost, PathEnroll, nil, req, proofJWK, http.StatusCreated, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RequestEmailCode asks the server to mail a one-time enrollment code to
// req.Email, voiding any earlier one (operation requestEmailCode; 202; no
// proof).
func (c *Client) RequestEmailCode(ctx context.Context, req RequestEmailCodeRequest) (*RequestEmailCodeResponse, error) {
	var out RequestEmailCodeResponse
	if err := c.do(ctx, http.MethodPost, PathEmailCodes, nil, req, proofNone, http.StatusAccepted, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// EnrollByEmail enrolls the Signer's key with a mailed code (operation
// enrollByEmail; 201).
func (c *Client) EnrollByEmail(ctx context.Context, req EnrollByEmailRequest) (*EnrollResponse, error) {
	var out EnrollResponse
	if err := c.do(ctx, http.MethodPost, PathEnrollEmail, nil, req, proofJWK, http.StatusCreated, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListDevices lists the devices of this device's user (operation
// listDevices; 200).
func (c *Client) ListDevices(ctx context.Context) (*DeviceList, error) {
	var out DeviceList
	if err := c.do(ctx, http.MethodGet, PathDevices, nil, nil, proofKID, http.StatusOK, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RenameDevice renames one of the user's devices (operation renameDevice;
// 200).
func (c *Client) RenameDevice(ctx context.Context, deviceID string, req RenameDeviceRequest) (*Device, error) {
	var out Device
	if err := c.do(ctx, http.MethodPatch, devicePath(deviceID), nil, req, proofKID, http.StatusOK, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RemoveDevice removes one of the user's devices, possibly this one
// (operation removeDevice; 204).
func (c *Client) RemoveDevice(ctx context.Context, deviceID string) error {
	return c.do(ctx, http.MethodDelete, devicePath(deviceID), nil, nil, proofKID, http.StatusNoContent, nil)
}

// UpdatePushToken replaces this device's FCM token (operation
// updatePushToken; 200).
func (c *Client) UpdatePushToken(ctx context.Context, req UpdatePushTokenRequest) (*Device, error) {
	var out Device
	if err := c.do(ctx, http.MethodPut, PathPushToken, nil, req, proofKID, http.StatusOK, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListChallenges lists the pending challenges of this device's user
// (operation listChallenges; 200).
func (c *Client) ListChallenges(ctx context.Context) (*ChallengeList, error) {
	var out ChallengeList
	if err := c.do(ctx, http.MethodGet, PathChallenges, nil, nil, proofKID, http.StatusOK, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// WaitForChallenge long-polls for a pending challenge for at most timeout
// (the server clamps it to MaxWait; <= 0 lets the server use DefaultWait).
// It returns ErrNoChallenge when the server answers 204.
func (c *Client) WaitForChallenge(ctx context.Context, timeout time.Duration) (*Challenge, error) {
	var q url.Values
	if timeout > 0 {
		q = url.Values{"timeout": {FormatWait(timeout)}}
	}
	var out Challenge
	err := c.do(ctx, http.MethodGet, PathChallengeWait, q, nil, proofKID, http.StatusOK, &out)
	if errors.Is(err, errNoContent) {
		return nil, ErrNoChallenge
	}
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// FormatWait renders a wait timeout as the timeout query parameter: whole or
// fractional seconds with an "s" suffix ("25s", "0.5s"), which
// time.ParseDuration reads.
func FormatWait(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s"
}

// GetChallenge fetches one challenge of this device's user (operation
// getChallenge; 200).
func (c *Client) GetChallenge(ctx context.Context, challengeID string) (*Challenge, error) {
	var out Challenge
	if err := c.do(ctx, http.MethodGet, challengePath(challengeID), nil, nil, proofKID, http.StatusOK, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AnswerChallenge approves or denies a challenge (operation answerChallenge;
// 200). A wrong number fails with APIError code number_mismatch (422) and the
// login is denied; an answered or expired challenge with challenge_closed
// (409).
func (c *Client) AnswerChallenge(ctx context.Context, challengeID string, req AnswerRequest) (*AnswerResponse, error) {
	var out AnswerResponse
	if err := c.do(ctx, http.MethodPost, challengePath(challengeID)+"/answer", nil, req, proofKID, http.StatusOK, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ApproveByNumber approves the open sign-in of this account whose browser
// shows number (the number the person read there): it is the only one it can
// approve. With none showing it, the error is an *APIError with code
// CodeNoMatchingChallenge and nothing was approved.
func (c *Client) ApproveByNumber(ctx context.Context, number int) (*ApproveByNumberResponse, error) {
	return c.Approve(ctx, ApproveByNumberRequest{Number: number})
}

// CreateDeviceInvitation makes a one-time invitation for this user's next
// phone (operation createDeviceInvitation; 201): the new phone enrolls with
// its token through EnrollByInvitation.
func (c *Client) CreateDeviceInvitation(ctx context.Context) (*DeviceInvitation, error) {
	var out DeviceInvitation
	if err := c.do(ctx, http.MethodPost, PathInvitations, nil, nil, proofKID, http.StatusCreated, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Approve is ApproveByNumber with the whole request: with ContextHash set, a
// sign-in whose context is not that one is refused (CodeContextChanged).
func (c *Client) Approve(ctx context.Context, req ApproveByNumberRequest) (*ApproveByNumberResponse, error) {
	var out ApproveByNumberResponse
	if err := c.do(ctx, http.MethodPost, PathApprove, nil, req, proofKID, http.StatusOK, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func devicePath(id string) string    { return PathDevices + "/" + url.PathEscape(id) }
func challengePath(id string) string { return PathChallenges + "/" + url.PathEscape(id) }

type proofKind int

const (
	proofNone proofKind = iota
	proofJWK            // embed the public key (enrollment)
	proofKID            // kid = device ID
)

// errNoContent marks an unexpected-but-benign 204.
var errNoContent = errors.New("deviceapi: no content")

func (c *Client) do(ctx context.Context, method, path string, query url.Values, in any, proof proofKind, want int, out any) error {
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("deviceapi: encode request: %w", err)
		}
		body = b
	}
	target := strings.TrimRight(c.BaseURL, "/") + path
	if _, err := url.Parse(target); err != nil || c.BaseURL == "" {
		return fmt.Errorf("deviceapi: bad base url %q", c.BaseURL)
	}
	full := target
	if len(query) > 0 {
		full += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, full, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("deviceapi: %s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if proof != proofNone {
		if c.Signer == nil {
			return errors.New("deviceapi: client has no signer")
		}
		s := *c.Signer
		if proof == proofJWK {
			s.KeyID = ""
		} else if s.KeyID == "" {
			return errors.New("deviceapi: signer has no device id (enroll first)")
		}
		tok, err := s.Sign(method, target, body)
		if err != nil {
			return fmt.Errorf("deviceapi: %w", err)
		}
		req.Header.Set(deviceproof.Header, tok)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("deviceapi: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("deviceapi: %s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode >= 400 {
		return decodeError(resp.StatusCode, data)
	}
	if resp.StatusCode == http.StatusNoContent && want != http.StatusNoContent {
		return errNoContent
	}
	if resp.StatusCode != want {
		return fmt.Errorf("deviceapi: %s %s: unexpected status %d", method, path, resp.StatusCode)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("deviceapi: %s %s: decode answer: %w", method, path, err)
	}
	return nil
}

func decodeError(status int, data []byte) error {
	var eb ErrorBody
	if err := json.Unmarshal(data, &eb); err != nil || eb.Error.Code == "" {
		return &APIError{Status: status, Message: http.StatusText(status)}
	}
	return &APIError{Status: status, Code: eb.Error.Code, Message: eb.Error.Message}
}
