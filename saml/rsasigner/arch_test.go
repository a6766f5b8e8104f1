package rsasigner

import (
	"go/build"
	"strings"
	"testing"
)

// TestImports keeps rsasigner a leaf: it imports no other Passport package,
// in either build.
func TestImports(t *testing.T) {
	t.Parallel()
	for _, cgo := range []bool{true, false} {
		ctx := build.Default
		ctx.CgoEnabled = cgo
		pkg, err := ctx.ImportDir(".", 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range pkg.Imports {
			if strings.HasPrefix(imp, "github.com/winkk/passport") {
				t.Errorf("cgo %v: rsasigner imports %s", cgo, imp)
			}
		}
		if got := strings.Contains(strings.Join(pkg.Imports, " "), "github.com/golang-fips/openssl"); got != cgo {
			t.Errorf("cgo %v: imports golang-fips/openssl: %v", cgo, got)
		}
	}
}
