package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/mssola/useragent"

	"github.com/winkk/passport/api/deviceapi"
	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/authn/deviceproof"
)

const (
	ctxDevice = "passport.device"
	ctxProof  = "passport.proof"
	ctxBody   = "passport.body"
	// ctxPrefetch is the read an approval by number sends with its proof's claim (prefetchApproval).
	ctxPrefetch = "passport.prefetch"
	// ctxApproval is an approval by number's body as prefetchApproval parsed it.
	ctxApproval = "passport.approval"
)

// readBody reads the (size-limited) request body once; the proof covers its exact bytes.
func readBody(c echo.Context) ([]byte, error) {
	if b, ok := c.Get(ctxBody).([]byte); ok {
		return b, nil
	}
	b, err := readAll(c.Request().Body)
	if err != nil {
		return nil, err
	}
	c.Set(ctxBody, b)
	return b, nil
}

// proofRequest collects what a device proof must cover: method, the public URL of the path, and the body.
func (s *Server) proofRequest(c echo.Context) (authn.ProofRequest, error) {
	body, err := readBody(c)
	if err != nil {
		return authn.ProofRequest{}, err
	}
	return authn.ProofRequest{
		Proof:  c.Request().Header.Get(deviceproof.Header),
		Method: c.Request().Method,
		URL:    s.url(c.Request().URL.EscapedPath()),
		Body:   body,
	}, nil
}

// requireDevice authenticates the calling device by its proof.
func (s *Server) requireDevice(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		pr, err := s.proofRequest(c)
		if err != nil {
			return err
		}
		pr.Prefetch, _ = c.Get(ctxPrefetch).(authn.Prefetch)
		// Bounded on its own too: a long-poll's request has no deadline of its own (see longLived).
		actx, cancel := s.storeCtx(s.ctx(c))
		d, err := s.svc.Devices.Authenticate(actx, pr)
		cancel()
		if err != nil {
			return err
		}
		c.Set(ctxDevice, d)
		c.Set(ctxProof, pr.Proof) // as verified: an answer's receipt
		s.act(c, "device:"+d.ID)
		return next(c)
	}
}

func device(c echo.Context) authn.Device { return c.Get(ctxDevice).(authn.Device) }

// proofOf is the device proof requireDevice verified for this request.
func proofOf(c echo.Context) string { s, _ := c.Get(ctxProof).(string); return s }

func viewDevice(d authn.Device, current string) deviceapi.Device {
	return deviceapi.Device{
		ID:                 d.ID,
		Name:               d.Name,
		Email:              d.Email,
		Platform:           d.Platform,
		CreatedAt:          d.CreatedAt,
		LastSeenAt:         d.LastSeenAt,
		PushTokenUpdatedAt: d.PushTokenUpdatedAt,
		PushStatus:         d.PushStatus,
		Current:            d.ID == current,
	}
}

// enrolled is the answer to an enrollment: the device and, once, its offline-code secret.
func enrolled(d authn.Device) deviceapi.EnrollResponse {
	out := deviceapi.EnrollResponse{Device: viewDevice(d, d.ID)}
	if d.OfflineSecret != "" {
		out.OfflineCode = &deviceapi.OfflineCode{Secret: d.OfflineSecret, Algorithm: authn.OfflineCodeAlgorithm,
			Digits: authn.OfflineCodeDigits, Period: int(authn.OfflineCodePeriod / time.Second),
			URI: authn.OfflineCodeURI(d.OfflineSecret, d.Email)}
	}
	return out
}

func (s *Server) handleEnrollByInvitation(c echo.Context) error {
	pr, err := s.proofRequest(c)
	if err != nil {
		return err
	}
	var req deviceapi.EnrollByInvitationRequest
	if err := decodeJSONBytes(pr.Body, &req); err != nil {
		return err
	}
	d, err := s.svc.Devices.EnrollByInvitation(s.ctx(c), pr, req.Token, authn.EnrollRequest{Name: req.Name, FCMToken: req.FCMToken, Platform: req.Platform})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, enrolled(d))
}

func (s *Server) handleRequestEmailCode(c echo.Context) error {
	body, err := readBody(c)
	if err != nil {
		return err
	}
	var req deviceapi.RequestEmailCodeRequest
	if err := decodeJSONBytes(body, &req); err != nil {
		return err
	}
	expires, err := s.svc.Devices.RequestEmailCode(s.ctx(c), req.Email, clientKey(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, deviceapi.RequestEmailCodeResponse{ExpiresAt: expires})
}

func (s *Server) handleEnrollByEmail(c echo.Context) error {
	pr, err := s.proofRequest(c)
	if err != nil {
		return err
	}
	var req deviceapi.EnrollByEmailRequest
	if err := decodeJSONBytes(pr.Body, &req); err != nil {
		return err
	}
	d, err := s.svc.Devices.EnrollByEmail(s.ctx(c), pr, req.Email, req.Code, clientKey(c), authn.EnrollRequest{Name: req.Name, FCMToken: req.FCMToken, Platform: req.Platform})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, enrolled(d))
}

func (s *Server) handleListDevices(c echo.Context) error {
	me := device(c)
	ds, err := s.svc.Devices.List(s.ctx(c), me.Email)
	if err != nil {
		return err
	}
	out := deviceapi.DeviceList{Devices: make([]deviceapi.Device, 0, len(ds))}
	for _, d := range ds {
		out.Devices = append(out.Devices, viewDevice(d, me.ID))
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) handleRenameDevice(c echo.Context) error {
	me := device(c)
	var req deviceapi.RenameDeviceRequest
	if err := decodeJSONBytes(c.Get(ctxBody).([]byte), &req); err != nil {
		return err
	}
	d, err := s.svc.Devices.Rename(s.ctx(c), me.Email, c.Param("deviceID"), req.Name)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, viewDevice(d, me.ID))
}

func (s *Server) handleRemoveDevice(c echo.Context) error {
	me := device(c)
	if err := s.svc.Devices.Remove(s.ctx(c), me.Email, c.Param("deviceID")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) handleUpdatePushToken(c echo.Context) error {
	me := device(c)
	var req deviceapi.UpdatePushTokenRequest
	if err := decodeJSONBytes(c.Get(ctxBody).([]byte), &req); err != nil {
		return err
	}
	d, err := s.svc.Devices.UpdatePushToken(s.ctx(c), me.Email, me.ID, req.FCMToken)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, viewDevice(d, me.ID))
}

// viewChallenge shows a login as the phone sees it: enough to tell a real sign-in from an attack (app, browser,
// OS, IP, time), never the number to match.
func (s *Server) viewChallenge(c echo.Context, l authn.Login) deviceapi.Challenge {
	ch := deviceapi.Challenge{
		ID:        l.ID,
		Email:     l.Email,
		IP:        l.ClientIP,
		CreatedAt: l.CreatedAt,
		ExpiresAt: l.ExpiresAt,
		State:     challengeState(l.Current(s.cfg.Clock())),
		UserAgent: l.UserAgent,
	}
	if l.AppID == authn.ConsoleApp {
		ch.AppName, ch.AppURL = "Passport admin console", s.url("/admin")
	} else if a, err := s.svc.Apps.Get(s.ctx(c), l.AppID); err == nil {
		ch.AppName, ch.AppURL = a.Name, a.URL
	}
	ch.ContextHash = s.svc.Logins.Context(s.ctx(c), l).Hash()
	ua := useragent.New(l.UserAgent)
	if name, version := ua.Browser(); name != "" {
		ch.Browser = strings.TrimSpace(name + " " + majorVersion(version))
	}
	ch.OS = ua.OS()
	return ch
}

func majorVersion(v string) string {
	if i := strings.IndexByte(v, '.'); i > 0 {
		return v[:i]
	}
	return v
}

func challengeState(st authn.LoginState) string {
	switch st {
	case authn.StatePending, authn.StateIdentify:
		return deviceapi.StatePending
	case authn.StateApproved, authn.StateAnswered:
		return deviceapi.StateApproved
	case authn.StateExpired:
		return deviceapi.StateExpired
	default:
		return deviceapi.StateDenied
	}
}

func (s *Server) handleListChallenges(c echo.Context) error {
	ls, err := s.svc.Logins.Challenges(s.ctx(c), device(c))
	if err != nil {
		return err
	}
	out := deviceapi.ChallengeList{Challenges: make([]deviceapi.Challenge, 0, len(ls))}
	for _, l := range ls {
		out.Challenges = append(out.Challenges, s.viewChallenge(c, l))
	}
	return c.JSON(http.StatusOK, out)
}

// handleWaitForChallenge long-polls: it answers at once when a challenge is pending, else as soon as one
// arrives (pub/sub), else 204 when the timeout passes or the server is shutting down. A device has at most
// Limits.WaitsPerDevice long-polls open (past that, 429); the answer has Limits.WriteTimeout from when it is
// written, not from the request.
func (s *Server) handleWaitForChallenge(c echo.Context) error {
	me := device(c)
	timeout := deviceapi.DefaultWait
	if t := c.QueryParam("timeout"); t != "" {
		d, err := time.ParseDuration(t)
		if err != nil || d <= 0 {
			return authn.ErrInvalid.WithMessage("timeout must be a positive duration such as 25s.")
		}
		timeout = min(d, deviceapi.MaxWait)
	}
	release, full := s.streams.acquire(streamCap{kind: "device", key: "device:" + me.ID, max: s.cfg.Limits.WaitsPerDevice,
		refusal: fmt.Sprintf("This device already has %d long-polls waiting; wait for one of them to answer.", s.cfg.Limits.WaitsPerDevice)})
	if full != nil {
		return s.refuseStream(c, full)
	}
	defer release()
	s.waiting.Add(1)
	defer s.waiting.Add(-1)
	l, err := s.nextChallenge(s.ctx(c), me, timeout)
	// The wait may have outlasted the server's write timeout, which counts from the request.
	s.extendWriteDeadline(c)
	switch {
	case err != nil:
		return err
	case l == nil:
		return c.NoContent(http.StatusNoContent)
	default:
		return c.JSON(http.StatusOK, s.viewChallenge(c, *l))
	}
}

// nextChallenge waits up to timeout for a challenge of me's user to be pending and returns the first; nil when
// none came, the server is shutting down or the client left.
func (s *Server) nextChallenge(ctx context.Context, me authn.Device, timeout time.Duration) (*authn.Login, error) {
	watch, err := s.svc.Logins.WatchChallenges(ctx, me.Email)
	if err != nil {
		return nil, err
	}
	defer watch.Stop()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	recheck := time.NewTicker(recheckEvery)
	defer recheck.Stop()
	for {
		cctx, cancel := s.storeCtx(ctx)
		ls, err := s.svc.Logins.Challenges(cctx, me)
		cancel()
		if err != nil {
			return nil, err
		}
		if len(ls) > 0 {
			return &ls[0], nil
		}
		select {
		case _, ok := <-watch.C:
			if !ok { // the store is closing
				return nil, nil
			}
		case <-recheck.C:
		case <-timer.C:
			return nil, nil
		case <-s.closing:
			return nil, nil
		case <-ctx.Done():
			return nil, nil
		}
	}
}

func (s *Server) handleGetChallenge(c echo.Context) error {
	l, err := s.svc.Logins.Challenge(s.ctx(c), device(c), c.Param("challengeID"))
	if err != nil {
		return challengeErr(err)
	}
	return c.JSON(http.StatusOK, s.viewChallenge(c, l))
}

func challengeErr(err error) error {
	if errors.Is(err, authn.ErrNotFound) {
		return errChallengeNotFound
	}
	return err
}

func (s *Server) handleAnswerChallenge(c echo.Context) error {
	var req deviceapi.AnswerRequest
	if err := decodeJSONBytes(c.Get(ctxBody).([]byte), &req); err != nil {
		return err
	}
	var dec authn.Decision
	switch req.Decision {
	case deviceapi.DecisionApprove:
		if req.Report {
			return authn.ErrInvalid.WithMessage("report goes with decision \"deny\".")
		}
		if req.Number < 10 || req.Number > 99 {
			return authn.ErrInvalid.WithMessage("number must be the two-digit number shown in the browser.")
		}
		dec = authn.Decision{Approve: true, Number: req.Number}
	case deviceapi.DecisionDeny:
		dec = authn.Decision{Report: req.Report}
	default:
		return authn.ErrInvalid.WithMessage("decision must be \"approve\" or \"deny\".")
	}
	dec.ContextHash, dec.Receipt, dec.ReceiptBody = req.ContextHash, proofOf(c), string(c.Get(ctxBody).([]byte))
	l, err := s.svc.Logins.Answer(s.ctx(c), device(c), c.Param("challengeID"), dec)
	if err != nil {
		return challengeErr(err)
	}
	s.metrics.answers.WithLabelValues(string(l.State), l.Reason).Inc()
	return c.JSON(http.StatusOK, deviceapi.AnswerResponse{State: challengeState(l.State)})
}

// prefetchApproval, before requireDevice, lets an approval by number read the sign-ins that show its number in
// the round trip that claims its device proof (authn.Logins.PrefetchNumber), one round trip fewer for the
// approval. It parses the body for the handler; one that does not parse gets no prefetch, and the handler
// refuses it once the proof is checked, as before.
func (s *Server) prefetchApproval(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		body, err := readBody(c)
		if err != nil {
			return err
		}
		var req deviceapi.ApproveByNumberRequest
		if decodeJSONBytes(body, &req) == nil {
			c.Set(ctxApproval, req)
			if p := s.svc.Logins.PrefetchNumber(req.Number); p != nil {
				c.Set(ctxPrefetch, p)
			}
		}
		return next(c)
	}
}

// handleApproveByNumber approves the user's open sign-in whose browser shows the number typed on the phone.
func (s *Server) handleApproveByNumber(c echo.Context) error {
	req, parsed := c.Get(ctxApproval).(deviceapi.ApproveByNumberRequest)
	if !parsed { // prefetchApproval could not parse it: this says why
		if err := decodeJSONBytes(c.Get(ctxBody).([]byte), &req); err != nil {
			return err
		}
	}
	prefetched, _ := c.Get(ctxPrefetch).(*authn.NumberPrefetch)
	l, err := s.svc.Logins.ApproveSigned(s.ctx(c), device(c), authn.Decision{Number: req.Number, ContextHash: req.ContextHash,
		Receipt: proofOf(c), ReceiptBody: string(c.Get(ctxBody).([]byte)), Prefetched: prefetched})
	if err != nil {
		return err
	}
	s.metrics.answers.WithLabelValues(string(l.State), l.Reason).Inc()
	return c.JSON(http.StatusOK, deviceapi.ApproveByNumberResponse{Challenge: s.viewChallenge(c, l), State: challengeState(l.State)})
}

// handleCreateDeviceInvitation: an enrolled phone invites its user's next phone.
func (s *Server) handleCreateDeviceInvitation(c echo.Context) error {
	inv, token, err := s.svc.Devices.InviteNext(s.ctx(c), device(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, deviceapi.DeviceInvitation{Token: token, EnrollURL: s.svc.Devices.EnrollURL(token), ExpiresAt: inv.ExpiresAt})
}

// Waiting is the number of device long-polls parked right now (for tests and metrics).
func (s *Server) Waiting() int64 { return s.waiting.Load() }
