package saml

import (
	"go/build"
	"strings"
	"testing"
)

// TestImports holds the architecture line: saml is pure protocol and imports
// no other Passport package, no HTTP framework and no store. Of the other SAML
// libraries only crewjam/saml's xmlenc package may be used, for XML
// encryption (it imports nothing of crewjam/saml itself).
func TestImports(t *testing.T) {
	t.Parallel()
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkg.Imports) == 0 {
		t.Fatal("no imports found")
	}
	for _, imp := range pkg.Imports {
		if imp == "github.com/crewjam/saml/xmlenc" {
			continue
		}
		for _, banned := range []string{"github.com/winkk/passport", "github.com/labstack/echo", "github.com/redis/", "github.com/alicebob/miniredis", "net/http", "github.com/crewjam/saml", "github.com/russellhaering/gosaml2"} {
			if strings.HasPrefix(imp, banned) {
				t.Errorf("saml imports %s", imp)
			}
		}
	}
}

// TestSamltestImports keeps samltest usable from saml's own tests: it must
// not import saml (an import cycle) nor any other Passport package.
func TestSamltestImports(t *testing.T) {
	t.Parallel()
	pkg, err := build.ImportDir("samltest", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		if strings.HasPrefix(imp, "github.com/winkk/passport") {
			t.Errorf("samltest imports %s", imp)
		}
	}
}
