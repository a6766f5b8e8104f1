package store

import (
	"os"
	"testing"
)

// answered is shaped like an answered login: a few small fields and a signed Response kept as text.
type answered struct {
	ID       string `json:"id"`
	State    string `json:"state"`
	Email    string `json:"email"`
	Response string `json:"response"`
}

// BenchmarkRecordCodec encodes and decodes a record shaped like an answered login (a signed Response of
// the size Passport makes, stored deflated): what one login's compare-and-swap and reads of it cost in CPU.
func BenchmarkRecordCodec(b *testing.B) {
	doc, err := os.ReadFile("../saml/testdata/TestMakeResponse.golden")
	if err != nil {
		b.Fatal(err)
	}
	v := answered{ID: "jykbqq7os3vbs5pgtw7xmraqoa", State: "answered", Email: "ada@example.com", Response: string(doc)}
	enc, err := encodeRecord(v)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(enc)), "stored-bytes")
	b.Run("encode", func(b *testing.B) {
		for b.Loop() {
			if _, err := encodeRecord(v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		for b.Loop() {
			var out answered
			if err := decodeRecord(enc, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
}
