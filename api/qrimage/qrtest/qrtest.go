// Package qrtest reads back the QR codes Passport draws, with a decoder we did not write (gozxing, a port
// of ZXing), for tests.
package qrtest

import (
	"bytes"
	"fmt"
	"image/png"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"
)

// Read decodes the PNG and reads the QR code in it as drawn: the image is the symbol itself, so it is read
// module by module (ZXing's "pure barcode" mode), and the code's format, version and Reed-Solomon checks
// all have to pass. ZXing's camera path (locating finder patterns in a photo) misplaces its sampling grid
// on a few percent of perfectly drawn symbols, depending on their data; zbar reads those, and a photo is
// not what the tests have.
func Read(raw []byte) (string, error) {
	pic, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		return "", fmt.Errorf("not a PNG: %w", err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(pic)
	if err != nil {
		return "", err
	}
	res, err := qrcode.NewQRCodeReader().Decode(bmp, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_PURE_BARCODE: true})
	if err != nil {
		return "", err
	}
	return res.GetText(), nil
}
