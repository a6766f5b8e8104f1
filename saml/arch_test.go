package saml

import (
	"go/build"
	"strings"
	"testing"
)

// TestImports holds the architecture line: saml is pure protocol and imports
// no other Passport package, no HTTP framework and no store.
func TestImports(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkg.Imports) == 0 {
		t.Fatal("no imports found")
	}
	for _, imp := range pkg.Imports {
		for _, banned := range []string{"github.com/winkk/passport", "github.com/labstack/echo", "github.com/redis/", "github.com/alicebob/miniredis", "net/http", "github.com/crewjam/saml", "github.com/russellhaering/gosaml2"} {
			if strings.HasPrefix(imp, banned) {
				t.Errorf("saml imports %s", imp)
			}
		}
	}
}
