package authn

import (
	"bytes"
	stdjson "encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	gojson "github.com/goccy/go-json"

	"github.com/winkk/passport/store"
)

// recordTypes are the types of the records the store keeps: one per table of core, read off the tables'
// Get, so that a table added later is checked too.
func recordTypes(t *testing.T) []reflect.Type {
	var out []reflect.Type
	ct := reflect.TypeFor[core]()
	for i := range ct.NumField() {
		f := ct.Field(i)
		if !strings.HasPrefix(f.Type.Name(), "table[") {
			continue
		}
		get, ok := f.Type.MethodByName("Get")
		if !ok {
			t.Fatalf("core.%s (%s) has no Get", f.Name, f.Type)
		}
		out = append(out, get.Type.Out(0))
	}
	if !slices.Contains(out, reflect.TypeFor[Login]()) {
		t.Fatalf("the tables of core were not found: %v", out)
	}
	return out
}

// TestRecordsEncodeAsEncodingJSON: the store writes records with goccy/go-json, for its speed. Every record
// type, with every field set (and strings that need escaping), must come out byte for byte as
// encoding/json writes it without HTML escaping, as records were stored before: a compare-and-swap
// compares bytes, and servers of both builds share one Redis during an upgrade. Each library must read
// what the other wrote back to the same value.
func TestRecordsEncodeAsEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, typ := range recordTypes(t) {
		t.Run(typ.Name(), func(t *testing.T) {
			for _, fill := range []bool{false, true} { // zero values test omitempty and omitzero
				v := reflect.New(typ)
				if fill {
					fillValue(v.Elem(), 0)
				}
				var want bytes.Buffer
				enc := stdjson.NewEncoder(&want)
				enc.SetEscapeHTML(false)
				if err := enc.Encode(v.Interface()); err != nil {
					t.Fatal(err)
				}
				wantb := bytes.TrimSuffix(want.Bytes(), []byte{'\n'})
				got, err := store.RecordJSON(v.Interface())
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, wantb) {
					t.Fatalf("filled=%v: go-json wrote\n%s\nencoding/json\n%s", fill, got, wantb)
				}
				fromStd, fromGo := reflect.New(typ), reflect.New(typ)
				if err := gojson.Unmarshal(wantb, fromStd.Interface()); err != nil {
					t.Fatalf("go-json reads encoding/json's text: %v", err)
				}
				if err := stdjson.Unmarshal(got, fromGo.Interface()); err != nil {
					t.Fatalf("encoding/json reads go-json's text: %v", err)
				}
				if !reflect.DeepEqual(fromStd.Interface(), fromGo.Interface()) {
					t.Fatalf("filled=%v: the two libraries read the same text differently:\n%+v\n%+v", fill, fromStd.Elem(), fromGo.Elem())
				}
			}
		})
	}
}

// fillValue sets every exported field reachable from v to a value that is not zero. Strings carry
// markup, a line separator, a quote, a control character, non-ASCII text and a byte that is not UTF-8, which JSON encoders escape
// differently if they differ at all.
func fillValue(v reflect.Value, depth int) {
	if depth > 6 {
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("<a href=\"x&y\">é\u2028\u2029\t\x01\xff%d</a>", depth))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(42)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(42)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(1.5)
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			v.SetBytes([]byte(`<samlp:Response ID="_a">x &amp; "y" é</samlp:Response>`))
			return
		}
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fillValue(s.Index(i), depth+1)
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		for i := range 2 {
			k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			fillValue(k, depth+1+i)
			fillValue(e, depth+1)
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fillValue(p.Elem(), depth+1)
		v.Set(p)
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(time.Date(2026, 12, 3, 9, 0, 0, 123456789, time.UTC)))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fillValue(v.Field(i), depth+1)
			}
		}
	}
}
