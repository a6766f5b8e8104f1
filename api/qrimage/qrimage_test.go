package qrimage_test

import (
	"bytes"
	"fmt"
	"image/png"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/winkk/passport/api/qrimage"
	"github.com/winkk/passport/api/qrimage/qrtest"
)

// TestLinksRead draws links of every length an invitation link can have (short and long base URLs, any
// port) with random tokens and reads each back, checking every module is a square of whole pixels.
func TestLinksRead(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	for n := 10; n <= 200; n++ {
		var tok strings.Builder
		for range 32 {
			tok.WriteByte(alphabet[r.IntN(len(alphabet))])
		}
		link := fmt.Sprintf("http://127.0.0.1:%d/%s/enroll?token=%s", 1024+r.IntN(64000), strings.Repeat("p", n-10), tok.String())
		for _, side := range []int{256, 320} {
			raw, got, err := qrimage.PNG(link, side)
			if err != nil {
				t.Fatalf("%q: %v", link, err)
			}
			pic, err := png.Decode(bytes.NewReader(raw))
			if err != nil {
				t.Fatalf("%q: not a PNG: %v", link, err)
			}
			if b := pic.Bounds(); b.Dx() != got || b.Dy() != got {
				t.Fatalf("%q: the image is %v, PNG said %d px", link, b, got)
			}
			if read, err := qrtest.Read(raw); err != nil || read != link {
				t.Fatalf("the %d px code of %q (%d bytes) reads %q (%v)", side, link, len(link), read, err)
			}
		}
	}
}

// TestWholeModules: each module is drawn as the same whole number of pixels, as large as fits the side
// asked for, never below four; go-qrcode's own scaling to an arbitrary side mixes widths.
func TestWholeModules(t *testing.T) {
	for _, tc := range []struct {
		text       string
		side, want int
	}{
		{"http://127.0.0.1:8080/enroll?token=abcdefghijklmnopqrstuvwxyz234567", 256, 45 * 5}, // version 5: 37 modules and the quiet zone's 8
		{"http://127.0.0.1:8080/enroll?token=abcdefghijklmnopqrstuvwxyz234567", 320, 45 * 7},
		{"http://127.0.0.1:8080/enroll?token=abcdefghijklmnopqrstuvwxyz234567", 10, 45 * 4},
	} {
		if _, got, err := qrimage.PNG(tc.text, tc.side); err != nil || got != tc.want {
			t.Errorf("PNG(%d): %d px (%v), want %d", tc.side, got, err, tc.want)
		}
	}
}
