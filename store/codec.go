package store

import (
	"bytes"
	"fmt"
	"io"
	"sync"

	json "github.com/goccy/go-json"
	"github.com/klauspost/compress/flate"
)

// Records are stored as their JSON, except that a JSON text longer than
// compressAbove bytes is stored deflated (RFC 1951) behind the byte
// deflatedMark, which no JSON text starts with. A record that carries a large
// document (an answered login keeps its signed Response) then costs the
// server a third of its size or less, while small records stay plain and cost no
// compression. Deflate is deterministic for a given input, which the
// compare-and-swap of Update and Change relies on only as an optimisation:
// bytes that differ from the server's merely cost a retry.
const (
	compressAbove = 2048
	deflatedMark  = 0
)

// flateReaders pools deflate readers (each holds a 32 KiB window).
var flateReaders = sync.Pool{New: func() any { return flate.NewReader(bytes.NewReader(nil)) }}

// Records are encoded and decoded with goccy/go-json: it writes the same bytes as encoding/json (without
// HTML escaping; authn's TestRecordsEncodeAsEncodingJSON holds every record type to that, since a
// compare-and-swap compares bytes and servers of two builds may share a Redis) and reads a login record
// about six times faster, which a login does several times.
//
// RecordJSON is the JSON text of record v as the store writes it, before any compression. It is not
// HTML-escaped (json.Marshal writes '<', '>' and '&' as \u003c and so on, for JSON pasted into HTML):
// records are never, and a signed Response, all markup, stays a third shorter before compression and
// decodes faster.
func RecordJSON(v any) ([]byte, error) {
	return json.MarshalWithOption(v, json.DisableHTMLEscape())
}

// encodeRecord marshals v as stored: RecordJSON, deflated when it is long.
func encodeRecord(v any) ([]byte, error) {
	b, err := RecordJSON(v)
	if err != nil {
		return nil, err
	}
	if len(b) <= compressAbove {
		return b, nil
	}
	var out bytes.Buffer
	out.Grow(len(b) / 2)
	out.WriteByte(deflatedMark)
	// Stateless deflate: its match table (32 KiB) lives on the stack of this call, where the pooled writers
	// of flate.NewWriter each kept a 128 KiB table and a 64 KiB window that had gone cold in the CPU's caches
	// by the next login's Response (3.8% of the IdP's CPU in a profile at saturation, against ~25 µs a
	// Response when nothing else runs). It compresses an answered login to the same size.
	if err := flate.StatelessDeflate(&out, b, true, nil); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// decodeRecord unmarshals a record as stored into v.
func decodeRecord(b []byte, v any) error {
	if len(b) > 0 && b[0] == deflatedMark {
		r := flateReaders.Get().(io.ReadCloser)
		defer flateReaders.Put(r)
		if err := r.(flate.Resetter).Reset(bytes.NewReader(b[1:]), nil); err != nil {
			return fmt.Errorf("inflate: %w", err)
		}
		plain, err := io.ReadAll(r)
		if err != nil {
			return fmt.Errorf("inflate: %w", err)
		}
		b = plain
	}
	return json.Unmarshal(b, v)
}
