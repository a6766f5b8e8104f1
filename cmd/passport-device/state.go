package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/winkk/passport/api/deviceapi"
)

// state is the device's state file.
type state struct {
	Server     string `json:"server"`
	DeviceID   string `json:"device_id"`
	Email      string `json:"email"`
	PrivateKey string `json:"private_key"` // PEM, PKCS#8
	// OfflineCode is the offline-code secret the server gave at enrollment (absent when it has them off).
	OfflineCode *deviceapi.OfflineCode `json:"offline_code,omitempty"`
}

func encodeKey(k *ecdsa.PrivateKey) (string, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return "", fmt.Errorf("encode key: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), nil
}

func loadState(path string) (*state, *ecdsa.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read state: %w", err)
	}
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, nil, fmt.Errorf("read state %s: %w", path, err)
	}
	if st.Server == "" || st.DeviceID == "" {
		return nil, nil, fmt.Errorf("read state %s: server or device_id missing", path)
	}
	blk, _ := pem.Decode([]byte(st.PrivateKey))
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, nil, fmt.Errorf("read state %s: private_key is not a PEM PKCS#8 key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("read state %s: %w", path, err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, nil, fmt.Errorf("read state %s: private_key is not a P-256 key", path)
	}
	return &st, ek, nil
}

// stateWriter reserves the state file before the device enrolls, so a file
// that cannot be written is known before the server is asked, and writes it
// once enrollment succeeded. Without force it creates the file itself with
// O_EXCL (never overwriting); with force it writes a temporary file in the
// same directory and renames it over the old one. Either way the file has
// mode 0600 from its creation on.
type stateWriter struct {
	path string
	f    *os.File
	tmp  bool
}

var errStateExists = errors.New("state file already exists (use --force to replace it)")

func reserveState(path string, force bool) (*stateWriter, error) {
	if !force {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("%s: %w", path, errStateExists)
		}
		if err != nil {
			return nil, fmt.Errorf("create state: %w", err)
		}
		return &stateWriter{path: path, f: f}, nil
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".passport-device-*")
	if err != nil {
		return nil, fmt.Errorf("create state: %w", err)
	}
	return &stateWriter{path: path, f: f, tmp: true}, nil
}

// commit writes st and puts the file in place.
func (w *stateWriter) commit(st *state) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if err := w.f.Chmod(0o600); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if _, err := w.f.Write(append(data, '\n')); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if w.tmp {
		if err := os.Rename(w.f.Name(), w.path); err != nil {
			return fmt.Errorf("write state: %w", err)
		}
	}
	w.f = nil
	return nil
}

// abort removes what reserveState created, unless commit succeeded.
func (w *stateWriter) abort() {
	if w.f == nil {
		return
	}
	_ = w.f.Close()
	_ = os.Remove(w.f.Name())
}
