package authn_test

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/winkk/passport/authn"
)

// TestDocumentJSON: a login's Response is stored as XML text (so that the store's compression sees it), and
// one stored as base64, as older records hold it, reads back the same.
func TestDocumentJSON(t *testing.T) {
	t.Parallel()
	xml := `<samlp:Response ID="_a" Version="2.0">x &amp; "y"</samlp:Response>`
	b, err := json.Marshal(authn.Login{Response: authn.Document(xml)})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"response":"\u003csamlp:Response`) {
		t.Errorf("stored as %s, want the XML as text", b)
	}
	for _, stored := range []string{string(b), `{"response":"` + base64.StdEncoding.EncodeToString([]byte(xml)) + `"}`} {
		var l authn.Login
		if err := json.Unmarshal([]byte(stored), &l); err != nil || string(l.Response) != xml {
			t.Errorf("%s read back as %q, %v", stored, l.Response, err)
		}
	}
	if b, _ := json.Marshal(authn.Login{}); strings.Contains(string(b), "response") {
		t.Errorf("an unanswered login stores a response field: %s", b)
	}
}
