package push

import (
	"context"
	"fmt"
	"testing"

	"github.com/winkk/passport/push/fcmtest"
)

// The real SDK against the fake FCM server on loopback: what a login's push costs for a user
// with one device and with five (FanOut sends them concurrently, so five should cost far less
// than five times one).
func BenchmarkFanOut1(b *testing.B) { benchmarkFanOut(b, 1) }
func BenchmarkFanOut5(b *testing.B) { benchmarkFanOut(b, 5) }

func benchmarkFanOut(b *testing.B, devices int) {
	fake := fcmtest.New(b)
	fake.NoStore()
	cfg := testConfig(b, fake, newFakeClock())
	cfg.Now, cfg.Sleep = nil, nil
	f := mustFCM(b, cfg)
	msgs := make([]Message, devices)
	for i := range msgs {
		msgs[i] = testMessage(fmt.Sprintf("token-%d", i))
	}
	ctx := context.Background()
	if err := f.Send(ctx, msgs[0]); err != nil { // fetch the access token outside the loop
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		for i, err := range FanOut(ctx, f, msgs) {
			if err != nil {
				b.Fatalf("message %d: %v", i, err)
			}
		}
	}
}
