package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/push"
	"github.com/winkk/passport/store"
)

const keysUsage = `usage: passport-idp keys status|stage|activate [--grace 720h] [configuration flags]

  status    show the current, staged (next) and retired signing certificates
  stage     create the next key; metadata and /saml/certificate.pem?next publish it beside the current one
  activate  sign with the staged key from now on; the old certificate stays published for --grace

Every running passport-idp on the same store follows the change within seconds.`

// runKeys manages the IdP signing keys kept in the shared store (key rollover without downtime).
func runKeys(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(stderr, keysUsage)
		if len(args) == 0 {
			return errors.New("keys: say status, stage or activate")
		}
		return nil
	}
	action, rest := args[0], args[1:]
	grace := authn.DefaultRolloverGrace
	var cfgArgs []string
	for i := 0; i < len(rest); i++ {
		switch a := rest[i]; {
		case a == "--grace" || a == "-grace":
			if i+1 >= len(rest) {
				return errors.New("keys: --grace needs a duration")
			}
			d, err := time.ParseDuration(rest[i+1])
			if err != nil || d < 0 {
				return fmt.Errorf("keys: --grace %q is not a duration such as 720h", rest[i+1])
			}
			grace = d
			i++
		default:
			cfgArgs = append(cfgArgs, a)
		}
	}
	cfg, err := parseConfig(cfgArgs, getenv, stderr)
	if err != nil {
		return err
	}
	if cfg.SigningKeyFile != "" {
		return errors.New("keys: the signing key is loaded from files (PASSPORT_SIGNING_KEY_FILE); roll it over by replacing the files")
	}
	if cfg.RedisURL == "" {
		return errors.New("keys: set PASSPORT_REDIS_URL to the servers' store (the embedded store lives only inside one server)")
	}
	st, err := store.Open(ctx, store.Options{URL: cfg.RedisURL, Prefix: cfg.RedisPrefix})
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer st.Close()
	log := slog.New(slog.NewTextHandler(stderr, nil))
	svc := authn.New(st, push.LogSender{Logger: log}, push.LogMailer{Logger: log}, authn.Config{Logger: log, KeyEncryptionKey: cfg.keyEncryptionKey()})
	defer svc.Close()

	if static, err := svc.Keys.StaticInUse(ctx); err != nil {
		return fmt.Errorf("keys: %w", err)
	} else if static {
		return errors.New("keys: the servers on this store sign with a key from files (PASSPORT_SIGNING_KEY_FILE); roll it over by replacing the files")
	}
	var ring *authn.KeyRing
	switch action {
	case "status":
		ring, err = svc.Keys.Load(ctx)
	case "stage":
		ring, err = svc.Keys.Stage(ctx, cfg.EntityID)
	case "activate":
		ring, err = svc.Keys.Activate(ctx, grace)
	default:
		fmt.Fprintln(stderr, keysUsage)
		return fmt.Errorf("keys: unknown action %q", action)
	}
	if err != nil {
		return fmt.Errorf("keys %s: %w", action, err)
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(describeRing(ring, time.Now()))
}

type certInfo struct {
	SHA256         string     `json:"sha256"`
	NotAfter       time.Time  `json:"not_after"`
	PublishedUntil *time.Time `json:"published_until,omitempty"`
	Warning        string     `json:"warning,omitempty"`
}

func info(k *authn.SigningKey, now time.Time) *certInfo {
	if k == nil {
		return nil
	}
	sum := sha256.Sum256(k.Certificate.Raw)
	return &certInfo{SHA256: hex.EncodeToString(sum[:]), NotAfter: k.Certificate.NotAfter, Warning: authn.CertificateWarning(k.Certificate, now)}
}

func describeRing(r *authn.KeyRing, now time.Time) map[string]any {
	prev := []certInfo{}
	for _, p := range r.Previous {
		sum := sha256.Sum256(p.Certificate.Raw)
		until := p.Until
		prev = append(prev, certInfo{SHA256: hex.EncodeToString(sum[:]), NotAfter: p.Certificate.NotAfter, PublishedUntil: &until})
	}
	return map[string]any{"current": info(r.Current, now), "next": info(r.Next, now), "previous": prev}
}
