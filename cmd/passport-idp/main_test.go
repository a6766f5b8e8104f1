package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/store"
	"github.com/winkk/passport/store/storetest"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// startServer runs the whole program and returns its address once it logged that it started, the start-up
// log line, and a stop function that waits for run to return.
func startServer(t *testing.T, args []string, vars map[string]string) (string, map[string]any, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, args, env(vars), pw, io.Discard)
		pw.Close()
	}()
	var lines []map[string]any
	started := make(chan map[string]any, 1)
	logs := make(chan []map[string]any, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				lines = append(lines, m)
				if m["msg"] == "passport-idp started" {
					started <- m
				}
			}
		}
		logs <- lines
	}()
	var line map[string]any
	select {
	case line = <-started:
	case err := <-done:
		t.Fatalf("run ended before starting: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the server did not start")
	}
	stop := func() error {
		cancel()
		err := <-done
		lines = <-logs
		return err
	}
	return line["listen"].(string), line, stop
}

func TestRunOnEmbeddedDefaults(t *testing.T) {
	addr, _, stop := startServer(t, []string{"--listen", "127.0.0.1:0"}, nil)
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/saml/certificate.pem"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", path, resp.StatusCode)
		}
	}
	// Without a metrics listener, /metrics is on the main one for loopback clients (this test is one), and
	// the profiles are nowhere.
	if st, body := get(t, "http://"+addr+"/metrics"); st != http.StatusOK || !strings.Contains(body, "process_cpu_seconds_total") {
		t.Errorf("GET /metrics from loopback: %d\n%.300s", st, body)
	}
	if st, _ := get(t, "http://"+addr+"/debug/pprof/"); st != http.StatusNotFound {
		t.Errorf("GET /debug/pprof/ without PASSPORT_PPROF: %d, want 404", st)
	}
	if err := stop(); err != nil {
		t.Fatalf("run returned %v after a clean shutdown", err)
	}
}

// get fetches u and returns the status and body.
func get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestMetricsListener: with PASSPORT_METRICS_LISTEN the metrics (with the process's CPU and memory) are served
// only there, on an http.Server of their own that shuts down with the main one; with PASSPORT_PPROF=on the
// runtime profiles are served there too, never on the main listener.
func TestMetricsListener(t *testing.T) {
	for _, pprof := range []string{"on", "off"} {
		t.Run("PASSPORT_PPROF="+pprof, func(t *testing.T) {
			addr, line, stop := startServer(t, []string{"--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"}, map[string]string{"PASSPORT_PPROF": pprof})
			metricsAddr, _ := line["metrics_listen"].(string)
			if metricsAddr == "" || metricsAddr == addr {
				t.Fatalf("the start-up log names no metrics listener of its own: %v", line)
			}
			main, ops := "http://"+addr, "http://"+metricsAddr
			if st, _ := get(t, main+"/healthz"); st != http.StatusOK { // a request to count
				t.Fatalf("GET /healthz: %d", st)
			}
			st, body := get(t, ops+"/metrics")
			if st != http.StatusOK {
				t.Fatalf("GET /metrics on the metrics listener: %d", st)
			}
			for _, name := range []string{"process_cpu_seconds_total", "process_resident_memory_bytes", "go_goroutines", "passport_http_requests_total", "passport_streams_open"} {
				if !strings.Contains(body, "\n"+name+" ") && !strings.Contains(body, "\n"+name+"{") {
					t.Errorf("the metrics lack %s", name)
				}
			}
			if st, _ := get(t, main+"/metrics"); st != http.StatusNotFound {
				t.Errorf("GET /metrics on the main listener, loopback client: %d, want 404", st)
			}
			for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1"} {
				if st, _ := get(t, main+path); st != http.StatusNotFound {
					t.Errorf("GET %s on the main listener: %d, want 404", path, st)
				}
				want := http.StatusNotFound
				if pprof == "on" {
					want = http.StatusOK
				}
				if st, _ := get(t, ops+path); st != want {
					t.Errorf("GET %s on the metrics listener: %d, want %d", path, st, want)
				}
			}
			if st, _ := get(t, ops+"/healthz"); st != http.StatusNotFound {
				t.Errorf("the metrics listener serves the API: /healthz %d", st)
			}
			if err := stop(); err != nil {
				t.Fatalf("run returned %v after a clean shutdown", err)
			}
			if c, err := net.Dial("tcp", metricsAddr); err == nil {
				c.Close()
				t.Error("the metrics listener still accepts connections after shutdown")
			}
		})
	}
}

func TestStartupLogSaysWhatItUses(t *testing.T) {
	var buf bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	pr, pw := io.Pipe()
	go func() { done <- run(ctx, []string{"--listen", "127.0.0.1:0"}, env(nil), pw, io.Discard); pw.Close() }()
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		buf.Write(sc.Bytes())
		buf.WriteByte('\n')
		if strings.Contains(sc.Text(), "passport-idp started") {
			cancel()
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"embedded in-memory store", "data is lost", `"admin_token":"`, `"base_url":"http://localhost:8080"`, "devices pull", `"mail":"logged`, `"entity_id":"Winkk Passport IdP"`, "shutting down", "stopped"} {
		if !strings.Contains(strings.ToLower(out), strings.ToLower(want)) {
			t.Errorf("start-up log lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, `"admin_token":"`) != 1 {
		t.Error("the admin token must be printed exactly once")
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		vars map[string]string
		want string
	}{
		{args: []string{"--login-ttl", "soon"}, want: "PASSPORT_LOGIN_TTL"},
		{vars: map[string]string{"PASSPORT_SESSION_TTL": "-1h"}, want: "PASSPORT_SESSION_TTL"},
		{vars: map[string]string{"PASSPORT_CLOCK_SKEW": "1h"}, want: "PASSPORT_CLOCK_SKEW: 1h is out of bounds"},
		{vars: map[string]string{"PASSPORT_PPROF": "on"}, want: "PASSPORT_PPROF=on needs PASSPORT_METRICS_LISTEN"},
		{vars: map[string]string{"PASSPORT_PPROF": "yes", "PASSPORT_METRICS_LISTEN": "127.0.0.1:0"}, want: "PASSPORT_PPROF"},
		{vars: map[string]string{"PASSPORT_METRICS_LISTEN": "127.0.0.1:no-port"}, want: "listen for metrics"},
		{args: []string{"--login-ttl", "5s"}, want: "PASSPORT_LOGIN_TTL: 5s is out of bounds"},
		{args: []string{"extra"}, want: "unexpected argument"},
		{args: []string{"--no-such-flag"}, want: "flag provided but not defined"},
		{vars: map[string]string{"PASSPORT_SIGNING_KEY_FILE": "/k.pem"}, want: "go together"},
		{vars: map[string]string{"PASSPORT_KEY_ENCRYPTION_KEY": "c2hvcnQ="}, want: "32 bytes"},
		{vars: map[string]string{"PASSPORT_REDIS_URL": "mysql://x"}, want: "open store"},
		{vars: map[string]string{"PASSPORT_BASE_URL": "not a url"}, want: "base URL"},
		{vars: map[string]string{"PASSPORT_SMTP_URL": "http://mail"}, want: "SMTP URL"},
		{vars: map[string]string{"PASSPORT_FCM_CREDENTIALS": "/nonexistent.json"}, want: "FCM"},
		{vars: map[string]string{"PASSPORT_FCM_ENDPOINT": "http://127.0.0.1:9099/v1"}, want: "only with PASSPORT_FCM_CREDENTIALS"},
		{vars: map[string]string{"PASSPORT_ADMIN_EMAILS": "boss@example.com, not an address"}, want: "PASSPORT_ADMIN_EMAILS"},
		{vars: map[string]string{"PASSPORT_FCM_CREDENTIALS": "/c.json", "PASSPORT_FCM_ENDPOINT": "notaurl"}, want: "PASSPORT_FCM_ENDPOINT"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := run(ctx, append([]string{"--listen", "127.0.0.1:0"}, tc.args...), env(tc.vars), io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error about %q", err, tc.want)
			}
		})
	}
}

// TestDurationBounds: each duration is refused outside the bounds a deployment can use, with a message naming
// the variable and the bounds, and accepted at the bounds themselves.
func TestDurationBounds(t *testing.T) {
	for _, tc := range []struct {
		env, low, min, max, high, says string
	}{
		{"PASSPORT_LOGIN_TTL", "29s", "30s", "30m", "31m", "between 30s and 30m"},
		{"PASSPORT_SESSION_TTL", "59s", "1m", "720h", "721h", "between 1m and 720h"},
		{"PASSPORT_ASSERTION_TTL", "59s", "1m", "1h", "61m", "between 1m and 1h"},
		{"PASSPORT_CLOCK_SKEW", "999ms", "1s", "10m", "10m1s", "between 1s and 10m"},
	} {
		t.Run(tc.env, func(t *testing.T) {
			for _, v := range []string{tc.low, tc.high} {
				_, err := parseConfig(nil, env(map[string]string{tc.env: v}), io.Discard)
				if err == nil || !strings.Contains(err.Error(), tc.env+": "+v+" is out of bounds") || !strings.Contains(err.Error(), tc.says) {
					t.Errorf("%s=%s: %v, want it refused %s", tc.env, v, err, tc.says)
				}
			}
			for _, v := range []string{tc.min, tc.max} {
				if _, err := parseConfig(nil, env(map[string]string{tc.env: v}), io.Discard); err != nil {
					t.Errorf("%s=%s: %v", tc.env, v, err)
				}
			}
		})
	}
}

func TestFlagsOverrideEnvironment(t *testing.T) {
	cfg, err := parseConfig([]string{"--base-url", "https://flag.example"}, env(map[string]string{"PASSPORT_BASE_URL": "https://env.example", "PASSPORT_ENTITY_ID": "Env IdP", "PASSPORT_ALLOWED_DOMAINS": " example.com, @corp.example ,"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.BaseURL != "https://flag.example" || cfg.EntityID != "Env IdP" || cfg.LoginTTL != 5*time.Minute {
		t.Errorf("config %+v", cfg)
	}
	if d := cfg.allowedDomains(); len(d) != 2 || d[0] != "example.com" || d[1] != "corp.example" {
		t.Errorf("allowed domains %q", d)
	}
}

func TestKeysCommand(t *testing.T) {
	url, ok := storetest.RedisURL()
	if !ok {
		t.Skip("keys works on a shared Redis store; none answers here")
	}
	vars := map[string]string{"PASSPORT_REDIS_URL": url, "PASSPORT_REDIS_PREFIX": "test-keys-" + rand.Text() + ":"}
	keys := func(args ...string) map[string]any {
		t.Helper()
		var out bytes.Buffer
		if err := runKeys(context.Background(), args, env(vars), &out, io.Discard); err != nil {
			t.Fatalf("keys %v: %v", args, err)
		}
		var m map[string]any
		if err := json.Unmarshal(out.Bytes(), &m); err != nil {
			t.Fatalf("keys %v printed %q", args, out.String())
		}
		return m
	}
	purgeLater := func(prefix string) {
		t.Cleanup(func() {
			st, err := store.Open(context.Background(), store.Options{URL: url, Prefix: prefix})
			if err == nil {
				_, _ = st.Purge(context.Background())
				st.Close()
			}
		})
	}
	purgeLater(vars["PASSPORT_REDIS_PREFIX"])
	// The command never creates keys: a server starting on the store does.
	if err := runKeys(context.Background(), []string{"status"}, env(vars), io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "start passport-idp") {
		t.Fatalf("status on a store without keys: %v", err)
	}
	startRing := func(kek []byte) {
		t.Helper()
		st, err := store.Open(context.Background(), store.Options{URL: url, Prefix: vars["PASSPORT_REDIS_PREFIX"]})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		svc := authn.New(st, nil, nil, authn.Config{KeyEncryptionKey: kek})
		defer svc.Close()
		if _, err := svc.Keys.Ring(context.Background(), "Winkk Passport IdP"); err != nil {
			t.Fatal(err)
		}
	}
	startRing(nil)
	first := keys("status")
	if first["next"] != nil {
		t.Fatalf("a fresh ring has a next key: %v", first)
	}
	staged := keys("stage")
	next, _ := staged["next"].(map[string]any)
	if next == nil {
		t.Fatalf("stage: %v", staged)
	}
	active := keys("activate", "--grace", "48h")
	cur := active["current"].(map[string]any)
	if cur["sha256"] != next["sha256"] || active["next"] != nil {
		t.Errorf("activate did not promote the staged key: %v", active)
	}
	if prev := active["previous"].([]any); len(prev) != 1 || prev[0].(map[string]any)["sha256"] != first["current"].(map[string]any)["sha256"] {
		t.Errorf("the old certificate is not kept published: %v", active)
	}
	if err := runKeys(context.Background(), []string{"activate"}, env(vars), io.Discard, io.Discard); err == nil {
		t.Error("activate without a staged key succeeded")
	}
	if err := runKeys(context.Background(), []string{"status"}, env(nil), io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "PASSPORT_REDIS_URL") {
		t.Errorf("keys on the embedded store: %v", err)
	}

	t.Run("activate without the key-encryption key changes nothing", func(t *testing.T) {
		kek := bytes.Repeat([]byte{7}, 32)
		vars["PASSPORT_REDIS_PREFIX"] = "test-keys-" + rand.Text() + ":"
		purgeLater(vars["PASSPORT_REDIS_PREFIX"])
		startRing(kek)
		sealed := map[string]string{"PASSPORT_KEY_ENCRYPTION_KEY": base64.StdEncoding.EncodeToString(kek)}
		for k, v := range vars {
			sealed[k] = v
		}
		keysWith := func(vs map[string]string, args ...string) (map[string]any, error) {
			var out bytes.Buffer
			err := runKeys(context.Background(), args, env(vs), &out, io.Discard)
			var m map[string]any
			if err == nil {
				err = json.Unmarshal(out.Bytes(), &m)
			}
			return m, err
		}
		before, err := keysWith(sealed, "stage")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := keysWith(vars, "activate"); err == nil {
			t.Fatal("activate without the key-encryption key succeeded")
		}
		after, err := keysWith(sealed, "status")
		if err != nil {
			t.Fatal(err)
		}
		if after["current"].(map[string]any)["sha256"] != before["current"].(map[string]any)["sha256"] || after["next"] == nil {
			t.Errorf("a refused activate changed the ring: before %v, after %v", before, after)
		}
		if _, err := keysWith(sealed, "activate"); err != nil {
			t.Errorf("activate with the key-encryption key: %v", err)
		}
	})
}

func TestTrustedProxies(t *testing.T) {
	cfg, err := parseConfig(nil, env(map[string]string{"PASSPORT_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.7 ,::1"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	nets, _ := cfg.trustedProxies()
	if len(nets) != 3 || nets[1].String() != "192.0.2.7/32" || nets[2].String() != "::1/128" {
		t.Errorf("trusted proxies %v", nets)
	}
	if _, err := parseConfig(nil, env(map[string]string{"PASSPORT_TRUSTED_PROXIES": "proxy.local"}), io.Discard); err == nil {
		t.Error("a host name was accepted as a trusted proxy")
	}
}

// TestSigningKeyFromFiles: with PASSPORT_SIGNING_KEY_FILE and _CERT_FILE the server signs with that key and
// publishes that certificate.
func TestSigningKeyFromFiles(t *testing.T) {
	k, err := authn.GenerateSigningKey("Files IdP", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyFile, certFile := filepath.Join(dir, "key.pem"), filepath.Join(dir, "cert.pem")
	der, _ := x509.MarshalPKCS8PrivateKey(k.Key)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	os.WriteFile(certFile, k.CertificatePEM, 0o600)
	addr, _, stop := startServer(t, []string{"--listen", "127.0.0.1:0"}, map[string]string{"PASSPORT_SIGNING_KEY_FILE": keyFile, "PASSPORT_SIGNING_CERT_FILE": certFile})
	defer stop()
	resp, err := http.Get("http://" + addr + "/saml/certificate.pem")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if !bytes.Equal(got, k.CertificatePEM) {
		t.Error("the server does not publish the certificate of the key files")
	}
	// The keys command, run from a shell that does not know the servers use files, refuses all the same.
	if url, ok := storetest.RedisURL(); ok {
		prefix := "test-static-" + rand.Text() + ":"
		t.Cleanup(func() {
			if st, err := store.Open(context.Background(), store.Options{URL: url, Prefix: prefix}); err == nil {
				_, _ = st.Purge(context.Background())
				st.Close()
			}
		})
		vars := map[string]string{"PASSPORT_REDIS_URL": url, "PASSPORT_REDIS_PREFIX": prefix}
		_, _, stopStatic := startServer(t, []string{"--listen", "127.0.0.1:0"}, map[string]string{"PASSPORT_SIGNING_KEY_FILE": keyFile,
			"PASSPORT_SIGNING_CERT_FILE": certFile, "PASSPORT_REDIS_URL": url, "PASSPORT_REDIS_PREFIX": prefix})
		err := runKeys(context.Background(), []string{"stage"}, env(vars), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "key from files") {
			t.Errorf("keys stage against servers on key files: %v", err)
		}
		stopStatic()
	}
	// A key that does not match its certificate is refused at start.
	other, _ := authn.GenerateSigningKey("Other", time.Now())
	os.WriteFile(certFile, other.CertificatePEM, 0o600)
	err = run(context.Background(), []string{"--listen", "127.0.0.1:0"}, env(map[string]string{"PASSPORT_SIGNING_KEY_FILE": keyFile, "PASSPORT_SIGNING_CERT_FILE": certFile}), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "signing key") {
		t.Errorf("mismatched key files: %v", err)
	}
}

// TestAdminEmails: PASSPORT_ADMIN_EMAILS makes those users administrators at start-up, creating them, and
// when the first has no phone the start-up output invites it: the enrollment link and its QR code drawn in
// the terminal.
func TestAdminEmails(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	vars := map[string]string{"PASSPORT_ADMIN_EMAILS": " Boss@example.com,second@example.com ", "PASSPORT_ADMIN_TOKEN": "t0ken-for-the-test"}
	go func() {
		done <- run(ctx, []string{"--listen", "127.0.0.1:0"}, env(vars), pw, io.Discard)
		pw.Close()
	}()
	var addr, link string
	var qrRows int
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() && link == "" {
		line := sc.Text()
		var m map[string]any
		switch {
		case json.Unmarshal([]byte(line), &m) == nil:
			if m["msg"] == "passport-idp started" {
				addr = m["listen"].(string)
			}
		case strings.ContainsAny(line, "█▀▄"):
			qrRows++
		case strings.Contains(line, "/enroll?token="):
			link = strings.TrimSpace(line)
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if addr == "" || link == "" || qrRows < 10 {
		t.Fatalf("start-up output: listen %q, link %q, %d QR rows", addr, link, qrRows)
	}
	if st, body := get(t, strings.Replace(link, "localhost:8080", addr, 1)); st != http.StatusOK {
		t.Errorf("the printed invitation does not open: %d %.200s", st, body)
	}
	for _, email := range []string{"boss@example.com", "second@example.com"} {
		req, _ := http.NewRequest("GET", "http://"+addr+"/api/v1/admin/users/"+email, nil)
		req.Header.Set("Authorization", "Bearer t0ken-for-the-test")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var u struct {
			Roles []string `json:"roles"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&u)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || len(u.Roles) != 1 || u.Roles[0] != "admin" {
			t.Errorf("%s after start-up: %d %+v", email, resp.StatusCode, u)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}
