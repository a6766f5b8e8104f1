package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/winkk/passport/api/deviceapi"
	"github.com/winkk/passport/api/deviceapi/deviceapitest"
)

type result struct {
	code           int
	stdout, stderr string
}

func runCLI(tb testing.TB, stdin io.Reader, args ...string) result {
	tb.Helper()
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	var out, errb bytes.Buffer
	code := run(context.Background(), args, stdin, &out, &errb)
	return result{code, out.String(), errb.String()}
}

// mustOK runs the CLI and requires exit 0 with JSON on stdout, decoded into v.
func mustOK(tb testing.TB, v any, stdin io.Reader, args ...string) {
	tb.Helper()
	r := runCLI(tb, stdin, args...)
	if r.code != 0 {
		tb.Fatalf("%v: exit %d, stderr %q", args, r.code, r.stderr)
	}
	if r.stderr != "" {
		tb.Errorf("%v: stderr %q", args, r.stderr)
	}
	if v != nil {
		if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
			tb.Fatalf("%v: stdout is not JSON: %v\n%s", args, err, r.stdout)
		}
	}
}

// mustFail runs the CLI and requires the exit code and a one-line stderr
// containing want.
func mustFail(tb testing.TB, code int, want string, stdin io.Reader, args ...string) {
	tb.Helper()
	r := runCLI(tb, stdin, args...)
	if r.code != code {
		tb.Fatalf("%v: exit %d, want %d (stderr %q)", args, r.code, code, r.stderr)
	}
	if strings.Count(r.stderr, "\n") != 1 || !strings.HasSuffix(r.stderr, "\n") {
		tb.Errorf("%v: stderr is not one line: %q", args, r.stderr)
	}
	if !strings.Contains(r.stderr, want) {
		tb.Errorf("%v: stderr %q lacks %q", args, r.stderr, want)
	}
	if r.stdout != "" && code == exitUsage {
		tb.Errorf("%v: stdout %q on a usage error", args, r.stdout)
	}
}

// mustEnroll enrolls a fresh device for email and returns its state file.
func mustEnroll(tb testing.TB, f *deviceapitest.Fake, email string) (string, deviceapi.Device) {
	tb.Helper()
	token := "inv_" + strings.NewReplacer("@", "_", ".", "_").Replace(email) + "_" + filepath.Base(tb.TempDir())
	f.AddInvitation(token, email)
	st := filepath.Join(tb.TempDir(), "device.json")
	var res deviceapi.EnrollResponse
	mustOK(tb, &res, nil, "enroll", "--server", f.URL, "--token", token, "--state", st, "--name", "ci phone")
	return st, res.Device
}

func mustReadState(tb testing.TB, path string) state {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		tb.Fatal(err)
	}
	return st
}

func TestUsage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st := filepath.Join(dir, "s.json")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown command", []string{"fly"}, `unknown command "fly"`},
		{"unknown flag", []string{"devices", "--state", st, "--bogus"}, "flag provided but not defined"},
		{"extra argument", []string{"devices", "--state", st, "extra"}, `unexpected argument "extra"`},
		{"devices without state", []string{"devices"}, "--state is required"},
		{"enroll without server", []string{"enroll", "--token", "t", "--state", st}, "--server is required"},
		{"enroll without state", []string{"enroll", "--server", "http://x", "--token", "t"}, "--state is required"},
		{"enroll with token and email", []string{"enroll", "--server", "http://x", "--token", "t", "--email", "a@b.c", "--state", st}, "exactly one of --token and --email"},
		{"enroll with neither", []string{"enroll", "--server", "http://x", "--state", st}, "exactly one of --token and --email"},
		{"code without email", []string{"enroll", "--server", "http://x", "--token", "t", "--code", "1", "--state", st}, "--code goes with --email"},
		{"bad server URL", []string{"enroll", "--server", "ftp://x", "--token", "t", "--state", st}, "--server must be"},
		{"empty name", []string{"enroll", "--server", "http://x", "--token", "t", "--state", st, "--name", " "}, "--name must not be empty"},
		{"approve without number", []string{"approve", "--state", st}, "--number is required"},
		{"approve number not a number", []string{"approve", "--state", st, "--number", "x"}, "invalid value"},
		{"approve zero timeout", []string{"approve", "--state", st, "--number", "12", "--timeout", "0s"}, "--timeout must be positive"},
		{"approve one digit", []string{"approve", "--state", st, "--number", "5"}, "two-digit number"},
		{"approve three digits", []string{"approve", "--state", st, "--number", "100"}, "two-digit number"},
		{"deny bad timeout", []string{"deny", "--state", st, "--timeout", "soon"}, "invalid value"},
		{"rename without name", []string{"rename", "--state", st}, "--name is required"},
		{"remove without device", []string{"remove", "--state", st}, "--device is required"},
		{"push-token without token", []string{"push-token", "--state", st}, "--fcm-token is required"},
		{"email-code without email", []string{"email-code", "--server", "http://x"}, "--server and --email are required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mustFail(t, exitUsage, tc.want, nil, tc.args...)
		})
	}
	t.Run("no arguments", func(t *testing.T) {
		r := runCLI(t, nil)
		if r.code != exitUsage || !strings.Contains(r.stderr, "usage:") || r.stdout != "" {
			t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("help", func(t *testing.T) {
		r := runCLI(t, nil, "help")
		if r.code != exitOK || !strings.Contains(r.stdout, "passport-device enroll") && !strings.Contains(r.stdout, "enroll --server") {
			t.Fatalf("exit %d, stdout %q", r.code, r.stdout)
		}
	})
	t.Run("command -h", func(t *testing.T) {
		if r := runCLI(t, nil, "approve", "-h"); r.code != exitOK {
			t.Fatalf("exit %d", r.code)
		}
	})
	if _, err := os.Stat(st); !os.IsNotExist(err) {
		t.Errorf("a usage error left a state file behind: %v", err)
	}
}

func TestEnrollByToken(t *testing.T) {
	t.Parallel()
	f := deviceapitest.NewServer(t)
	path, dev := mustEnroll(t, f, "ann@example.com")

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode = %v, want 0600", fi.Mode().Perm())
	}
	st := mustReadState(t, path)
	if st.Server != f.URL || st.DeviceID != dev.ID || st.Email != "ann@example.com" ||
		!strings.HasPrefix(st.PrivateKey, "-----BEGIN PRIVATE KEY-----") {
		t.Errorf("state = %+v", st)
	}
	if got, _, ok := f.Device(dev.ID); !ok || got.Name != "ci phone" || got.Platform != "cli" {
		t.Errorf("server device = %+v, %v", got, ok)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the state file", len(entries))
	}

	t.Run("refuses to overwrite", func(t *testing.T) {
		f.AddInvitation("inv_second", "ann@example.com")
		mustFail(t, exitFail, "already exists", nil, "enroll", "--server", f.URL, "--token", "inv_second", "--state", path)
		if again := mustReadState(t, path); again != st {
			t.Errorf("state file changed: %+v", again)
		}
		if calls := f.Calls(); calls[len(calls)-1].Operation != "enrollByInvitation" || len(calls) != 1 {
			t.Errorf("the server was asked although the state file exists: %d calls", len(calls))
		}
	})
	t.Run("--force replaces", func(t *testing.T) {
		var res deviceapi.EnrollResponse
		mustOK(t, &res, nil, "enroll", "--server", f.URL+"/", "--token", "inv_second", "--state", path, "--force", "--fcm-token", "fcm-x", "--platform", "android")
		now := mustReadState(t, path)
		if now.DeviceID != res.Device.ID || now.DeviceID == st.DeviceID || now.PrivateKey == st.PrivateKey || now.Server != f.URL {
			t.Errorf("state after --force = %+v", now)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("mode after --force = %v, %v", fi.Mode().Perm(), err)
		}
		if _, tok, _ := f.Device(res.Device.ID); tok != "fcm-x" {
			t.Errorf("fcm token = %q", tok)
		}
		if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
			t.Errorf("--force left %d entries (temporary file?)", len(entries))
		}
	})
	t.Run("refused invitation leaves no file", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "s.json")
		mustFail(t, exitFail, "invitation_invalid", nil, "enroll", "--server", f.URL, "--token", "inv_nope", "--state", p)
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("state file left behind: %v", err)
		}
	})
	t.Run("server unreachable", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "s.json")
		mustFail(t, exitFail, "enroll", nil, "enroll", "--server", "http://127.0.0.1:1", "--token", "t", "--state", p)
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("state file left behind: %v", err)
		}
	})
	t.Run("state directory missing", func(t *testing.T) {
		mustFail(t, exitFail, "create state", nil, "enroll", "--server", f.URL, "--token", "t", "--state", filepath.Join(t.TempDir(), "no", "s.json"))
	})
}

// codeReader answers the first Read with the code the fake last mailed: by
// then passport-device has asked for it.
type codeReader struct {
	f     *deviceapitest.Fake
	email string
	done  bool
}

func (r *codeReader) Read(p []byte) (int, error) {
	if r.done {
		return 0, io.EOF
	}
	r.done = true
	return copy(p, r.f.EmailCode(r.email)+"\n"), nil
}

func TestEnrollByEmail(t *testing.T) {
	t.Parallel()
	f := deviceapitest.NewServer(t)

	t.Run("code from stdin", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "s.json")
		var res deviceapi.EnrollResponse
		mustOK(t, &res, &codeReader{f: f, email: "bob@example.com"}, "enroll", "--server", f.URL, "--email", "bob@example.com", "--state", p)
		if res.Device.Email != "bob@example.com" || mustReadState(t, p).DeviceID != res.Device.ID {
			t.Errorf("device = %+v", res.Device)
		}
	})
	t.Run("code from --code after email-code", func(t *testing.T) {
		var sent deviceapi.RequestEmailCodeResponse
		mustOK(t, &sent, nil, "email-code", "--server", f.URL, "--email", "cy@example.com")
		if sent.ExpiresAt.IsZero() {
			t.Error("no expires_at")
		}
		p := filepath.Join(t.TempDir(), "s.json")
		var res deviceapi.EnrollResponse
		mustOK(t, &res, nil, "enroll", "--server", f.URL, "--email", "cy@example.com", "--code", f.EmailCode("cy@example.com"), "--state", p)
		if res.Device.Email != "cy@example.com" {
			t.Errorf("device = %+v", res.Device)
		}
		calls := f.Calls()
		if last := calls[len(calls)-1]; last.Operation != "enrollByEmail" || calls[len(calls)-2].Operation != "requestEmailCode" {
			t.Errorf("--code asked for a new code, voiding the one given")
		}
	})
	t.Run("empty stdin", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "s.json")
		mustFail(t, exitFail, "no code given", strings.NewReader(""), "enroll", "--server", f.URL, "--email", "dee@example.com", "--state", p)
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("state file left behind: %v", err)
		}
	})
	t.Run("wrong code", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "s.json")
		mustFail(t, exitFail, "code_invalid", strings.NewReader("000000x\n"), "enroll", "--server", f.URL, "--email", "eve@example.com", "--state", p)
	})
	t.Run("domain refused", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "s.json")
		mustFail(t, exitFail, "email_not_allowed", nil, "enroll", "--server", f.URL, "--email", "x@blocked.example", "--state", p)
	})
}

func TestDevicesAndManagement(t *testing.T) {
	t.Parallel()
	f := deviceapitest.NewServer(t)
	path, me := mustEnroll(t, f, "ann@example.com")
	otherPath, other := mustEnroll(t, f, "ann@example.com")

	var list deviceapi.DeviceList
	mustOK(t, &list, nil, "devices", "--state", path)
	if len(list.Devices) != 2 || list.Devices[0].ID != me.ID || !list.Devices[0].Current {
		t.Errorf("devices = %+v", list.Devices)
	}

	var d deviceapi.Device
	mustOK(t, &d, nil, "rename", "--state", path, "--name", "work phone")
	if d.ID != me.ID || d.Name != "work phone" {
		t.Errorf("rename (own) = %+v", d)
	}
	mustOK(t, &d, nil, "rename", "--state", path, "--device", other.ID, "--name", "old phone")
	if d.ID != other.ID || d.Name != "old phone" {
		t.Errorf("rename (other) = %+v", d)
	}

	mustOK(t, &d, nil, "push-token", "--state", path, "--fcm-token", "fcm-new")
	if _, tok, _ := f.Device(me.ID); tok != "fcm-new" || d.PushStatus != deviceapi.PushOK {
		t.Errorf("push token = %q, status %q", tok, d.PushStatus)
	}
	mustOK(t, &d, nil, "push-token", "--state", path, "--fcm-token", "")
	if d.PushStatus != deviceapi.PushNone {
		t.Errorf("empty token: push_status = %q", d.PushStatus)
	}

	var removed map[string]any
	mustOK(t, &removed, nil, "remove", "--state", path, "--device", other.ID)
	if removed["device_id"] != other.ID || removed["removed"] != true {
		t.Errorf("remove output = %v", removed)
	}
	mustFail(t, exitFail, "device_revoked", nil, "devices", "--state", otherPath)
	mustFail(t, exitFail, "not_found", nil, "remove", "--state", path, "--device", "dev_nope")

	t.Run("missing state file", func(t *testing.T) {
		mustFail(t, exitFail, "read state", nil, "devices", "--state", filepath.Join(t.TempDir(), "none.json"))
	})
	t.Run("corrupt state file", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "bad.json")
		if err := os.WriteFile(p, []byte(`{"server":"http://x","device_id":"d","private_key":"nope"}`), 0o600); err != nil {
			t.Fatal(err)
		}
		mustFail(t, exitFail, "not a PEM PKCS#8 key", nil, "pending", "--state", p)
	})
}

func TestPendingApproveDeny(t *testing.T) {
	t.Parallel()
	f := deviceapitest.NewServer(t)
	path, _ := mustEnroll(t, f, "ann@example.com")

	var list deviceapi.ChallengeList
	mustOK(t, &list, nil, "pending", "--state", path)
	if len(list.Challenges) != 0 {
		t.Fatalf("pending = %+v", list.Challenges)
	}

	t.Run("approve a pending challenge", func(t *testing.T) {
		ch := f.AddChallenge("ann@example.com", 42)
		mustOK(t, &list, nil, "pending", "--state", path)
		if len(list.Challenges) != 1 || list.Challenges[0].ID != ch.ID {
			t.Fatalf("pending = %+v", list.Challenges)
		}
		var out answerOutput
		mustOK(t, &out, nil, "approve", "--state", path, "--number", "42")
		if out.State != deviceapi.StateApproved || out.Challenge.ID != ch.ID {
			t.Errorf("approve output = %+v", out)
		}
		if now, _, _ := f.Challenge(ch.ID); now.State != deviceapi.StateApproved {
			t.Errorf("server state = %q", now.State)
		}
	})
	t.Run("approve waits for the sign-in showing its number", func(t *testing.T) {
		other := f.AddChallenge("ann@example.com", 33) // someone else's: never approved in its place
		done := make(chan result, 1)
		go func() { done <- runCLI(t, nil, "approve", "--state", path, "--number", "17", "--timeout", "60s") }()
		<-f.Missed()
		ch := f.AddChallenge("ann@example.com", 17)
		r := <-done
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		var out answerOutput
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out.Challenge.ID != ch.ID || out.State != deviceapi.StateApproved {
			t.Errorf("output %q (%v)", r.stdout, err)
		}
		if now, _, _ := f.Challenge(other.ID); now.State != deviceapi.StatePending {
			t.Errorf("the other sign-in is %q, want it left pending", now.State)
		}
		mustOK(t, nil, nil, "deny", "--state", path)
	})
	t.Run("a number no sign-in shows approves nothing", func(t *testing.T) {
		ch := f.AddChallenge("ann@example.com", 42)
		mustFail(t, exitFail, "no open sign-in showing 24 within 1ms", nil, "approve", "--state", path, "--number", "24", "--timeout", "1ms")
		if now, _, _ := f.Challenge(ch.ID); now.State != deviceapi.StatePending {
			t.Errorf("server state = %q, want the sign-in left pending", now.State)
		}
		mustOK(t, nil, nil, "deny", "--state", path)
	})
	t.Run("no challenge within the timeout", func(t *testing.T) {
		mustFail(t, exitFail, "no open sign-in showing 42 within 1ms", nil, "approve", "--state", path, "--number", "42", "--timeout", "1ms")
	})
	t.Run("deny", func(t *testing.T) {
		ch := f.AddChallenge("ann@example.com", 42)
		var out answerOutput
		mustOK(t, &out, nil, "deny", "--state", path)
		if out.State != deviceapi.StateDenied || out.Challenge.ID != ch.ID {
			t.Errorf("deny output = %+v", out)
		}
		if _, reported, _ := f.Challenge(ch.ID); reported {
			t.Error("plain deny reported")
		}
	})
	t.Run("deny --report", func(t *testing.T) {
		ch := f.AddChallenge("ann@example.com", 42)
		mustOK(t, nil, nil, "deny", "--state", path, "--report")
		if now, reported, _ := f.Challenge(ch.ID); now.State != deviceapi.StateDenied || !reported {
			t.Errorf("state %q, reported %v", now.State, reported)
		}
	})
	t.Run("another user's challenge is not answered", func(t *testing.T) {
		ch := f.AddChallenge("zed@example.com", 42)
		mustFail(t, exitFail, "no open sign-in showing 42", nil, "approve", "--state", path, "--number", "42", "--timeout", "1ms")
		if now, _, _ := f.Challenge(ch.ID); now.State != deviceapi.StatePending {
			t.Errorf("state = %q", now.State)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		var out, errb bytes.Buffer
		if code := run(ctx, []string{"approve", "--state", path, "--number", "42"}, strings.NewReader(""), &out, &errb); code != exitFail {
			t.Fatalf("exit %d, stderr %q", code, errb.String())
		}
	})
}
