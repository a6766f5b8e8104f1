package authn_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLayers holds the architecture: dependencies point inward (cmd → api → authn, saml; authn → store,
// push), only api knows echo, and saml, push and store import nothing of ours.
func TestLayers(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "github.com/winkk/passport/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const mod = "github.com/winkk/passport/"
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg, imports := strings.TrimPrefix(f[0], mod), f[1:]
		top := strings.SplitN(pkg, "/", 2)[0]
		for _, imp := range imports {
			ours := strings.HasPrefix(imp, mod)
			dep := strings.TrimPrefix(imp, mod)
			depTop := strings.SplitN(dep, "/", 2)[0]
			switch {
			case strings.HasPrefix(imp, "github.com/labstack/echo") && pkg != "api":
				t.Errorf("%s imports echo: only package api may", pkg)
			case !ours || depTop == top:
			case top == "saml" || top == "push" || top == "store":
				t.Errorf("%s imports %s: saml, push and store import nothing of ours", pkg, dep)
			case top == "authn" && depTop != "store" && depTop != "push":
				t.Errorf("%s imports %s: authn depends only on store and push", pkg, dep)
			case top == "api" && depTop == "cmd":
				t.Errorf("%s imports %s: nothing imports cmd", pkg, dep)
			}
		}
	}
}
