package api

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/winkk/passport/api/apierr"
	"github.com/winkk/passport/api/deviceapi"
	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/authn/sso"
	"github.com/winkk/passport/saml"
)

// parseDir parses the Go files of dir, tests left out.
func parseDir(tb testing.TB, dir string) (*token.FileSet, []*ast.File) {
	tb.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		tb.Fatal(err)
	}
	fset := token.NewFileSet()
	var files []*ast.File
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			tb.Fatal(err)
		}
		files = append(files, f)
	}
	if len(files) == 0 {
		tb.Fatalf("no Go files in %s", dir)
	}
	return fset, files
}

// errorCodes returns the codes that the Go files of dir write as the Code of a composite literal of type
// typ ("Error" inside authn, "authn.Error" elsewhere), each with where it is written. A Code copied from
// another error (ErrRateLimited.Code, se.Code) is that error's code, found where it is made; any other
// expression is reported in bad, since the test could not see which code it is.
func errorCodes(tb testing.TB, dir, typ string) (codes map[string]string, bad []string) {
	tb.Helper()
	fset, files := parseDir(tb, dir)
	codes = map[string]string{}
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.CompositeLit)
			if !ok || exprName(lit.Type) != typ {
				return true
			}
			for _, el := range lit.Elts {
				kv, ok := el.(*ast.KeyValueExpr)
				if !ok {
					bad = append(bad, fmt.Sprintf("%s: unkeyed %s literal", fset.Position(lit.Pos()), typ))
					continue
				}
				if key, ok := kv.Key.(*ast.Ident); !ok || key.Name != "Code" {
					continue
				}
				switch v := kv.Value.(type) {
				case *ast.BasicLit:
					code, err := strconv.Unquote(v.Value)
					if v.Kind != token.STRING || err != nil {
						bad = append(bad, fmt.Sprintf("%s: Code %s", fset.Position(v.Pos()), v.Value))
						continue
					}
					codes[code] = fset.Position(v.Pos()).String()
				case *ast.SelectorExpr:
					if v.Sel.Name != "Code" {
						bad = append(bad, fmt.Sprintf("%s: Code %s.%s", fset.Position(v.Pos()), exprName(v.X), v.Sel.Name))
					}
				default:
					bad = append(bad, fmt.Sprintf("%s: Code given by an expression the test cannot read", fset.Position(v.Pos())))
				}
			}
			return true
		})
	}
	return codes, bad
}

// exprName names a type expression: Error, authn.Error.
func exprName(e ast.Expr) string {
	switch t := e.(type) {
	case *ast.Ident:
		return t.Name
	case *ast.SelectorExpr:
		return exprName(t.X) + "." + t.Sel.Name
	}
	return ""
}

// samlCodes returns the Code* constants of saml/errors.go, and checks that every error package saml makes
// (newError) carries one of them.
func samlCodes(tb testing.TB) map[string]string {
	tb.Helper()
	fset, files := parseDir(tb, "../saml")
	byName := map[string]string{}
	codes := map[string]string{}
	for _, f := range files {
		if filepath.Base(fset.File(f.Pos()).Name()) != "errors.go" {
			continue
		}
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if !strings.HasPrefix(name.Name, "Code") || i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						tb.Errorf("%s: saml.%s is not a string literal", fset.Position(name.Pos()), name.Name)
						continue
					}
					code, _ := strconv.Unquote(lit.Value)
					byName[name.Name] = code
					codes[code] = fset.Position(lit.Pos()).String()
				}
			}
		}
	}
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || exprName(call.Fun) != "newError" || len(call.Args) == 0 {
				return true
			}
			if id, ok := call.Args[0].(*ast.Ident); !ok || byName[id.Name] == "" {
				tb.Errorf("%s: saml makes an error whose code is not a Code* constant of errors.go", fset.Position(call.Pos()))
			}
			return true
		})
	}
	return codes
}

// TestEveryCodeHasAStatus: no code that reaches a client lacks an entry in the one table (it would be
// answered as internal), and the table holds no code that nothing answers with.
func TestEveryCodeHasAStatus(t *testing.T) {
	t.Parallel()
	authnCodes, bad := errorCodes(t, "../authn", "Error")
	apiCodes, badAPI := errorCodes(t, ".", "authn.Error")
	ssoCodes, badSSO := errorCodes(t, "../authn/sso", "authn.Error")
	for code, where := range ssoCodes {
		apiCodes[code] = where // the flows' refusals reach clients through api like its own
	}
	for _, b := range append(append(bad, badAPI...), badSSO...) {
		t.Errorf("%s: write the code as a string literal, or copy it from a sentinel (Code: ErrX.Code)", b)
	}
	samlCodes := samlCodes(t)
	deviceCodes := map[string]string{}
	for _, c := range deviceapi.Codes() {
		deviceCodes[c] = "deviceapi.Codes"
	}
	// The scans see what they must: a sentinel of each package, and the SAML codes.
	for _, want := range []struct {
		codes map[string]string
		code  string
	}{
		{authnCodes, authn.ErrNotFound.Code}, {authnCodes, authn.ErrCodeLocked.Code}, {authnCodes, authn.ErrNoKeyRing.Code},
		{apiCodes, errTooLarge.Code}, {apiCodes, sso.ErrSignInEnded.Code},
		{samlCodes, saml.CodeTooLarge}, {samlCodes, saml.CodeUnsupportedAlgorithm},
	} {
		if _, ok := want.codes[want.code]; !ok {
			t.Fatalf("the scan missed %q", want.code)
		}
	}

	answered := map[string]bool{}
	for _, set := range []struct {
		who   string
		codes map[string]string
	}{{"authn", authnCodes}, {"api", apiCodes}, {"saml", samlCodes}, {"deviceapi", deviceCodes}} {
		for code, where := range set.codes {
			answered[code] = true
			if !apierr.Known(code) {
				t.Errorf("%s code %q (%s) has no status in apierr's table", set.who, code, where)
			}
		}
	}
	for _, code := range apierr.Codes() {
		if !answered[code] {
			t.Errorf("apierr's table has %q, which nothing answers with", code)
		}
	}
	// A SAML message or metadata document refused is the sender's fault, answered on our page, never 5xx.
	for code := range samlCodes {
		if st := apierr.Status(code); st != http.StatusBadRequest {
			t.Errorf("saml code %q answers %d, want 400", code, st)
		}
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	const generic = "Something went wrong on our side. Please try again."
	cause := errors.New("dial tcp 127.0.0.1:6379: connection refused")
	for _, tc := range []struct {
		name    string
		err     error
		status  int
		code    string
		message string
	}{
		{"authn sentinel", authn.ErrNotFound, 404, "not_found", ""},
		{"authn refusal, wrapped", fmt.Errorf("get app: %w", authn.ErrConflict.WithMessage("Taken.")), 409, "conflict", "Taken."},
		{"authn refusal with a cause", &authn.Error{Code: "invalid_proof", Message: "the device proof does not verify", Err: cause}, 401, "invalid_proof", "the device proof does not verify"},
		{"api refusal", errMalformedRequest, 400, "malformed_request", errMalformedRequest.Message},
		{"a refusal of the flows", sso.ErrSignInEnded, 403, "sign_in_ended", sso.ErrSignInEnded.Message},
		{"a SAML error that did not go through the flows", &saml.Error{Code: saml.CodeIssuerMismatch, Message: "detail"}, 500, "internal", generic},
		{"no route", echo.ErrNotFound, 404, "not_found", "There is nothing at this address."},
		{"wrong method", echo.ErrMethodNotAllowed, 405, "method_not_allowed", "This method is not allowed here."},
		{"body over the limit", echo.ErrStatusRequestEntityTooLarge, 413, "too_large", "The request body is too large."},
		{"not JSON", echo.ErrUnsupportedMediaType, 415, "unsupported_media_type", "Send JSON (Content-Type: application/json)."},
		{"another refusal of echo", echo.ErrBadRequest, 400, "invalid_request", "Bad Request"},
		{"echo failing", echo.ErrInternalServerError, 500, "internal", generic},
		{"a plain error", cause, 500, "internal", generic},
		{"authn internal", &authn.Error{Code: "internal", Message: "the code could not be mailed; try again later", Err: cause}, 500, "internal", "the code could not be mailed; try again later"},
		{"a code without a status", &authn.Error{Code: "no_such_code", Message: "detail of ours"}, 500, "internal", generic},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pub, status := classify(tc.err)
			if status != tc.status || pub.Code != tc.code || pub.Message != tc.message {
				t.Errorf("classify = %d %s %q, want %d %s %q", status, pub.Code, pub.Message, tc.status, tc.code, tc.message)
			}
		})
	}
	if codes := apierr.Codes(); !slices.IsSorted(codes) || len(codes) == 0 {
		t.Errorf("apierr.Codes() = %v", codes)
	}
}
