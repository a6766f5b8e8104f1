// Package qrimage draws the QR codes of invitation links as PNG images a phone's camera reads at once.
//
// Every module is drawn as a square of whole pixels. Scaling a symbol to an arbitrary side (what
// go-qrcode does for a positive size) makes some modules a pixel wider than others; a reader that
// estimates the module size from the finder patterns can then miscount the symbol's dimension and
// find no code at all, depending on the link's length.
package qrimage

import (
	qrcode "github.com/skip2/go-qrcode"
)

// minModule is the smallest square drawn for one module, in pixels.
const minModule = 4

// PNG draws text as a QR code (medium error correction, the standard four-module quiet zone) with the
// largest whole number of pixels per module that keeps the image within about side pixels (never below
// minModule). It returns the image and its actual side in pixels.
func PNG(text string, side int) ([]byte, int, error) {
	q, err := qrcode.New(text, qrcode.Medium)
	if err != nil {
		return nil, 0, err
	}
	modules := len(q.Bitmap()) // with the quiet zone
	scale := max(side/modules, minModule)
	png, err := q.PNG(-scale)
	if err != nil {
		return nil, 0, err
	}
	return png, modules * scale, nil
}
