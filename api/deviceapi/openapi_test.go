package deviceapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/winkk/passport/api/apierr"
	"github.com/winkk/passport/api/deviceapi"
)

func mustDoc(tb testing.TB) *openapi3.T {
	tb.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile("../openapi.yaml")
	if err != nil {
		tb.Fatalf("load openapi.yaml: %v", err)
	}
	return doc
}

func TestOpenAPIValid(t *testing.T) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile("../openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Validate also checks every example against its schema.
	if err := doc.Validate(loader.Context, openapi3.EnableSchemaFormatValidation()); err != nil {
		t.Fatalf("openapi.yaml is not valid: %v", err)
	}
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi = %q, want 3.0.3", doc.OpenAPI)
	}
}

// operations is the brief's route table: what the server and the client
// implement, and what the document must say.
var operations = []struct {
	id, method, path string
	success          int
	request          any // Go type of the body, nil for none
	response         any // Go type of the success body, nil for none
	proof            bool
}{
	{"enrollByInvitation", "POST", deviceapi.PathEnroll, 201, deviceapi.EnrollByInvitationRequest{}, deviceapi.EnrollResponse{}, true},
	{"requestEmailCode", "POST", deviceapi.PathEmailCodes, 202, deviceapi.RequestEmailCodeRequest{}, deviceapi.RequestEmailCodeResponse{}, false},
	{"enrollByEmail", "POST", deviceapi.PathEnrollEmail, 201, deviceapi.EnrollByEmailRequest{}, deviceapi.EnrollResponse{}, true},
	{"listDevices", "GET", deviceapi.PathDevices, 200, nil, deviceapi.DeviceList{}, true},
	{"renameDevice", "PATCH", deviceapi.PathDevice, 200, deviceapi.RenameDeviceRequest{}, deviceapi.Device{}, true},
	{"removeDevice", "DELETE", deviceapi.PathDevice, 204, nil, nil, true},
	{"updatePushToken", "PUT", deviceapi.PathPushToken, 200, deviceapi.UpdatePushTokenRequest{}, deviceapi.Device{}, true},
	{"listChallenges", "GET", deviceapi.PathChallenges, 200, nil, deviceapi.ChallengeList{}, true},
	{"waitForChallenge", "GET", deviceapi.PathChallengeWait, 200, nil, deviceapi.Challenge{}, true},
	{"getChallenge", "GET", deviceapi.PathChallenge, 200, nil, deviceapi.Challenge{}, true},
	{"answerChallenge", "POST", deviceapi.PathChallengeAnswer, 200, deviceapi.AnswerRequest{}, deviceapi.AnswerResponse{}, true},
	{"approveByNumber", "POST", deviceapi.PathApprove, 200, deviceapi.ApproveByNumberRequest{}, deviceapi.ApproveByNumberResponse{}, true},
	{"createDeviceInvitation", "POST", deviceapi.PathInvitations, 201, nil, deviceapi.DeviceInvitation{}, true},
}

func TestOpenAPIOperations(t *testing.T) {
	doc := mustDoc(t)
	found := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			found[method+" "+path+" "+op.OperationID] = true
		}
	}
	if len(found) != len(operations)+1 {
		t.Errorf("document has %d operations, want %d: %v", len(found), len(operations)+1, found)
	}
	if !found["GET "+deviceapi.PathOpenAPI+" getOpenAPI"] {
		t.Errorf("GET %s is not described", deviceapi.PathOpenAPI)
	}
	for _, o := range operations {
		t.Run(o.id, func(t *testing.T) {
			item := doc.Paths.Value(o.path)
			if item == nil {
				t.Fatalf("no path %s", o.path)
			}
			op := item.GetOperation(o.method)
			if op == nil || op.OperationID != o.id {
				t.Fatalf("%s %s: operation %+v, want operationId %s", o.method, o.path, op, o.id)
			}
			resp := op.Responses.Value(fmt.Sprint(o.success))
			if resp == nil {
				t.Fatalf("no %d response", o.success)
			}
			for code := range op.Responses.Map() {
				if code[0] == '2' && code != fmt.Sprint(o.success) && !(o.id == "waitForChallenge" && code == "204") {
					t.Errorf("unexpected success response %s", code)
				}
			}
			if o.response != nil {
				checkBody(t, "response", resp.Value.Content, o.response)
			} else if len(resp.Value.Content) != 0 {
				t.Errorf("%d response has a body", o.success)
			}
			if o.request != nil {
				if op.RequestBody == nil {
					t.Fatal("no request body")
				}
				checkBody(t, "request", op.RequestBody.Value.Content, o.request)
			} else if op.RequestBody != nil {
				t.Error("unexpected request body")
			}
			// Proof: the default security unless overridden with [].
			secured := op.Security == nil || len(*op.Security) > 0
			if secured != o.proof {
				t.Errorf("Device-Proof required = %v, want %v", secured, o.proof)
			}
			for code, r := range op.Responses.Map() {
				if code[0] != '4' && code[0] != '5' {
					continue
				}
				mt := r.Value.Content.Get("application/json")
				if mt == nil || mt.Schema == nil || mt.Schema.Ref != "#/components/schemas/Error" {
					t.Errorf("%s response is not an Error", code)
				}
			}
		})
	}
	if len(doc.Security) != 1 || doc.Security[0]["DeviceProof"] == nil {
		t.Errorf("default security = %v, want DeviceProof", doc.Security)
	}
	ss := doc.Components.SecuritySchemes["DeviceProof"]
	if ss == nil || ss.Value.Type != "apiKey" || ss.Value.In != "header" || ss.Value.Name != "Device-Proof" {
		t.Errorf("DeviceProof scheme = %+v", ss)
	}
}

// checkBody checks a JSON body's schema names the Go type's fields exactly,
// and that each example decodes into the Go type with no unknown field.
func checkBody(tb testing.TB, what string, content openapi3.Content, goValue any) {
	tb.Helper()
	mt := content.Get("application/json")
	if mt == nil || mt.Schema == nil {
		tb.Fatalf("%s: no application/json schema", what)
	}
	typ := reflect.TypeOf(goValue)
	if want := "#/components/schemas/" + typ.Name(); mt.Schema.Ref != want {
		tb.Errorf("%s schema = %q, want %q", what, mt.Schema.Ref, want)
	}
	if len(mt.Examples) == 0 {
		tb.Errorf("%s: no examples", what)
	}
	for name, ex := range mt.Examples {
		raw, err := json.Marshal(ex.Value.Value)
		if err != nil {
			tb.Fatal(err)
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		v := reflect.New(typ).Interface()
		if err := dec.Decode(v); err != nil {
			tb.Errorf("%s example %s does not decode into %s: %v", what, name, typ, err)
		}
	}
}

func TestOpenAPISchemasMatchGoTypes(t *testing.T) {
	doc := mustDoc(t)
	types := []any{
		deviceapi.Device{}, deviceapi.EnrollByInvitationRequest{}, deviceapi.RequestEmailCodeRequest{},
		deviceapi.RequestEmailCodeResponse{}, deviceapi.EnrollByEmailRequest{}, deviceapi.EnrollResponse{},
		deviceapi.DeviceList{}, deviceapi.RenameDeviceRequest{}, deviceapi.UpdatePushTokenRequest{},
		deviceapi.Challenge{}, deviceapi.ChallengeList{}, deviceapi.AnswerRequest{}, deviceapi.AnswerResponse{},
	}
	for _, v := range types {
		typ := reflect.TypeOf(v)
		t.Run(typ.Name(), func(t *testing.T) {
			s := doc.Components.Schemas[typ.Name()]
			if s == nil {
				t.Fatalf("no schema %s", typ.Name())
			}
			var goNames, docNames []string
			for i := range typ.NumField() {
				tag := typ.Field(i).Tag.Get("json")
				name, opts, _ := strings.Cut(tag, ",")
				if name == "" || name == "-" {
					t.Fatalf("field %s has no json name", typ.Field(i).Name)
				}
				goNames = append(goNames, name)
				// A Go field without omitempty is always sent: responses
				// must list it as required (requests may leave it optional).
				if !strings.Contains(opts, "omitempty") && strings.HasSuffix(typ.Name(), "Response") &&
					!slices.Contains(s.Value.Required, name) {
					t.Errorf("%s is always sent but not required", name)
				}
				if strings.Contains(opts, "omitempty") && slices.Contains(s.Value.Required, name) {
					t.Errorf("%s may be omitted but is required", name)
				}
			}
			for name := range s.Value.Properties {
				docNames = append(docNames, name)
			}
			sort.Strings(goNames)
			sort.Strings(docNames)
			if !slices.Equal(goNames, docNames) {
				t.Errorf("properties = %v, Go fields = %v", docNames, goNames)
			}
			for _, r := range s.Value.Required {
				if !slices.Contains(docNames, r) {
					t.Errorf("required %q is not a property", r)
				}
			}
		})
	}
}

func TestOpenAPIErrorCodes(t *testing.T) {
	doc := mustDoc(t)
	raw, err := os.ReadFile("../openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	codeSchema := doc.Components.Schemas["Error"].Value.Properties["error"].Value.Properties["code"].Value
	var enum []string
	for _, v := range codeSchema.Enum {
		enum = append(enum, v.(string))
	}
	if got, want := sorted(enum), sorted(deviceapi.Codes()); !slices.Equal(got, want) {
		t.Errorf("Error.code enum = %v, want %v", got, want)
	}
	for _, code := range deviceapi.Codes() {
		row := fmt.Sprintf("| `%s` | %d | ", code, deviceapi.HTTPStatus(code))
		if !bytes.Contains(raw, []byte(row)) {
			t.Errorf("error table lacks the row %q", row)
		}
	}
	// The description's error table and the enum say what the server's one table says: each code is in it,
	// with its status, and the table of the document lists the device API's codes, no more, no fewer.
	var rows []string
	for _, m := range errorRow.FindAllStringSubmatch(doc.Info.Description, -1) {
		code, status := m[1], m[2]
		rows = append(rows, code)
		if !apierr.Known(code) {
			t.Errorf("the error table documents %q, which the server's table (apierr) lacks", code)
		} else if want := strconv.Itoa(apierr.Status(code)); status != want {
			t.Errorf("the error table gives %s %s, the server answers %s", code, status, want)
		}
	}
	if got, want := sorted(rows), sorted(deviceapi.Codes()); !slices.Equal(got, want) {
		t.Errorf("error table codes = %v, want %v", got, want)
	}
	for _, code := range enum {
		if !apierr.Known(code) {
			t.Errorf("Error.code enum has %q, which the server's table (apierr) lacks", code)
		}
	}
	// Every error example in the document uses a known code with its status.
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			for status, r := range op.Responses.Map() {
				mt := r.Value.Content.Get("application/json")
				if status[0] < '4' || mt == nil {
					continue
				}
				for name, ex := range mt.Examples {
					var eb deviceapi.ErrorBody
					b, _ := json.Marshal(ex.Value.Value)
					if err := json.Unmarshal(b, &eb); err != nil || eb.Error.Code == "" {
						t.Errorf("%s %s %s example %s: not an error body", method, path, status, name)
						continue
					}
					if got := fmt.Sprint(deviceapi.HTTPStatus(eb.Error.Code)); got != status {
						t.Errorf("%s %s: example %s (%s) under status %s, want %s", method, path, name, eb.Error.Code, status, got)
					}
				}
			}
		}
	}
	if deviceapi.HTTPStatus(deviceapi.CodeNumberMismatch) != http.StatusUnprocessableEntity ||
		deviceapi.HTTPStatus(deviceapi.CodeChallengeClosed) != http.StatusConflict {
		t.Error("answerChallenge statuses differ from the brief (422 number_mismatch, 409 challenge_closed)")
	}
}

// errorRow is a row of the error table in the document's description: | `code` | status | meaning |.
var errorRow = regexp.MustCompile("(?m)^\\s*\\| `([^`]*)` \\| *([0-9]+) *\\|")

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}
