package fuzzcorpus

import "testing"

// TestMarshal pins the corpus format go test reads (internal/fuzz's marshalCorpusFile).
func TestMarshal(t *testing.T) {
	got, err := Marshal("a\"b\xff", []byte("\x00\n"), byte('x'), uint16(7), int64(-3), true)
	if err != nil {
		t.Fatal(err)
	}
	want := "go test fuzz v1\n" +
		"string(\"a\\\"b\\xff\")\n" +
		"[]byte(\"\\x00\\n\")\n" +
		"byte('x')\n" +
		"uint16(7)\n" +
		"int64(-3)\n" +
		"bool(true)\n"
	if string(got) != want {
		t.Errorf("Marshal:\n got %q\nwant %q", got, want)
	}
	if _, err := Marshal(3.5); err == nil {
		t.Error("Marshal(float64) succeeded: no fuzz target takes floats")
	}
	if _, err := Marshal(); err == nil {
		t.Error("Marshal() succeeded")
	}
}
