// Package fuzzcorpus keeps the seed corpora of the module's fuzz targets: the files under
// testdata/fuzz/<FuzzName>/ that go test runs as ordinary test cases and that go test -fuzz starts
// exploring from. A target declares its seeds in code (valid inputs and the interesting near-misses, some
// of them signed, which only code can make) and calls [Use]; go test with -fuzzcorpus.write writes the new
// ones as files in Go's corpus format ("go test fuzz v1"):
//
//	go test ./saml -run '^Fuzz' -fuzzcorpus.write
//
// Crashers the fuzzer finds are written there by go test itself, under names of its own, and stay as
// regression tests.
//
// It imports nothing of Passport's, so any package's tests may use it; it lives beside samltest, the other
// test helper that imports nothing of ours.
package fuzzcorpus

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var write = flag.Bool("fuzzcorpus.write", false, "write the fuzz targets' declared seeds under testdata/fuzz")

// Prefix starts the file name of every declared seed, telling them from the fuzzer's finds.
const Prefix = "seed-"

// Seed is one entry of a corpus: the arguments of one call of the fuzz function, in order.
type Seed struct {
	// Name is the file name without Prefix: lower case, digits and dashes.
	Name   string
	Values []any
}

// Use makes seeds the corpus of f's target. With -fuzzcorpus.write it writes each seed that has no file yet
// to testdata/fuzz/<FuzzName>/seed-<Name> and removes seed- files no longer declared; the fuzzer's own finds
// are left alone, and so are existing seed files (signatures are often drawn anew each run: delete a file to
// have it written again). Without it, Use fails f when a declared seed has no file, so the corpus on disk and
// the code that declares it cannot drift apart unnoticed. It must be called before f.Fuzz, and declare the
// same names on every run: every fuzzing worker process runs it too.
func Use(f *testing.F, seeds []Seed) {
	f.Helper()
	dir := filepath.Join("testdata", "fuzz", f.Name())
	names := map[string]bool{}
	for _, s := range seeds {
		if s.Name == "" || strings.Trim(s.Name, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
			f.Fatalf("fuzzcorpus: seed name %q: want lower case, digits and dashes", s.Name)
		}
		if names[s.Name] {
			f.Fatalf("fuzzcorpus: seed %q declared twice", s.Name)
		}
		names[s.Name] = true
	}
	if !*write {
		for _, s := range seeds {
			if _, err := os.Stat(filepath.Join(dir, Prefix+s.Name)); err != nil {
				f.Fatalf("fuzzcorpus: seed %q has no corpus file (%v); run go test -run '^%s$' -fuzzcorpus.write", s.Name, err, f.Name())
			}
		}
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.Fatal(err)
	}
	old, err := os.ReadDir(dir)
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range old {
		if name, ok := strings.CutPrefix(e.Name(), Prefix); ok && !names[name] {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				f.Fatal(err)
			}
		}
	}
	for _, s := range seeds {
		b, err := Marshal(s.Values...)
		if err != nil {
			f.Fatalf("fuzzcorpus: seed %q: %v", s.Name, err)
		}
		path := filepath.Join(dir, Prefix+s.Name)
		if _, err := os.Stat(path); err == nil {
			continue
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			f.Fatal(err)
		}
	}
}

// Marshal encodes the arguments of one fuzz call in Go's corpus file format, as go test writes it.
func Marshal(values ...any) ([]byte, error) {
	if len(values) == 0 {
		return nil, fmt.Errorf("no values")
	}
	b := bytes.NewBufferString("go test fuzz v1\n")
	for _, v := range values {
		switch t := v.(type) {
		case int, int8, int16, int64, uint, uint16, uint32, uint64, bool:
			fmt.Fprintf(b, "%T(%v)\n", t, t)
		case string:
			fmt.Fprintf(b, "string(%q)\n", t)
		case byte:
			fmt.Fprintf(b, "byte(%q)\n", t)
		case []byte:
			fmt.Fprintf(b, "[]byte(%q)\n", t)
		default:
			return nil, fmt.Errorf("unsupported type %T", v)
		}
	}
	return b.Bytes(), nil
}
