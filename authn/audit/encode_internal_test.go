package audit

import (
	"bytes"
	stdjson "encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/winkk/passport/store"
)

// hostile is text a client controls in an event (a user agent, an email typed, a reason): markup, quotes, a
// line separator, control characters, non-ASCII text and a byte that is not UTF-8, which JSON encoders
// escape differently if they differ at all.
const hostile = "<script>\"x&y\"</script>é\u2028\u2029\t\x01\x7f\xff"

// TestEncodeAsEncodingJSON: an event's stream entry is the text encoding/json writes (without HTML
// escaping), whatever its fields hold, and reads back as the same event with either library; an entry written
// by an older build (encoding/json with HTML escaping) reads back the same too.
func TestEncodeAsEncodingJSON(t *testing.T) {
	at := time.Date(2026, 12, 3, 9, 0, 0, 123456789, time.FixedZone("CET", 3600))
	events := []Event{
		{},
		{Time: at, Type: LoginStarted},
		{
			Time: at, Type: LoginApproved, Actor: "device:" + hostile, Email: hostile + "@example.com", AppID: hostile,
			DeviceID: hostile, ClientIP: "2001:db8::1", UserAgent: hostile, Outcome: OutcomeFailure, Reason: hostile,
			Details: map[string]any{
				"receipt_body": `{"number":42,"challenge":"` + hostile + `"}`,
				"z":            hostile, "a": 1, "m": -2.5, "big": int64(1) << 53, "ok": true, "none": nil,
				"expires_at": at, "devices": []string{"dev_b", hostile}, "nested": map[string]any{"y": 1, "x": []any{hostile, 2.0, false}},
				hostile: "a key that needs escaping", "": "an empty key",
			},
		},
	}
	for i, e := range events {
		got, err := encode(e)
		if err != nil {
			t.Fatal(err)
		}
		var want bytes.Buffer
		enc := stdjson.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(e); err != nil {
			t.Fatal(err)
		}
		if w := bytes.TrimSuffix(want.Bytes(), []byte{'\n'}); !bytes.Equal(got, w) {
			t.Errorf("event %d: encode wrote\n%s\nencoding/json writes\n%s", i, got, w)
		}
		old, err := stdjson.Marshal(e) // what builds before this one wrote
		if err != nil {
			t.Fatal(err)
		}
		fromNew, ok1 := decode(store.StreamEntry{ID: "1-0", Data: got})
		fromOld, ok2 := decode(store.StreamEntry{ID: "1-0", Data: old})
		if !ok1 || !ok2 || !reflect.DeepEqual(fromNew, fromOld) {
			t.Errorf("event %d reads back differently (%v, %v):\n%+v\n%+v", i, ok1, ok2, fromNew, fromOld)
		}
		if fromNew.Type != e.Type || fromNew.ClientIP != e.ClientIP || !fromNew.Time.Equal(e.Time) {
			t.Errorf("event %d read back as %+v", i, fromNew)
		}
	}
}

// BenchmarkEncodeEvent: a login's approval event as the stream keeps it, by encode and by encoding/json.
func BenchmarkEncodeEvent(b *testing.B) {
	e := Event{
		Time: time.Now(), Type: LoginApproved, Actor: "device:dev_cn3ugpfjniiq73dvedpq", Email: "alice@example.com",
		AppID: "app_5kq2", DeviceID: "dev_cn3ugpfjniiq73dvedpq", ClientIP: "203.0.113.7",
		UserAgent: "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
		Outcome:   OutcomeSuccess,
		Details: map[string]any{"login_id": "y5dmsb3fkof3edaqkhhjojt7yu", "phone_ip": "198.51.100.4", "network": "203.0.113.0/24",
			// the phone's signed answer: a compact JWS of about 700 characters, and the body it signed
			"receipt":      strings.Repeat("eyJhbGciOiJFUzI1NiIsInR5cCI6ImRwb3AranQifQ", 16),
			"receipt_body": `{"number":42,"state":"approved"}`},
	}
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := encode(e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := stdjson.Marshal(e); err != nil {
				b.Fatal(err)
			}
		}
	})
}
