package store

import (
	"strings"
	"testing"
)

// codecSample is record-shaped JSON carrying a repetitive XML document, about
// the size of an answered login.
var codecSample = struct {
	ID  string `json:"id"`
	Doc string `json:"doc"`
}{"abc", strings.Repeat(`<saml:Attribute Name="http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"><saml:AttributeValue>ada@example.com</saml:AttributeValue></saml:Attribute>`, 50)}

// BenchmarkEncodeRecord is the cost of storing a large record: JSON and deflate.
func BenchmarkEncodeRecord(b *testing.B) {
	b.ReportAllocs()
	var n int
	for b.Loop() {
		out, err := encodeRecord(codecSample)
		if err != nil {
			b.Fatal(err)
		}
		n = len(out)
	}
	b.ReportMetric(float64(n), "bytes")
}

// BenchmarkDecodeRecord is the cost of reading it back.
func BenchmarkDecodeRecord(b *testing.B) {
	enc, err := encodeRecord(codecSample)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var v struct{ ID, Doc string }
	for b.Loop() {
		if err := decodeRecord(enc, &v); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRecordCodec: small records are stored as plain JSON, large ones deflated, and both read back.
func TestRecordCodec(t *testing.T) {
	small, err := encodeRecord(map[string]string{"a": "b"})
	if err != nil || string(small) != `{"a":"b"}` {
		t.Fatalf("small record stored as %q, %v", small, err)
	}
	large, err := encodeRecord(codecSample)
	if err != nil || large[0] != deflatedMark || len(large) > len(codecSample.Doc)/4 {
		t.Fatalf("large record: %d bytes, %v", len(large), err)
	}
	var v struct{ ID, Doc string }
	if err := decodeRecord(large, &v); err != nil || v.Doc != codecSample.Doc || v.ID != "abc" {
		t.Fatalf("decode: %v", err)
	}
	if err := decodeRecord([]byte{deflatedMark, 0xff, 0x00}, &v); err == nil {
		t.Error("a corrupt deflated record decoded without an error")
	}
}
