package authn_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// allowed lists, for each layer, the layers of ours its (non-test) code may import; a package's layer is its
// import path without the module, cut at the first of these prefixes that matches. Dependencies point inward:
//
//	cmd → api (faces) → authn/sso (flows) → authn (core) → store, push
//	                                      → saml (protocol)
//	api, api/console → api/qrimage (QR images)
//
// Test helper packages (samltest, storetest, apitest, ...) are not a layer: they may use anything but cmd.
var allowed = map[string][]string{
	"cmd":               {"api", "authn/sso", "authn/audit", "authn", "authn/deviceproof", "saml", "store", "push"},
	"api":               {"api", "api/console", "api/qrimage", "authn/sso", "authn/audit", "authn", "authn/deviceproof"},
	"api/console":       {"api/qrimage", "authn/sso", "authn/audit", "authn"},
	"api/qrimage":       {},
	"authn/sso":         {"authn", "saml"},
	"authn/audit":       {"authn", "store"},
	"authn/deviceproof": {},
	"authn":             {"authn/deviceproof", "store", "push"},
	"saml":              {},
	"push":              {},
	"store":             {},
}

// layerOf names the layer of a package path (without the module prefix).
func layerOf(pkg string) string {
	for _, l := range []string{"authn/sso", "authn/audit", "authn/deviceproof", "authn", "api/console", "api/qrimage", "api", "cmd", "saml", "push", "store"} {
		if pkg == l || strings.HasPrefix(pkg, l+"/") {
			return l
		}
	}
	return pkg
}

// TestLayers holds the architecture: each layer imports only what allowed lets it, only the faces (api)
// know echo, and saml, push and store import nothing of ours.
func TestLayers(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "github.com/winkk/passport/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const mod = "github.com/winkk/passport/"
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg, imports := strings.TrimPrefix(f[0], mod), f[1:]
		layer := layerOf(pkg)
		helper := strings.HasSuffix(pkg, "test")
		seen[layer] = true
		if _, ok := allowed[layer]; !ok {
			t.Errorf("package %s is in no layer: add it to allowed", pkg)
			continue
		}
		for _, imp := range imports {
			if strings.HasPrefix(imp, "github.com/labstack/echo") && layer != "api" && layer != "api/console" && layer != "cmd" {
				t.Errorf("%s imports echo: only the faces (api) may", pkg)
			}
			if !strings.HasPrefix(imp, mod) {
				continue
			}
			dep := layerOf(strings.TrimPrefix(imp, mod))
			switch {
			case dep == layer:
			case helper && dep != "cmd":
			case !slices.Contains(allowed[layer], dep):
				t.Errorf("%s imports %s: %s may import only %v", pkg, imp, layer, allowed[layer])
			}
		}
	}
	for _, l := range []string{"api", "api/console", "authn/sso", "authn", "saml", "store", "push", "cmd"} {
		if !seen[l] {
			t.Errorf("no package found in layer %s: is the test reading the module?", l)
		}
	}
}
