package store

import (
	"go/build"
	"strings"
	"testing"
)

// TestImportsNothingOfOurs holds the layering rule: store knows Redis, not
// Passport, so it imports no package of this module.
func TestImportsNothingOfOurs(t *testing.T) {
	pkg, err := build.Default.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkg.Imports) == 0 {
		t.Fatal("no imports found; is the package loaded?")
	}
	for _, imp := range pkg.Imports {
		if strings.HasPrefix(imp, "github.com/winkk/passport") {
			t.Errorf("store imports %s", imp)
		}
	}
}
