package api_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/winkk/passport/saml"
)

// TestRefusalsKeepTheirCodes: a refusal reaches a program with its code, the status of that code and its
// message, whichever layer made it: package saml (through the one boundary that turns its errors into the
// application's), package api, or the router.
func TestRefusalsKeepTheirCodes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var app appView
	e.do("POST", "/api/v1/admin/apps", adminToken, map[string]any{"name": "Metadata app"}, http.StatusCreated, &app)
	raw, err := os.ReadFile("../saml/testdata/sp-metadata/shibboleth.xml")
	if err != nil {
		t.Fatal(err)
	}
	md := string(raw)
	noPOST := strings.Replace(md, `AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"`,
		`AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"`, 1)
	if noPOST == md {
		t.Fatal("the test metadata has no HTTP-POST ACS to take away")
	}
	// What package saml says of a document, as the admin must be told it.
	samlSays := func(doc string) (string, string) {
		_, err := saml.ParseSPMetadata([]byte(doc))
		se, ok := errors.AsType[*saml.Error](err)
		if !ok {
			t.Fatalf("saml accepts %q: %v", doc, err)
		}
		return se.Code, se.Message
	}
	notXMLCode, notXMLMessage := samlSays("<<<")
	notMetadataCode, notMetadataMessage := samlSays("<not-metadata/>")
	importPath := "/api/v1/admin/apps/" + app.ID + "/metadata"

	for _, tc := range []struct {
		name, method, path, ctype, body string
		status                          int
		code, message                   string
	}{
		{"metadata not XML", "PUT", importPath, "text/xml", "<<<", http.StatusBadRequest, notXMLCode, notXMLMessage},
		{"not metadata", "PUT", importPath, "text/xml", "<not-metadata/>", http.StatusBadRequest, notMetadataCode, notMetadataMessage},
		{"no HTTP-POST ACS", "PUT", importPath, "text/xml", noPOST, http.StatusBadRequest, "no_acs", "The metadata has no HTTP-POST AssertionConsumerService: Passport answers by HTTP-POST only."},
		{"metadata sent as JSON", "PUT", importPath, "application/json", md, http.StatusUnsupportedMediaType, "unsupported_media_type", "Send the SP's metadata XML (Content-Type: application/samlmetadata+xml or text/xml)."},
		{"grace not a duration", "POST", "/api/v1/admin/keys/activate", "application/json", `{"grace":"soon"}`, http.StatusBadRequest, "invalid_request", "grace must be a duration such as 720h."},
		{"nothing staged", "POST", "/api/v1/admin/keys/activate", "", "", http.StatusBadRequest, "no_next_key", "no next key is staged: stage one first"},
		{"wrong method", "DELETE", "/api/v1/openapi.yaml", "", "", http.StatusMethodNotAllowed, "method_not_allowed", "This method is not allowed here."},
		{"no route", "GET", "/api/v1/device/nothing", "", "", http.StatusNotFound, "not_found", "There is nothing at this address."},
		{"no credential", "GET", "/api/v1/admin/keys", "", "", http.StatusUnauthorized, "unauthorized", "A valid admin bearer token is required (Authorization: Bearer <PASSPORT_ADMIN_TOKEN>)."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			token := adminToken
			if tc.code == "unauthorized" {
				token = ""
			}
			st, code, body := e.call(tc.method, tc.path, token, tc.ctype, tc.body)
			var eb struct {
				Error struct{ Message string } `json:"error"`
			}
			_ = json.Unmarshal(body, &eb)
			if st != tc.status || code != tc.code || eb.Error.Message != tc.message {
				t.Errorf("got %d %s %q, want %d %s %q", st, code, eb.Error.Message, tc.status, tc.code, tc.message)
			}
		})
	}
	if notXMLCode == "" || notMetadataCode == "" {
		t.Error("saml gave no code")
	}
}
