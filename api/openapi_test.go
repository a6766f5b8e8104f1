package api_test

import (
	"context"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/winkk/passport/api"
)

// TestRoutesMatchOpenAPI checks every device route the server registers against api/openapi.yaml, and every
// operation of the document against the server: the document is the mobile team's contract.
func TestRoutesMatchOpenAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(api.OpenAPI)
	if err != nil {
		t.Fatalf("load openapi.yaml: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.yaml is not valid: %v", err)
	}
	param := regexp.MustCompile(`:([A-Za-z]+)`)
	registered := map[string]bool{}
	for _, r := range e.srv.Routes() {
		if r.Method == "echo_route_not_found" || (!strings.HasPrefix(r.Path, "/api/v1/device") && r.Path != "/api/v1/openapi.yaml") {
			continue
		}
		path := param.ReplaceAllString(r.Path, "{$1}")
		registered[r.Method+" "+path] = true
		item := doc.Paths.Find(path)
		if item == nil || item.GetOperation(r.Method) == nil {
			t.Errorf("route %s %s is not in openapi.yaml", r.Method, path)
		}
	}
	var documented []string
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			documented = append(documented, op.OperationID)
			if !registered[method+" "+path] {
				t.Errorf("openapi.yaml documents %s %s (%s) but the server does not register it", method, path, op.OperationID)
			}
		}
	}
	sort.Strings(documented)
	for _, id := range []string{"enrollByInvitation", "requestEmailCode", "enrollByEmail", "listDevices", "renameDevice", "removeDevice", "updatePushToken", "listChallenges", "waitForChallenge", "getChallenge", "answerChallenge"} {
		if i := sort.SearchStrings(documented, id); i == len(documented) || documented[i] != id {
			t.Errorf("operationId %s is missing", id)
		}
	}
	if st, _, body := e.call(http.MethodGet, "/api/v1/openapi.yaml", "", "", ""); st != http.StatusOK || !strings.Contains(string(body), "openapi: 3") {
		t.Errorf("GET /api/v1/openapi.yaml: %d", st)
	}
}
