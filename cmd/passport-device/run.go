package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/winkk/passport/api/deviceapi"
	"github.com/winkk/passport/authn/deviceproof"
)

const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// callTimeout bounds one command that does not wait for a challenge.
const callTimeout = 30 * time.Second

const usage = `usage: passport-device COMMAND [flags]

  enroll --server URL --token TOKEN --state FILE [--name NAME] [--fcm-token T] [--platform P] [--force]
  enroll --server URL --email EMAIL --state FILE [--code CODE] [--name NAME] [--fcm-token T] [--platform P] [--force]
        without --code: asks the server to mail a code, then reads it from stdin (one line);
        with --code: uses a code already mailed (see email-code)
  email-code --server URL --email EMAIL    ask the server to mail a fresh enrollment code
  devices --state FILE                     this account's devices
  pending --state FILE                     pending challenges
  approve --state FILE --number N [--timeout 30s]
                                           approve the sign-in whose browser shows N (waiting for
                                           it to appear); never another sign-in of the account
  deny --state FILE [--timeout 30s] [--report]
                                           wait for the next pending challenge and deny it
                                           (--report: "this wasn't me")
  rename --state FILE [--device ID] --name NAME   (default device: this one)
  remove --state FILE --device ID
  push-token --state FILE --fcm-token T    ("" removes the token: the device pulls)
  add-device --state FILE                  invite this account's next phone: prints {token, enroll_url,
                                           expires_at} (at most 15 minutes, one use); on the new
                                           phone: enroll --server URL --token TOKEN --state FILE
  code --state FILE                        print the current offline code (6 digits, plain text), to
                                           type on the login page when this phone has no network

Output is JSON on stdout; errors are one line on stderr.
Exit status: 0 ok, 1 refused by the server or failed, 2 usage.
`

// usageError is a mistake in the command line: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// env is what a command runs with.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	http           *http.Client
}

type command func(ctx context.Context, e *env, args []string) error

var commands = map[string]command{
	"enroll":     cmdEnroll,
	"email-code": cmdEmailCode,
	"devices":    cmdDevices,
	"pending":    cmdPending,
	"approve":    cmdApprove,
	"deny":       cmdDeny,
	"rename":     cmdRename,
	"remove":     cmdRemove,
	"push-token": cmdPushToken,
	"code":       cmdCode,
	"add-device": cmdAddDevice,
}

// run is the whole program: args without the program name. It returns the
// exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "passport-device: unknown command %q (see passport-device help)\n", args[0])
		return exitUsage
	}
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, http: &http.Client{}}
	err := cmd(ctx, e, args[1:])
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stderr, usage)
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "passport-device: %s: %s (see passport-device help)\n", args[0], oneLine(err.Error()))
		return exitUsage
	default:
		fmt.Fprintf(stderr, "passport-device: %s: %s\n", args[0], oneLine(err.Error()))
		return exitFail
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// flags is a FlagSet that reports errors as usageError and prints nothing.
func flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usagef("%v", err)
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode output: %w", err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

func checkServer(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return usagef("--server must be an http(s) base URL such as https://idp.example.com")
	}
	return nil
}

func hostname() string {
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "passport-device"
}

func cmdEnroll(ctx context.Context, e *env, args []string) error {
	fs := flags("enroll")
	server := fs.String("server", "", "server base URL")
	token := fs.String("token", "", "invitation token")
	email := fs.String("email", "", "email for self-service enrollment")
	code := fs.String("code", "", "email code already received")
	statePath := fs.String("state", "", "state file to create")
	name := fs.String("name", hostname(), "device name")
	fcm := fs.String("fcm-token", "", "FCM registration token")
	platform := fs.String("platform", "cli", "device platform")
	force := fs.Bool("force", false, "replace an existing state file")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case *server == "":
		return usagef("--server is required")
	case *statePath == "":
		return usagef("--state is required")
	case (*token == "") == (*email == ""):
		return usagef("give exactly one of --token and --email")
	case *code != "" && *email == "":
		return usagef("--code goes with --email")
	case strings.TrimSpace(*name) == "":
		return usagef("--name must not be empty")
	}
	if err := checkServer(*server); err != nil {
		return err
	}
	sw, err := reserveState(*statePath, *force)
	if err != nil {
		return err
	}
	defer sw.abort()

	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate key: %w", err)
	}
	c := &deviceapi.Client{BaseURL: *server, HTTP: e.http, Signer: &deviceproof.Signer{Key: key}}
	var res *deviceapi.EnrollResponse
	if *token != "" {
		res, err = c.EnrollByInvitation(ctx, deviceapi.EnrollByInvitationRequest{
			Token: *token, Name: *name, FCMToken: *fcm, Platform: *platform,
		})
	} else {
		if *code == "" {
			if *code, err = askCode(ctx, e, c, *email); err != nil {
				return err
			}
		}
		res, err = c.EnrollByEmail(ctx, deviceapi.EnrollByEmailRequest{
			Email: *email, Code: *code, Name: *name, FCMToken: *fcm, Platform: *platform,
		})
	}
	if err != nil {
		return err
	}
	pemKey, err := encodeKey(key)
	if err != nil {
		return err
	}
	st := &state{Server: strings.TrimRight(*server, "/"), DeviceID: res.Device.ID, Email: res.Device.Email, PrivateKey: pemKey,
		OfflineCode: res.OfflineCode}
	if err := sw.commit(st); err != nil {
		return fmt.Errorf("device %s enrolled but its key is lost: %w", res.Device.ID, err)
	}
	// The offline-code secret stays in the state file, as the private key does.
	return printJSON(e.stdout, enrollOutput{Device: res.Device, OfflineCodes: res.OfflineCode != nil})
}

// enrollOutput is what enroll prints: the device, and whether it can show offline codes (code).
type enrollOutput struct {
	Device       deviceapi.Device `json:"device"`
	OfflineCodes bool             `json:"offline_codes"`
}

// cmdCode prints the current offline code: the six digits to type on the login page ("Use a code from the
// app instead") when this phone has no network. It makes no call to the server.
func cmdCode(_ context.Context, e *env, args []string) error {
	fs := flags("code")
	statePath := fs.String("state", "", "state file")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *statePath == "" {
		return usagef("--state is required")
	}
	st, _, err := loadState(*statePath)
	if err != nil {
		return err
	}
	oc := st.OfflineCode
	if oc == nil || oc.Secret == "" {
		return errors.New("this device has no offline-code secret: the server had offline codes turned off when it enrolled")
	}
	alg := otp.AlgorithmSHA1
	switch strings.ToUpper(oc.Algorithm) {
	case "", "SHA1":
	case "SHA256":
		alg = otp.AlgorithmSHA256
	default:
		return fmt.Errorf("offline code: unsupported algorithm %q", oc.Algorithm)
	}
	digits := otp.DigitsSix
	if oc.Digits == 8 {
		digits = otp.DigitsEight
	}
	code, err := totp.GenerateCodeCustom(oc.Secret, time.Now(), totp.ValidateOpts{Period: uint(max(oc.Period, 1)), Digits: digits, Algorithm: alg})
	if err != nil {
		return fmt.Errorf("offline code: %w", err)
	}
	_, err = fmt.Fprintln(e.stdout, code)
	return err
}

// cmdAddDevice has this (enrolled) phone invite its account's next phone.
func cmdAddDevice(ctx context.Context, e *env, args []string) error {
	c, _, err := device(e, flags("add-device"), args, nil)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	inv, err := c.CreateDeviceInvitation(ctx)
	if err != nil {
		return err
	}
	return printJSON(e.stdout, inv)
}

// askCode has the server mail a code to email and reads it from stdin.
func askCode(ctx context.Context, e *env, c *deviceapi.Client, email string) (string, error) {
	if _, err := c.RequestEmailCode(ctx, deviceapi.RequestEmailCodeRequest{Email: email}); err != nil {
		return "", err
	}
	if f, ok := e.stdin.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			fmt.Fprintf(e.stderr, "A code was mailed to %s. Code: ", email)
		}
	}
	type line struct {
		s   string
		err error
	}
	got := make(chan line, 1)
	go func() {
		s, err := bufio.NewReader(e.stdin).ReadString('\n')
		got <- line{s, err}
	}()
	select {
	case <-ctx.Done():
		return "", fmt.Errorf("read code from stdin: %w", ctx.Err())
	case l := <-got:
		s := strings.TrimSpace(l.s)
		if s == "" {
			if l.err != nil && !errors.Is(l.err, io.EOF) {
				return "", fmt.Errorf("read code from stdin: %w", l.err)
			}
			return "", errors.New("read code from stdin: no code given")
		}
		return s, nil
	}
}

func cmdEmailCode(ctx context.Context, e *env, args []string) error {
	fs := flags("email-code")
	server := fs.String("server", "", "server base URL")
	email := fs.String("email", "", "email to mail the code to")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *server == "" || *email == "" {
		return usagef("--server and --email are required")
	}
	if err := checkServer(*server); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	c := &deviceapi.Client{BaseURL: *server, HTTP: e.http}
	res, err := c.RequestEmailCode(ctx, deviceapi.RequestEmailCodeRequest{Email: *email})
	if err != nil {
		return err
	}
	return printJSON(e.stdout, res)
}

// device parses the common --state flag plus the command's own, runs check
// (the command's usage checks; may be nil), and returns a client for the
// enrolled device.
func device(e *env, fs *flag.FlagSet, args []string, check func() error) (*deviceapi.Client, *state, error) {
	statePath := fs.String("state", "", "state file")
	if err := parse(fs, args); err != nil {
		return nil, nil, err
	}
	if *statePath == "" {
		return nil, nil, usagef("--state is required")
	}
	if check != nil {
		if err := check(); err != nil {
			return nil, nil, err
		}
	}
	st, key, err := loadState(*statePath)
	if err != nil {
		return nil, nil, err
	}
	return &deviceapi.Client{BaseURL: st.Server, HTTP: e.http, Signer: &deviceproof.Signer{Key: key, KeyID: st.DeviceID}}, st, nil
}

func cmdDevices(ctx context.Context, e *env, args []string) error {
	c, _, err := device(e, flags("devices"), args, nil)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	res, err := c.ListDevices(ctx)
	if err != nil {
		return err
	}
	return printJSON(e.stdout, res)
}

func cmdPending(ctx context.Context, e *env, args []string) error {
	c, _, err := device(e, flags("pending"), args, nil)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	res, err := c.ListChallenges(ctx)
	if err != nil {
		return err
	}
	return printJSON(e.stdout, res)
}

// answerOutput is what approve and deny print.
type answerOutput struct {
	Challenge deviceapi.Challenge `json:"challenge"`
	State     string              `json:"state"`
}

func cmdApprove(ctx context.Context, e *env, args []string) error {
	fs := flags("approve")
	number := fs.Int("number", 0, "the number shown in the browser")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for a challenge")
	c, _, err := device(e, fs, args, func() error {
		if !isSet(fs, "number") {
			return usagef("--number is required")
		}
		if *number < 10 || *number > 99 {
			return usagef("--number must be the two-digit number shown in the browser (10 to 99)")
		}
		if *timeout <= 0 {
			return usagef("--timeout must be positive")
		}
		return nil
	})
	if err != nil {
		return err
	}
	return approveByNumber(ctx, e, c, *timeout, *number)
}

// approveRetry is how often approve asks again while no open sign-in shows its number yet.
const approveRetry = 300 * time.Millisecond

// unavailableRetry is how soon approve sends its approval again when the server could not reach its store (a
// failover): the server's Retry-After.
const unavailableRetry = 2 * time.Second

// approveByNumber approves the sign-in whose browser shows number, waiting up to timeout for one to appear.
// The number selects the sign-in: another open sign-in of the account (one someone else started) is never
// approved in its place.
func approveByNumber(ctx context.Context, e *env, c *deviceapi.Client, timeout time.Duration, number int) error {
	deadline := time.Now().Add(timeout)
	ctx, cancel := context.WithDeadline(ctx, deadline.Add(callTimeout))
	defer cancel()
	for {
		res, err := approveNamingContext(ctx, c, number)
		var apiErr *deviceapi.APIError
		if errors.As(err, &apiErr) && (apiErr.Code == deviceapi.CodeNoMatchingChallenge || apiErr.Code == deviceapi.CodeTemporarilyUnavailable || apiErr.Code == deviceapi.CodeContextChanged) {
			// No sign-in shows the number yet, or none of the challenges listed is its sign-in (it became
			// pending just after the list was read; or its context changed, which asking again will not
			// mend), or the server cannot reach its store for a moment (then the approval may not be
			// recorded): ask again until the timeout.
			wait := approveRetry
			if apiErr.Code == deviceapi.CodeTemporarilyUnavailable {
				wait = unavailableRetry
			}
			if time.Now().Add(wait).After(deadline) {
				switch apiErr.Code {
				case deviceapi.CodeTemporarilyUnavailable:
					return fmt.Errorf("the server could not record the approval of %d within %s: %w", number, timeout, err)
				case deviceapi.CodeContextChanged:
					return fmt.Errorf("the sign-in showing %d is not one this phone was shown (its context changed): %w", number, err)
				}
				return fmt.Errorf("no open sign-in showing %d within %s: %w", number, timeout, err)
			}
			select {
			case <-time.After(wait):
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err != nil {
			return err
		}
		if err := printJSON(e.stdout, answerOutput{Challenge: res.Challenge, State: res.State}); err != nil {
			return err
		}
		if res.State != deviceapi.StateApproved {
			return fmt.Errorf("challenge %s: server answered state %q", res.Challenge.ID, res.State)
		}
		return nil
	}
}

// approveNamingContext approves the sign-in showing number, naming in the signed answer the context the phone
// was shown: each pending challenge's context hash is tried in turn (the server refuses with context_changed
// the ones that are not the number's sign-in, changing nothing), so the receipt says what was approved. With no
// challenge listed it approves by the number alone, and the server says whether a sign-in shows it.
func approveNamingContext(ctx context.Context, c *deviceapi.Client, number int) (*deviceapi.ApproveByNumberResponse, error) {
	list, err := c.ListChallenges(ctx)
	if err != nil {
		return nil, err
	}
	var lastErr error
	for _, ch := range list.Challenges {
		if ch.State != deviceapi.StatePending {
			continue
		}
		res, err := c.Approve(ctx, deviceapi.ApproveByNumberRequest{Number: number, ContextHash: deviceapi.ContextHash(ch)})
		var apiErr *deviceapi.APIError
		if errors.As(err, &apiErr) && apiErr.Code == deviceapi.CodeContextChanged {
			lastErr = err
			continue
		}
		return res, err
	}
	if lastErr != nil {
		// Not one pending challenge's context is the one of the sign-in showing number: it changed since.
		return nil, lastErr
	}
	return c.ApproveByNumber(ctx, number)
}

func cmdDeny(ctx context.Context, e *env, args []string) error {
	fs := flags("deny")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for a challenge")
	report := fs.Bool("report", false, `"this wasn't me": report the login`)
	c, _, err := device(e, fs, args, func() error {
		if *timeout <= 0 {
			return usagef("--timeout must be positive")
		}
		return nil
	})
	if err != nil {
		return err
	}
	return answer(ctx, e, c, *timeout, deviceapi.AnswerRequest{Decision: deviceapi.DecisionDeny, Report: *report})
}

// answer waits up to timeout for the next pending challenge and answers it.
// It fails unless the server accepted the answer with the state asked for.
func answer(ctx context.Context, e *env, c *deviceapi.Client, timeout time.Duration, req deviceapi.AnswerRequest) error {
	deadline := time.Now().Add(timeout)
	ctx, cancel := context.WithDeadline(ctx, deadline.Add(callTimeout))
	defer cancel()
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("no pending challenge within %s", timeout)
		}
		ch, err := c.WaitForChallenge(ctx, min(left, deviceapi.MaxWait))
		if errors.Is(err, deviceapi.ErrNoChallenge) {
			continue
		}
		if err != nil {
			return err
		}
		// The answer names what was shown: the hash of the challenge's context as this client reads it.
		req.ContextHash = deviceapi.ContextHash(*ch)
		res, err := c.AnswerChallenge(ctx, ch.ID, req)
		if err != nil {
			return fmt.Errorf("challenge %s: %w", ch.ID, err)
		}
		want := deviceapi.StateApproved
		if req.Decision == deviceapi.DecisionDeny {
			want = deviceapi.StateDenied
		}
		ch.State = res.State
		if err := printJSON(e.stdout, answerOutput{Challenge: *ch, State: res.State}); err != nil {
			return err
		}
		if res.State != want {
			return fmt.Errorf("challenge %s: server answered state %q", ch.ID, res.State)
		}
		return nil
	}
}

func cmdRename(ctx context.Context, e *env, args []string) error {
	fs := flags("rename")
	id := fs.String("device", "", "device ID (default: this device)")
	name := fs.String("name", "", "new name")
	c, st, err := device(e, fs, args, func() error {
		if strings.TrimSpace(*name) == "" {
			return usagef("--name is required")
		}
		return nil
	})
	if err != nil {
		return err
	}
	if *id == "" {
		*id = st.DeviceID
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	res, err := c.RenameDevice(ctx, *id, deviceapi.RenameDeviceRequest{Name: *name})
	if err != nil {
		return err
	}
	return printJSON(e.stdout, res)
}

func cmdRemove(ctx context.Context, e *env, args []string) error {
	fs := flags("remove")
	id := fs.String("device", "", "device ID")
	c, _, err := device(e, fs, args, func() error {
		if *id == "" {
			return usagef("--device is required")
		}
		return nil
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if err := c.RemoveDevice(ctx, *id); err != nil {
		return err
	}
	return printJSON(e.stdout, map[string]any{"device_id": *id, "removed": true})
}

func cmdPushToken(ctx context.Context, e *env, args []string) error {
	fs := flags("push-token")
	tok := fs.String("fcm-token", "", "FCM registration token")
	c, _, err := device(e, fs, args, func() error {
		if !isSet(fs, "fcm-token") {
			return usagef("--fcm-token is required (\"\" removes the token)")
		}
		return nil
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	res, err := c.UpdatePushToken(ctx, deviceapi.UpdatePushTokenRequest{FCMToken: *tok})
	if err != nil {
		return err
	}
	return printJSON(e.stdout, res)
}
